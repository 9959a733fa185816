"""A synthetic PACS dataset whose label is a known, learnable function of the text (tests, benchmarks).

Each prompt asks about one topic; its group holds ``group_size`` answers, each written about some topic:
**label 1 when the answer is about the prompt's topic**, 0 otherwise (about another topic). At least one
answer of each kind per group. A critic that reads (prompt, response) can learn it; one that reads the
response alone cannot (every topic is right for some prompts and wrong for others), and answer length
carries no signal (both kinds come from the same templates).
"""

from __future__ import annotations

import random

from ..ingest.model import stable_id
from .dataset import DatasetRow, critic_prompt
from .groups import split_rows

TOPICS = {
    "cooking": ["simmer the onions in butter", "season the sauce with salt and pepper", "bake the bread at high heat",
                "knead the dough until it is smooth"],
    "astronomy": ["the telescope resolves distant galaxies", "a comet's tail points away from the sun",
                  "the planet's orbit is elliptical", "stars fuse hydrogen into helium"],
    "gardening": ["water the tomato seedlings every morning", "prune the roses in late winter",
                  "compost improves the soil", "plant the tulip bulbs in autumn"],
    "finance": ["diversify the portfolio across index funds", "the interest compounds monthly",
                "track the budget in a spreadsheet", "the bond yield rose this quarter"],
    "music": ["tune the guitar strings to standard pitch", "the chord progression resolves to the tonic",
              "practise the scales slowly with a metronome", "the orchestra rehearsed the symphony"],
    "programming": ["the function returns a sorted list", "fix the null pointer in the parser",
                    "write a unit test for the edge case", "the loop iterates over the array indices"],
    "medicine": ["the patient's blood pressure was measured", "antibiotics treat bacterial infections",
                 "the vaccine trains the immune system", "the doctor reviewed the x-ray"],
    "sports": ["the striker scored in the final minute", "the marathon runner paced the first mile",
               "the team practised free throws", "the goalkeeper saved the penalty"],
}
QUESTIONS = ["how should I start?", "what matters most here?", "can you explain the basics?", "what would you suggest?"]


def synthetic_rows(n_prompts: int = 200, group_size: int = 4, seed: int = 0, val_fraction: float = 0.2
                   ) -> list[DatasetRow]:
    rng = random.Random(seed)
    topics = sorted(TOPICS)
    raw = []
    for i in range(n_prompts):
        topic = rng.choice(topics)
        prompt = f"I have a question about {topic}: {rng.choice(QUESTIONS)}"
        kinds = [1, 0] + [rng.randint(0, 1) for _ in range(group_size - 2)]
        rng.shuffle(kinds)
        for j, good in enumerate(kinds):
            t = topic if good else rng.choice([x for x in topics if x != topic])
            a, b = rng.sample(TOPICS[t], 2)
            response = f"Sure. First, {a}. Then, {b}."
            raw.append((i, j, topic, prompt, response, good))
    conv = [f"syn-conv-{i}" for i, *_ in raw]
    split = split_rows(conv, [f"syn-goal-{i}" for i, *_ in raw], [i for i, *_ in raw], val_fraction, seed)
    rows = []
    for (i, j, topic, prompt, response, good), sp in zip(raw, split):
        rows.append(DatasetRow(
            row_id=stable_id("syn-row", str(seed), str(i), str(j)), scorable=f"synthetic:{i}.{j}", prompt=prompt,
            context="", critic_prompt=critic_prompt(prompt, ""), response=response, reward=0.5, label=good,
            p_good=float(good), verifier_reason="topic match" if good else "off topic",
            group_id=stable_id("syn-group", str(seed), str(i)), group_rule="regenerations", group_size=group_size,
            split=sp, goal_id=stable_id("syn-goal", str(seed), str(i)), goal=prompt, casebook_id=i,
            casebook=f"synthetic/{i}", case_id=i, conversation_id=stable_id("syn-conv", str(seed), str(i)),
            provider="synthetic", turn_index=0, response_chars=len(response)))
    rows.sort(key=lambda r: (r.group_id, r.row_id))
    return rows
