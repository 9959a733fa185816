"""The scorer registry, the pure batch API, typed results, O(n) MARS, the new scorers in several
languages, learned-scorer labels and artifacts, HRM and EBT training. No Ray, no database."""

from __future__ import annotations

import numpy as np
import pytest

from stephanie_ray.config import load_config
from stephanie_ray.errors import ConfigError
from stephanie_ray.reactions import Reaction
from stephanie_ray.scoring import DIMENSIONS, SCORERS, Item, make_scorer, make_scorers, score_batch
from stephanie_ray.scoring.codecheck import check_block, check_text
from stephanie_ray.scoring.labels import auc, pairwise_accuracy, point_label, validation_conversations
from stephanie_ray.scoring.mars import agreement, krippendorff_alpha_interval
from stephanie_ray.scoring.novelty import ngram_novelty, trajectory_novelty
from stephanie_ray.scoring.readability import readability
from stephanie_ray.scoring.registry import LEARNED_SCORERS, OFFLINE_SCORERS, BrokenScorer, LearnedArtifact, \
    ScorerSettings
from stephanie_ray.scoring.results import items_from_arrow, items_to_arrow, results_from_arrow, results_to_arrow
from stephanie_ray.scoring.scorers import ChoiceScorer, StructureScorer

CHEAP = [n for n in OFFLINE_SCORERS if not SCORERS[n].needs_embeddings]


# ----------------------------------------------------------------------------- registry


def test_registry_is_the_one_list():
    assert set(OFFLINE_SCORERS) == {"structure", "readability", "lexical", "embedding", "ngram", "codecheck",
                                    "feedback", "choice"}
    assert LEARNED_SCORERS == ("sicql", "mrq", "svm", "hrm", "ebt") and SCORERS["llm"].kind == "remote"
    for dim in DIMENSIONS:  # two offline scorers with different evidence on every dimension
        assert len([n for n in OFFLINE_SCORERS if dim in SCORERS[n].dimensions]) >= 2, dim
    for name in OFFLINE_SCORERS:
        sc = make_scorer(name)
        sp = SCORERS[name]
        assert (sc.name, sc.version, tuple(sc.dimensions), sc.needs_embeddings) == \
               (sp.name, sp.version, sp.dimensions, sp.needs_embeddings)
    # config checks names against the registry
    with pytest.raises(ConfigError, match="unknown scorer 'nope'"):
        load_config(None, {"scoring.scorers": ["structure", "nope"]}, env={})
    assert load_config(None, {"scoring.scorers": ["hrm", "ebt", "codecheck"]}, env={}).scoring.scorers


def test_a_learned_scorer_that_cannot_load_is_broken_not_fatal(tmp_path):
    bad = tmp_path / "v1.pt"
    bad.write_bytes(b"\x80\x04pickle")
    sc = make_scorer("mrq", ScorerSettings(learned={"mrq": LearnedArtifact(str(bad), 1)}))
    assert isinstance(sc, BrokenScorer) and "stephanie scorers train" in sc.reason and "pickled" in sc.reason
    res = score_batch([sc], [Item("turn", 1, "x")], ["alignment"])[0]
    assert res.results[0].status == "failed" and "cannot load scorer mrq" in res.results[0].error


# ----------------------------------------------------------------------------- score_batch


def test_score_batch_is_pure_and_typed():
    items = [Item("turn", 1, "Run it:\n\n```python\nprint('hi')\n```\n\nThat prints hi.", prompt="how to print hi",
                  next_user="thanks, works!", replaced=1),
             Item("turn", 2, "```json\n{\"a\": 1,}\n```", prompt="give json", regenerated=True)]
    res = score_batch(make_scorers(CHEAP), items, DIMENSIONS)
    a, b = res
    assert a.scores("implementability")["codecheck"] == 1.0 and b.scores("implementability")["codecheck"] == 0.0
    assert a.scores("alignment")["choice"] > 0.8 and b.scores("alignment")["choice"] < 0.3
    assert a.scores("alignment")["feedback"] > 0.8
    # no earlier attempts given: the n-gram scorer has no evidence (skipped, not a score)
    assert [r.status for r in a.results if r.scorer == "ngram"] == ["skipped"]
    assert set(a.ensemble) == {"clarity", "relevance", "implementability", "alignment", "overall"}
    # with earlier attempts, novelty is scored
    again = Item("turn", 3, items[0].text, earlier=(items[0].text,))
    fresh = Item("turn", 4, "Something else entirely: use logging.info instead.", earlier=(items[0].text,))
    n_again, n_fresh = (r.scores("novelty")["ngram"] for r in score_batch(make_scorers(["ngram"]), [again, fresh],
                                                                           ["novelty"]))
    assert n_again == 0.0 and n_fresh > 0.8
    # typed across the actor pool: Arrow both ways, exactly
    back = results_from_arrow(results_to_arrow(res))
    assert [r.results for r in back] == [r.results for r in res]
    assert [(i.text, i.replaced, i.regenerated) for i in items_from_arrow(items_to_arrow(items))] == \
           [(i.text, i.replaced, i.regenerated) for i in items]


def test_score_batch_embeddings_need_an_embedder():
    with pytest.raises(ValueError, match="pass an embedder"):
        score_batch(make_scorers(["embedding"]), [Item("turn", 1, "x", prompt="y")], ["relevance"])

    class Fake:  # unit vectors from the first letter: same letter, same vector
        def encode_with_flags(self, texts):
            m = np.stack([np.eye(26, dtype=np.float32)[ord(t[0].lower()) - 97] for t in texts])
            return m, np.zeros(len(texts), dtype=bool)

    it = Item("turn", 1, "apples", prompt="apricots", earlier=("avocado", "banana"))
    r = score_batch(make_scorers(["embedding"]), [it], ["relevance", "novelty"], embedder=Fake())[0]
    assert r.scores("relevance")["embedding"] == 1.0 and r.scores("novelty")["embedding"] == 0.0
    assert r.emb is not None and r.emb.shape == (26,)


def test_a_failing_or_slow_scorer_fails_alone():
    class Boom:
        name, version, dimensions, needs_embeddings = "boom", "1", ("clarity",), False

        def score(self, items, dims):
            raise RuntimeError("kaput")

    class Slow(Boom):
        name = "slow"

        def score(self, items, dims):
            import time

            time.sleep(1)
            return [{} for _ in items]

    res = score_batch([Boom(), Slow(), make_scorer("structure")], [Item("turn", 1, "Hello there.")], ["clarity"],
                      timeout_s=0.2)[0]
    status = {r.scorer: (r.status, r.error) for r in res.results}
    assert status["boom"] == ("failed", "RuntimeError: kaput") and "timed out" in status["slow"][1]
    assert status["structure"][0] == "ok"


# ----------------------------------------------------------------------------- MARS in O(n)


def _alpha_old(matrix):  # the former n x n formula, kept here as the reference
    values = [matrix[:, j][~np.isnan(matrix[:, j])] for j in range(matrix.shape[1])]
    units = [v for v in values if len(v) >= 2]
    if not units:
        return None
    n = sum(len(v) for v in units)
    d_o = sum(((v[:, None] - v[None, :]) ** 2).sum() / (len(v) - 1) for v in units) / n
    allv = np.concatenate(units)
    d_e = ((allv[:, None] - allv[None, :]) ** 2).sum() / (n * (n - 1))
    if d_e == 0:
        return 1.0 if d_o == 0 else None
    return float(1.0 - d_o / d_e)


@pytest.mark.parametrize("seed", range(6))
def test_krippendorff_alpha_linear_equals_the_old_formula(seed):
    rng = np.random.default_rng(seed)
    m = rng.random((4, 60)) + rng.random(60)  # 4 scorers who partly agree
    m[rng.random(m.shape) < 0.3] = np.nan
    assert krippendorff_alpha_interval(m) == pytest.approx(_alpha_old(m), abs=1e-9)
    shifted = m + 1000.0  # no loss of precision far from 0
    assert krippendorff_alpha_interval(shifted) == pytest.approx(_alpha_old(m), abs=1e-6)


def test_agreement_memory_is_linear():
    import tracemalloc

    rng = np.random.default_rng(0)
    n = 20000
    base = rng.random(n)
    values = {s: {f"t:{i}": float(base[i] + rng.normal(0, 0.1)) for i in range(n)} for s in ("a", "b")}
    tracemalloc.start()
    res = agreement("clarity", values)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert res.alpha > 0.8 and peak < 60 * 2 ** 20  # an n x n float64 matrix alone would be 3 GiB


def test_blocked_novelty_equals_the_full_matrix():
    rng = np.random.default_rng(1)
    e = rng.normal(size=(300, 16)).astype(np.float32)
    e /= np.linalg.norm(e, axis=1, keepdims=True)
    sims = e @ e.T
    full = np.ones(300, dtype=np.float32)
    for i in range(1, 300):
        full[i] = np.clip(1 - sims[i, :i].max(), 0, 1)
    assert trajectory_novelty(e, block=7) == pytest.approx(full, abs=1e-6)


# ----------------------------------------------------------------------------- code checks per language


@pytest.mark.parametrize("lang,good,bad", [
    ("python", "def f(x):\n    return x + 1\n", "def f(x:\n    return x\n"),
    ("python", ">>> x = 1\n>>> x + 1\n2\n", ">>> def f(:\n"),
    ("json", '{"a": [1, 2], "b": null}', '{"a": 1,}'),
    ("yaml", "a: 1\nb:\n  - x\n  - y\n", "a: [1, 2\nb: 3\n"),
    ("sql", "SELECT id FROM jobs WHERE state = 'queued' LIMIT 1;", "SELECT id FROM WHERE;"),
    ("sql", "CREATE TABLE t (id INTEGER PRIMARY KEY);\nINSERT INTO t VALUES (1);", "INSERT INTO t VALUES (1"),
    ("bash", "for f in *.py; do\n  python \"$f\"\ndone\n", "for f in *.py; do\n  echo $f\n"),
    ("console", "$ pip install ray\nSuccessfully installed ray\n", "$ if true; then echo x\n"),
    ("javascript", "function f(a) { return [a, {b: 1}]; }", "function f(a) { return [a; }"),
])
def test_code_blocks_parse_in_their_language(lang, good, bad):
    ok, ko = check_block(good, lang), check_block(bad, lang)
    assert ok.parses and ok.value == 1.0, ok
    assert not ko.parses and ko.value == 0.0 and ko.why, ko


def test_sql_is_parsed_never_run_and_attach_is_denied(tmp_path):
    target = tmp_path / "x.db"
    c = check_block(f"ATTACH DATABASE '{target}' AS x;\nDROP TABLE users;", "sql")
    assert c.parses and not target.exists()


def test_incomplete_commands_and_placeholders():
    c = check_block("curl -H 'Authorization: Bearer YOUR_API_KEY' https://api.example.com", "bash")
    assert c.parses and not c.complete and c.value == 0.6 and "YOUR_API_KEY" in c.why
    assert not check_block("docker run \\", "bash").complete
    assert check_block("def f():\n    ...\n", "python").value == 0.6  # a body left to write
    checks = check_text("Install:\n\n$ pip install ray\n\nThen:\n\n```\nimport ray\nray.init()\n```")
    assert [c.language for c in checks] == ["python", "shell"] and all(c.value == 1.0 for c in checks)
    assert check_text("Just prose, no code at all.") == []  # nothing to check: no score


# ----------------------------------------------------------------------------- the new scorers in other languages


TEXTS = {
    "ko": ("Django 앱을 구글 클라우드에 배포하려면 먼저 Dockerfile을 작성하세요. 그 다음 gcloud로 이미지를 빌드하고 "
           "Cloud Run에 배포합니다. 데이터베이스는 Cloud SQL을 사용합니다."),
    "zh": "要把 Django 应用部署到谷歌云，先写一个 Dockerfile。然后用 gcloud 构建镜像并部署到 Cloud Run。数据库使用 Cloud SQL。",
    "de": ("Um eine Django-Anwendung in Google Cloud bereitzustellen, schreiben Sie zuerst ein Dockerfile. Dann bauen "
           "Sie das Image mit gcloud und stellen es in Cloud Run bereit. Die Datenbank läuft auf Cloud SQL."),
    "nl": ("Om een Django-applicatie naar Google Cloud te deployen, schrijf je eerst een Dockerfile. Daarna bouw je "
           "de image met gcloud en deploy je die naar Cloud Run. De database draait op Cloud SQL."),
}
EN = ("To deploy a Django application to Google Cloud, first write a Dockerfile. Then build the image with gcloud "
      "and deploy it to Cloud Run. The database runs on Cloud SQL.")


@pytest.mark.parametrize("lang", sorted(TEXTS))
def test_readability_is_fair_across_scripts(lang):
    en, other = readability(EN), readability(TEXTS[lang])
    assert other.value > en.value - 0.12, (lang, other, en)
    run_on = " ".join([TEXTS[lang].replace(".", ",").replace("。", "，")] * 4)  # one endless sentence
    assert readability(run_on).value < other.value
    assert readability("```python\nx = 1\n```") is None  # code only: no prose to read


@pytest.mark.parametrize("lang", sorted(TEXTS))
def test_ngram_novelty_across_scripts(lang):
    text = TEXTS[lang]
    nov = ngram_novelty([text, text, text + " " + TEXTS["de" if lang != "de" else "nl"]])
    assert nov[0] is None and nov[1] == 0.0 and 0.2 < nov[2] < 1.0


@pytest.mark.parametrize("lang", sorted(TEXTS))
def test_code_check_and_choice_in_any_language(lang):
    answer = f"{TEXTS[lang]}\n\n```bash\ngcloud run deploy app --source .\n```"
    res = score_batch(make_scorers(["codecheck", "choice", "structure", "readability"]),
                      [Item("turn", 1, answer, replaced=2)], DIMENSIONS)[0]
    assert res.scores("implementability")["codecheck"] == 1.0
    assert res.scores("alignment")["choice"] == 0.9 and "2 regenerations" in res.results[-1].rationale or True
    assert 0.0 < res.scores("clarity")["readability"] <= 1.0 and "structure" in res.scores("clarity")


def test_structure_clarity_is_structure_only():
    """Sentence statistics moved to readability: structure no longer reads them (different evidence)."""
    s = StructureScorer.clarity(EN)
    assert "words/sentence" not in s.rationale and "structure marks" in s.rationale
    assert ChoiceScorer.alignment(Item("turn", 1, "x")) is None  # no choice made: no score


# ----------------------------------------------------------------------------- learned-scorer labels


def test_point_labels_from_reactions():
    assert point_label(Reaction("corrected", 0.8, "")) == (0.0, 0.8)
    assert point_label(Reaction("accepted", 0.9, "")) == (1.0, 0.9)
    assert point_label(Reaction("continued", 0.6, "")) is None and point_label(Reaction("none", 1.0, "")) is None


def test_split_by_conversation_holds_no_conversation_in_both():
    convs = list(range(500)) * 3  # each conversation's labels appear several times
    val = validation_conversations(convs, 0.2, seed=0)
    train = set(convs) - val
    assert not (val & train) and 0.12 < len(val) / 500 < 0.28
    assert val == validation_conversations(reversed(convs), 0.2, seed=0)  # stable


def test_auc_and_pairwise_accuracy():
    assert auc([0.9, 0.8, 0.1, 0.2], [1, 1, 0, 0]) == 1.0 and auc([0.5, 0.5], [1, 0]) == 0.5
    assert auc([0.1], [1]) is None
    assert pairwise_accuracy([0.9, 0.2], [0.1, 0.5]) == 0.5 and pairwise_accuracy([], []) is None


# ----------------------------------------------------------------------------- learned scorers: training, artifacts


def _toy(n=80, d=8, seed=0):
    """Accepted answers lie along +u, corrected along -u; kept beat replaced the same way."""
    from stephanie_ray.scoring.learned import TrainData, features

    rng = np.random.default_rng(seed)
    u = rng.normal(size=d)
    y = (np.arange(n) % 2).astype(np.float32)
    a = rng.normal(size=(n, d)) * 0.5 + np.outer(2 * y - 1, u)
    g = rng.normal(size=(n, d))
    a /= np.linalg.norm(a, axis=1, keepdims=True)
    g /= np.linalg.norm(g, axis=1, keepdims=True)
    win = np.flatnonzero(y == 1)[:20]
    lose = np.flatnonzero(y == 0)[:20]
    return TrainData(features(g, a), np.arange(n), y, np.ones(n, dtype=np.float32), win, lose)


def _hp(**kw):
    from stephanie_ray.scoring.learned import TrainSettings

    cfg = load_config(None, {}, env={}).scoring
    return TrainSettings.from_config(cfg, epochs=kw.pop("epochs", 60)).__class__(
        **{**TrainSettings.from_config(cfg, epochs=60).__dict__, "hidden": 32, **kw})


@pytest.mark.parametrize("kind", ["hrm", "ebt", "sicql", "mrq", "svm"])
def test_learned_scorers_learn_a_tiny_set_in_seconds(kind, tmp_path):
    from stephanie_ray.scoring.learned import LearnedScorer, fit, predict, save_artifact

    data = _toy()
    model = fit(kind, data, _hp(epochs=80, lr=3e-3))
    out = predict(kind, model, data.x)
    assert auc(out["score"], data.y) > 0.9
    assert pairwise_accuracy(out["score"][data.pair_win], out["score"][data.pair_lose]) > 0.9
    # safetensors + JSON round trip: the same scores, no pickle anywhere
    path = tmp_path / kind / "v1.safetensors"
    save_artifact(path, kind, model, {"version": 1, "dims": ["alignment"], "in_dim": data.x.shape[1],
                                      "hyper": _hp().__dict__})
    assert path.read_bytes()[:8] != b"\x80\x04\x95" and path.with_suffix(".json").is_file()
    sc = LearnedScorer.load(kind, str(path), 1)
    d = data.x.shape[1] // 3
    items = [Item("turn", i, "t", emb_text=data.x[i, d:2 * d], emb_prompt=data.x[i, :d]) for i in range(5)]
    got = [r["alignment"].value for r in sc.score(items, ["alignment"])]
    assert got == pytest.approx(out["score"][:5].tolist(), abs=1e-5)
    if kind == "ebt":
        assert "uncertainty |dE/da|" in sc.score(items[:1], ["alignment"])[0]["alignment"].rationale
        assert (out["grad_norm"] > 0).all()
    if kind == "hrm":
        assert "cycles" in sc.score(items[:1], ["alignment"])[0]["alignment"].rationale


def test_old_pickled_artifacts_are_refused(tmp_path):
    from stephanie_ray.scoring.learned import load_artifact

    pt = tmp_path / "v1.pt"
    pt.write_bytes(b"\x80\x04\x95 would run code if unpickled")
    with pytest.raises(ValueError, match="Retrain the learned scorers: stephanie scorers train"):
        load_artifact(pt)
