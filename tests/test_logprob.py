"""PACS logprob mode: the actor samples groups and is trained.

Pure (no Ray): the sequence log-prob of a padded batch of rollouts against each sequence scored alone; group
sampling seeded per group (the same responses whether the groups share a batch or are split as over 2 workers);
left truncation of long prompts (counted); exclusions (a group whose every sample fails verification is counted
and never labelled 0); the RLOO baseline's gradient; the actor's bad inputs (missing path, not a causal LM,
tokenizer without pad token, tokenizer that does not fit the model).

On a real local Ray Train (marked ``ray``/``slow``): ``stephanie train --mode logprob --task toy-arith`` with a tiny
actor checkpoints and registers a model version (kind ``pacs_actor``); the same steps on 2 workers give the same
parameters as on 1 (tolerance below); rerunning the run name with more steps resumes from its checkpoint; and the
``casebooks`` task runs on a PACS dataset with a critic model version as its verifier.

Invariance tolerance: the same per-step figures (samples, passes, generated tokens, mixed groups: the same sampled
groups), gradient norms within 1e-4 relative, and parameters within 5e-4 absolute after 2 AdamW steps at lr 1e-3.
That bound is a quarter of the largest possible move (2 steps x lr): AdamW divides each gradient coordinate by its
own running RMS, so a coordinate whose gradient is ~1e-9 (float32 sums taken in another order on 2 workers) moves
by up to lr either way; measured: 1.5e-4 at most.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from stephanie_ray.errors import UserError
from stephanie_ray.training.actor import build_actor, load_actor, save_actor, train_tokenizer
from stephanie_ray.training.logprob import (PromptItem, Rollout, SampleSettings, label, logprob_step, response_batch,
                                            rloo_step, sample, scores)
from stephanie_ray.training.pacs import PACSObjective
from stephanie_ray.training.reference import ReferenceSchedule
from stephanie_ray.training.toy_arith import problems
from stephanie_ray.training.verifiers import make_verifier


@pytest.fixture(scope="module")
def tiny():
    """A tiny GPT-2-style actor and its trained tokenizer (random weights: sampling gives varied answers)."""
    texts = [p.prompt + p.answer for p in problems(300, 2, 0, "warmup")]
    tok = train_tokenizer(texts, 280, 48)
    model = build_actor(tok, layers=1, dim=32, heads=2, context=48, seed=0)
    model.eval()
    return model, tok


def _items(n: int, start: int = 0) -> list[PromptItem]:
    return [PromptItem(p.pid, p.prompt, p.prompt, {"reference": p.reference}) for p in problems(start + n, 2, 0)[start:]]


def test_sequence_logprob_of_a_padded_batch_equals_each_sequence_alone(tiny):
    model, tok = tiny
    ro = Rollout([0, 0, 1], [[5, 6, 7], [5, 6, 7], [9]], [[10, 11, tok.eos_token_id], [12], [13, 14]], ["", "", ""],
                 0, 0, 0.0)
    batch = response_batch(ro, [0, 1, 2], tok.pad_token_id)
    assert batch["response_mask"].tolist()[1] == [0, 0, 0, 1, 0, 0]  # prompt and right padding masked
    with torch.no_grad():
        s = scores(model, batch)
        for i in range(3):
            ids = torch.tensor([ro.prompt_ids[i] + ro.response_ids[i]])
            lp = torch.log_softmax(model(input_ids=ids).logits[0].float(), -1)
            n_p = len(ro.prompt_ids[i])
            want = sum(float(lp[t - 1, ids[0, t]]) for t in range(n_p, ids.shape[1]))
            assert float(s[i]) == pytest.approx(want, abs=1e-4)
        # the padding's token id is irrelevant: the masks decide
        other = dict(batch, input_ids=torch.where(batch["attention_mask"] > 0, batch["input_ids"], 3))
        assert torch.allclose(scores(model, other), s, atol=1e-5)


def test_group_sampling_is_seeded_per_group_not_per_batch(tiny):
    model, tok = tiny
    items = _items(4)
    s = SampleSettings(group_size=4, temperature=1.0, top_p=0.95, max_new_tokens=8)
    together = sample(model, tok, items, s, seed=7, step=3)
    # as two workers would hold them: groups 0, 2 on rank 0 and 1, 3 on rank 1 (and in another batch order)
    split = [sample(model, tok, items[0::2], s, seed=7, step=3), sample(model, tok, items[1::2][::-1], s, seed=7, step=3)]

    def by_group(ro):
        out: dict[int, list[list[int]]] = {}
        for g, r in zip(ro.group_ids, ro.response_ids):
            out.setdefault(g, []).append(r)
        return out

    merged = {**by_group(split[0]), **by_group(split[1])}
    assert by_group(together) == merged
    assert len(together) == 16 and together.generated_tokens == sum(len(r) for r in together.response_ids)
    assert len({tuple(r) for r in together.response_ids}) > 4  # random weights: the samples differ
    assert by_group(sample(model, tok, items, s, seed=7, step=4)) != by_group(together)  # another step, other draws
    g1 = sample(model, tok, items, SampleSettings(4, 0.0, 1.0, 8), seed=0, step=0)
    assert len(g1) == 4 and g1.response_ids == sample(model, tok, items, SampleSettings(4, 0.0, 1.0, 8), seed=1,
                                                      step=9).response_ids  # greedy: one deterministic answer


def test_long_prompts_are_cut_from_the_left_and_counted(tiny):
    model, tok = tiny
    long = PromptItem(99, "1+" * 60 + "2=", "x", {"reference": "3"})
    ro = sample(model, tok, [long, *_items(1)], SampleSettings(2, 1.0, 1.0, 8), seed=0, step=1)
    assert ro.truncated_prompts == 1
    assert len(ro.prompt_ids[0]) == 48 - 8  # the context minus max_new_tokens
    assert tok.decode(ro.prompt_ids[0]).endswith("1+2=")  # the end of the prompt is kept


def test_a_group_that_cannot_be_judged_is_counted_and_not_trained_on(tiny):
    model, tok = tiny
    model = build_actor(tok, layers=1, dim=32, heads=2, context=48, seed=1)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    no_ref = PromptItem(1234, "12+30=", "12+30=", {})  # the math verifier needs a reference answer
    ok = _items(1)[0]
    ro = sample(model, tok, [no_ref, ok], SampleSettings(3, 1.0, 1.0, 8), seed=0, step=1)
    lab = label(make_verifier("math"), ro, [no_ref, ok])
    assert lab.failed_groups == 1 and sum(lab.excluded.values()) == 3 + sum(1 for t in ro.texts if not t.strip())
    assert all(ro.group_ids[r] == ok.group_id for r in lab.rows)
    # a step where every group fails: counted, no update (no weight anywhere), parameters untouched
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    state: dict = {"applied": 0, "rejected": 0}
    excluded: Counter = Counter()
    row, _ = logprob_step(bare=model, model=model, tokenizer=tok, opt=opt, objective=PACSObjective(reduction="sum"),
                          verifier=make_verifier("math"), items=[no_ref], step=1, seed=0,
                          sampling=SampleSettings(3, 1.0, 1.0, 8), schedule=ReferenceSchedule(1), state=state,
                          reference=None, excluded=excluded)
    assert row["failed_groups"] == 1 and not row["ok"] and state == {"applied": 0, "rejected": 1}
    assert any(k.startswith("verifier: no reference") for k in excluded)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_rloo_step_is_reinforce_with_the_leave_one_out_baseline():
    s = torch.tensor([0.5, -1.0, 2.0, 0.0], requires_grad=True)
    labels = torch.tensor([1.0, 0.0, 0.0, 1.0])
    gids = torch.tensor([0, 0, 0, 7])
    res = rloo_step(s, None, labels, gids, [s])
    # A = R - mean of the others: group 0: [1 - 0, 0 - 1/2, 0 - 1/2]; group of one: A = R
    assert s.grad.tolist() == pytest.approx([-1.0, 0.5, 0.5, -1.0])
    assert res.ok and res.metrics.num_groups == 2 and res.metrics.num_mixed_groups == 1


def test_actor_bad_inputs_are_one_clear_error(tmp_path, tiny):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    from stephanie_ray.embedding import bundled_model_path
    from stephanie_ray.training.actor import check_tokenizer

    with pytest.raises(UserError, match="actor path not found"):
        load_actor(str(tmp_path / "nope"))
    with pytest.raises(UserError, match="no model config"):
        load_actor(str(tmp_path))
    with pytest.raises(UserError, match="not a causal language model"):
        load_actor(str(bundled_model_path()))  # a sentence encoder (BertModel)
    model, tok = tiny
    d = save_actor(tmp_path / "a", model, tok, {"x": 1})
    m2, t2 = load_actor(str(d))
    assert t2.pad_token == "<|pad|>"
    assert {"config.json", "meta.json", "model.safetensors", "tokenizer.json"} <= {p.name for p in d.iterdir()}
    assert all(torch.equal(a, b) for a, b in zip(m2.state_dict().values(), model.state_dict().values()))
    t2.add_tokens([f"<extra{i}>" for i in range(50)])  # 50 tokens the model has no embedding for
    t2.save_pretrained(d)
    with pytest.raises(UserError, match="do not belong together"):
        load_actor(str(d))
    bare = Tokenizer(models.BPE())
    bare.pre_tokenizer = pre_tokenizers.ByteLevel()
    no_specials = PreTrainedTokenizerFast(tokenizer_object=bare)
    with pytest.raises(UserError, match="neither a pad token nor an end-of-sequence token"):
        check_tokenizer(no_specials, "t")
    eos_only = PreTrainedTokenizerFast(tokenizer_object=Tokenizer.from_str(tok.backend_tokenizer.to_str()),
                                       eos_token="<|endoftext|>")
    assert check_tokenizer(eos_only, "t").pad_token == "<|endoftext|>"  # pads with EOS, as GPT-2 users do


# ------------------------------------------------------------------------------------------ on Ray Train
TINY = {"logprob.actor_layers": 1, "logprob.actor_dim": 48, "logprob.actor_heads": 2, "logprob.actor_context": 40,
        "logprob.warmup_steps": 150, "logprob.warmup_batch": 32, "logprob.warmup_lr": 3e-3, "logprob.toy_digits": 1,
        "logprob.lr": 1e-3, "logprob.groups_per_step": 4,
        "logprob.group_size": 4, "logprob.eval_problems": 16, "logprob.eval_k": 2, "logprob.toy_problems": 64,
        "logprob.cpus_per_worker": 0.5, "logprob.checkpoint_every": 1, "logprob.max_new_tokens": 10,
        "logprob.max_failures": 1}


def _weights(path: str) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    return load_file(str(Path(path) / "model.safetensors"))


@pytest.mark.ray
@pytest.mark.slow
def test_cli_toy_arith_versions_two_workers_equal_one_and_resume(ray_local, tmp_path, capsys):
    from sqlalchemy import select

    from stephanie_ray.cli import main
    from stephanie_ray.db import Database
    from stephanie_ray.db.models import ModelVersion, TrainingStat

    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    common = ["--db", url, "--json", "--set", f"run.runs_dir={tmp_path / 'runs'}", "--set", "run.progress=false"]
    for k, v in TINY.items():
        common += ["--set", f"{k}={v}"]

    def train(*extra: str) -> dict:
        assert main(["train", "--mode", "logprob", "--task", "toy-arith", *extra, *common]) == 0
        return json.loads(capsys.readouterr().out.strip().splitlines()[-1])

    one = train("--steps", "2", "--workers", "1", "--run-name", "one")
    two = train("--steps", "2", "--workers", "2", "--run-name", "two", "--group-size", "4")
    assert (one["steps"], two["steps"], two["workers"], one["model_version"], two["model_version"]) == (2, 2, 2, 1, 2)
    path = Path(one["path"])
    assert {"config.json", "model.safetensors", "tokenizer.json", "meta.json"} <= {p.name for p in path.iterdir()}
    assert json.loads((path / "meta.json").read_text())["kind"] == "pacs_actor"
    assert Path(one["checkpoint"], "model.safetensors").is_file() and Path(one["checkpoint"], "state.json").is_file()
    report = Path(one["report"]).read_text()
    assert "PACS logprob mode" in report and "pacs_logprob_training.png" in report
    assert (Path(one["report"]).parent / "pacs_logprob_training.png").is_file()
    assert one["eval"]["before_training"]["n"] == 16 and "pass1" in one["eval"]["after_training"]

    db = Database.open(url)
    with db.session() as s:
        rows = {mv.run_name: mv for mv in s.scalars(select(ModelVersion).where(ModelVersion.kind == "pacs_actor"))}
        stats = {name: [(r.step, r.samples, r.metrics["passes"], r.metrics["response_tokens"], r.grad_norm,
                         r.metrics["mixed_groups"]) for r in
                        s.scalars(select(TrainingStat).where(TrainingStat.model_version_id == mv.id)
                                  .order_by(TrainingStat.step))] for name, mv in rows.items()}
    assert set(rows) == {"one", "two"} and len(stats["one"]) == 2
    # 2 workers == 1 worker: the same sampled groups (samples, passes, tokens) and the same update
    for a, b in zip(stats["one"], stats["two"]):
        assert a[:4] == b[:4] and a[5] == b[5] and a[4] == pytest.approx(b[4], rel=1e-4, abs=1e-7)
    assert sum(a[5] for a in stats["one"]) > 0  # some groups had both labels: a real gradient was compared
    w1, w2 = _weights(one["path"]), _weights(two["path"])
    assert w1.keys() == w2.keys()
    assert max(float(np.abs(w1[k] - w2[k]).max()) for k in w1) < 5e-4  # measured 1.5e-4 (module docstring)
    w0 = _weights(str(tmp_path / "runs" / "actors" / one["actor"]))  # training moved the weights
    assert max(float(np.abs(w1[k] - w0[k]).max()) for k in w1) > 1e-4

    again = train("--steps", "3", "--workers", "1", "--run-name", "one")  # resume by run name
    assert again["resumed_from"] == [2] and again["steps"] == 3 and again["model_version"] == 3
    with db.session() as s:
        mv = s.scalars(select(ModelVersion).where(ModelVersion.kind == "pacs_actor", ModelVersion.version == 3)).one()
        assert [r.step for r in s.scalars(select(TrainingStat).where(TrainingStat.model_version_id == mv.id)
                                          .order_by(TrainingStat.step))] == [1, 2, 3]
    db.dispose()
    assert main(["train", "--mode", "logprob", "--actor", str(tmp_path / "missing"), *common]) == 2
    assert "actor path not found" in capsys.readouterr().err


@pytest.mark.ray
@pytest.mark.slow
def test_casebooks_task_runs_with_the_critic_as_verifier(ray_local, tmp_path):
    """Prompts of a PACS dataset (synthetic requests, as test_train_ray builds it), verifier = a critic model
    version (saved by the critic's own save_version; its training is test_train_ray's business); the actor's
    context is small on purpose so that prompts are cut from the left and counted."""
    from stephanie_ray.config import load_config
    from stephanie_ray.db import Database
    from stephanie_ray.db.migrate import upgrade
    from stephanie_ray.training.critic import FrozenCritic, save_version
    from stephanie_ray.training.dataset import save_dataset
    from stephanie_ray.training.logprob_trainer import train_logprob
    from stephanie_ray.training.synthetic import synthetic_rows

    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    db = Database.open(url)
    upgrade(db.engine)
    ds = save_dataset(db, synthetic_rows(12, 3, seed=2), tmp_path, verifier="synthetic", verifier_version="1",
                      settings={}, excluded={}, run_id=None)
    torch.manual_seed(0)
    critic = save_version(tmp_path / "critic_v0001", FrozenCritic(384, 8),
                          {"backbone": "frozen", "dim": 384, "hidden": 8, "max_length": 64, "encoder_source": "",
                           "version": 1}, None)
    cfg = load_config(None, {**TINY, "run.runs_dir": str(tmp_path / "runs"), "db.url": url, "run.progress": False,
                             "ray.num_cpus": 2, "logprob.task": "casebooks", "logprob.steps": 2,
                             "logprob.actor_context": 32, "logprob.max_new_tokens": 12, "logprob.tokenizer_vocab": 320,
                             "logprob.run_name": "chat", "verifier.critic_model": str(critic),
                             "verifier.critic_threshold": 0.5}, env={})
    res = train_logprob(cfg, db, tmp_path / "run")
    assert res.steps == 2 and res.model_version == 1 and res.dataset_version == ds.dataset_version
    assert res.truncated_prompts > 0  # "user: I have a question about ...": longer than 32 - 12 tokens
    assert res.final["responses"] == 4 * 4 and res.final["sampled_groups"] == 4  # G = 4 answers to 4 requests
    assert Path(res.path, "model.safetensors").is_file() and Path(res.checkpoint, "state.json").is_file()
    meta = json.loads(Path(res.path, "meta.json").read_text())
    assert meta["task"] == "casebooks" and meta["dataset_version"] == ds.dataset_version
    cfg.verifier.critic_model = str(tmp_path / "no_critic")
    with pytest.raises(UserError, match="no meta.json"):
        train_logprob(cfg, db, tmp_path / "run2")
    db.dispose()
