"""NER retriever, pure parts: rules, text helpers, the detector chain, span embeddings, projection, index,
calibration. No database, no Ray; tiny data, seconds."""

from __future__ import annotations

import json

import numpy as np
import pytest

from stephanie_ray.errors import UserError
from stephanie_ray.ner.calibration import CalibrationSet, fit_domain, read_judgments, save_domain
from stephanie_ray.ner.detect import DetectorChain, DetectorSettings, resolve_overlaps
from stephanie_ray.ner.index import EntityIndex, IndexRows, build_index
from stephanie_ray.ner.projection import ProjectionSettings, ProjectionStore, TypeSet, train_projection
from stephanie_ray.ner.rules import find_rules
from stephanie_ray.ner.spans import SpanEmbedder, SpanSettings
from stephanie_ray.ner.text import chunk_text, code_block_ranges, latin_share, mask_ranges, normalise_entity

TECH = ("Use PyTorch with max_length=256, see arXiv:2509.04011 and https://github.com/a/b_(c). Edit "
        "src/app/main.py or ~/data/x.csv; call `torch.nn.Module` and getUserName. NASA met Hugging Face.\n"
        "```python\nimport numpy as np\nfrom sklearn.metrics import auc\nx = Paris()  # /etc/hosts\n```\n"
        "Barack Obama visited Berlin.")


def by_text(hits, text):
    out: dict[str, str] = {}
    for h in sorted(hits, key=lambda h: -h.score):  # the most confident label of each span
        out.setdefault(text[h.start:h.end], h.label)
    return out


def test_rules_find_technical_entities_with_exact_offsets():
    code = code_block_ranges(TECH)
    found = by_text(find_rules(TECH, code), TECH)
    assert found["arXiv:2509.04011"] == "ARXIV"
    assert found["https://github.com/a/b_(c)"] == "URL"  # closing bracket kept, final period dropped
    assert found["src/app/main.py"] == "PATH" and found["~/data/x.csv"] == "PATH" and found["/etc/hosts"] == "PATH"
    assert found["torch.nn.Module"] == "CODE"
    assert found["PyTorch"] == found["getUserName"] == found["max_length"] == "IDENT"
    assert found["NASA"] == "ACRONYM" and found["Hugging Face"] == "NAME"
    assert found["numpy"] == found["sklearn.metrics"] == "MODULE"
    assert "Paris" not in found  # code is not prose: capitalised names in code are not taken


@pytest.mark.parametrize("text, name", [("Вчера приехал Владимир Петров.", "Владимир Петров"),
                                        ("Ο Νίκος Καζαντζάκης έγραψε.", "Νίκος Καζαντζάκης"),
                                        ("I work at Bank of America now.", "Bank of America")])
def test_rules_names_in_any_cased_script(text, name):
    assert by_text(find_rules(text), text).get(name) == "NAME"


def test_rules_never_crash_on_other_scripts():
    for t in ["東京は日本の首都です。", "مرحبا بالعالم", "नमस्ते दुनिया", "😀 `x` \ufffd", ""]:
        for h in find_rules(t):
            assert 0 <= h.start < h.end <= len(t)


def test_text_helpers():
    t = "a\n```py\nx = 1\n```\nb"
    (a, b), = code_block_ranges(t)
    masked = mask_ranges(t, [(a, b)])
    assert len(masked) == len(t) and masked.count("\n") == t.count("\n") and "x" not in masked
    long = " ".join(f"w{i}" for i in range(3000))
    chunks = chunk_text(long, 500, 50)
    assert chunks[0].start == 0 and chunks[-1].start + len(chunks[-1].text) == len(long)
    for c1, c2 in zip(chunks, chunks[1:]):
        assert c2.start < c1.start + len(c1.text)  # overlap: nothing between two chunks is lost
        assert long[c2.start:c2.start + len(c2.text)] == c2.text
    assert latin_share("Привет мир") == 0.0 and latin_share("hello") == 1.0 and latin_share("123") == 1.0
    assert normalise_entity("  The   PyTorch, ") == normalise_entity("pytorch") == "pytorch"
    assert normalise_entity("ＰｙＴｏｒｃｈ") == "pytorch"  # NFKC


def test_resolve_overlaps_merges_and_prefers_confident_then_longer():
    cands = [(0, 7, "IDENT", 0.75, 0, "rules"), (0, 7, "ORG", 0.7, 1, "spacy"),  # same span: merged, ORG kept
             (10, 22, "NAME", 0.45, 0, "rules"), (10, 17, "PERSON", 0.7, 1, "spacy"),  # overlap: more confident
             (30, 35, "ORG", 0.7, 1, "spacy"), (30, 40, "ORG", 0.7, 1, "spacy")]  # tie: the longer
    out = resolve_overlaps(cands)
    assert out == [(0, 7, "ORG", 0.75, "rules+spacy"), (10, 17, "PERSON", 0.7, "spacy"), (30, 40, "ORG", 0.7, "spacy")]


@pytest.fixture(scope="module")
def chain():
    return DetectorChain(DetectorSettings(chunk_chars=300, chunk_overlap=60))


def test_chain_offsets_code_scripts_and_bad_input(chain):
    ru = "Привет, меня зовут Иван Петров, я живу в Москве и работаю программистом. " * 3
    pad = "Some filler words here. " * 20
    texts = [TECH, "", None, ru, "lone \ud800 surrogate near Barack Obama", pad + "Angela Merkel met Emmanuel Macron." + pad]
    res = chain.detect(texts)
    for text, d in zip(texts, res):
        text = (text or "").replace("\ud800", "\ufffd")
        for m in d.mentions:
            assert text[m.start:m.end] == m.text and m.text.strip() == m.text
    tech = {m.text: m for m in res[0].mentions}
    assert "Paris" not in tech and "numpy" in tech  # spaCy never reads code; rules take the imports
    assert tech["Barack Obama"].label == "PERSON" and "spacy" in tech["Barack Obama"].detector
    assert res[1].mentions == [] and res[2].mentions == []
    assert res[3].chunks_skipped_script == res[3].chunks >= 1  # Cyrillic: spaCy skipped, counted
    assert "Иван Петров" in {m.text for m in res[3].mentions}  # the rules still read it
    assert "Barack Obama" in [m.text for m in res[4].mentions]
    long = {m.text for m in res[5].mentions}
    assert res[5].chunks > 1 and {"Angela Merkel", "Emmanuel Macron"} <= long
    assert len([m for m in res[5].mentions if m.text == "Angela Merkel"]) == 1  # found in two chunks: one mention


@pytest.fixture(scope="module")
def embedder():
    return SpanEmbedder.get(SpanSettings())


def test_span_embedder_one_pass_per_text_and_batch_invariance(embedder, monkeypatch):
    texts = ["Apple bought Hugging Face in Paris.", "Django and Flask are Python web frameworks."]
    spans = [[(0, 5), (13, 25), (29, 34)], [(0, 6), (11, 16)]]
    calls = []
    orig = embedder._forward
    monkeypatch.setattr(embedder, "_forward", lambda seqs: calls.append(len(seqs)) or orig(seqs))
    both = embedder.embed(texts, spans)
    assert calls == [2]  # one batch holding one window per text, for all five spans
    alone = embedder.embed(texts[1:], spans[1:])
    np.testing.assert_allclose(both[1], alone[0], atol=1e-4)
    assert both[0].shape == (3, embedder.dim) and np.isfinite(both[0]).all()


def test_span_embedder_long_texts_scripts_and_queries(embedder):
    long = " ".join(["word"] * 700) + " Django is great " + " ".join(["word"] * 700)
    a = long.index("Django")
    v = embedder.embed([long, "東京は日本の首都です", "Привет Иван"], [[(a, a + 6), (0, 4)], [(0, 2)], [(7, 11)]])
    assert all(np.isfinite(x).all() for x in v)
    q = embedder.embed_queries(["law firm", " sorting algorithm "])
    assert q.shape == (2, embedder.dim)
    for bad in ["", "   ", "\u200b"]:
        with pytest.raises(UserError):
            embedder.embed_queries([bad])


def test_span_embedder_layer_submodule_and_errors():
    sub = SpanEmbedder.get(SpanSettings(submodule="encoder.layer.2.attention.self.value", pooling="last"))
    assert np.isfinite(sub.embed(["Paris is nice"], [[(0, 5)]])[0]).all()
    with pytest.raises(UserError, match="out of range"):
        SpanEmbedder(SpanSettings(layer=99))
    with pytest.raises(UserError, match="no sub-module"):
        SpanEmbedder(SpanSettings(submodule="no.such.module"))


def typeset(rng, n_types=3, per=20, dim=16):
    centers = rng.normal(size=(n_types, dim)) * 3
    ments = np.concatenate([centers[t] + rng.normal(size=(per, dim)) for t in range(n_types)]).astype(np.float32)
    types = np.repeat(np.arange(n_types), per)
    anchors = (centers + rng.normal(size=centers.shape) * 0.5).astype(np.float32)
    return TypeSet([f"t{i}" for i in range(n_types)], [[f"t{i}"] for i in range(n_types)], anchors,
                   np.arange(n_types), ments, types, "h1")


def test_projection_trains_saves_loads_and_versions(tmp_path):
    ts = typeset(np.random.default_rng(0))
    st = ProjectionSettings(hidden=32, out_dim=24, epochs=5, batch_size=16)
    proj = train_projection(ts, st, "sig")
    assert proj.meta["metrics"]["loss_last"] < proj.meta["metrics"]["loss_first"]
    store = ProjectionStore(tmp_path)
    saved = store.save(proj)
    assert saved.version == 1 and (saved.path / "model.safetensors").is_file()
    loaded = store.latest("sig")
    np.testing.assert_allclose(loaded.project(ts.mentions), proj.project(ts.mentions), atol=1e-6)
    assert np.allclose(np.linalg.norm(loaded.project(ts.mentions), axis=1), 1, atol=1e-5)
    assert store.find("h1", st).version == 1 and store.find("h2", st) is None and store.latest("other") is None
    assert store.save(train_projection(ts, st, "sig")).version == 2
    with pytest.raises(UserError, match="two types"):
        train_projection(TypeSet(["a"], [["a"]], ts.anchors[:1], np.array([0]), ts.mentions[:5],
                                 np.zeros(5, dtype=np.int64)), st, "sig")
    (saved.path / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(UserError, match="cannot read the projection"):
        store.get(1)


def rows(raw, n, dup=0):
    ids = list(range(n)) + list(range(dup))
    return IndexRows(ids, ["message"] * len(ids), [i // 3 for i in ids], [f"e{i}" for i in ids], ["ORG"] * len(ids),
                     [i * 10 for i in ids], [i * 10 + 2 for i in ids], [f"... e{i} ..." for i in ids],
                     [0] * len(ids), raw[ids])


def test_index_builds_dedups_searches_and_refuses_bad_files(tmp_path):
    ts = typeset(np.random.default_rng(1))
    proj = ProjectionStore(tmp_path).save(train_projection(ts, ProjectionSettings(32, 24, epochs=2), "sig"))
    n = len(ts.mentions)
    built = build_index(tmp_path, [rows(ts.mentions, n, dup=7)], proj, n_trees=5, span_signature="sig")
    assert built.items == n and built.duplicates == 7
    idx = EntityIndex.load(tmp_path, projection_version=proj.version, span_signature="sig")
    hits = idx.search(proj.project(ts.mentions[4:5])[0], 3)
    assert hits[0].row == 4 and abs(hits[0].similarity - 1) < 1e-4 and idx.row(4)["entity_text"] == "e4"
    with pytest.raises(UserError, match="projection v1, the current projection is v2"):
        EntityIndex.load(tmp_path, projection_version=2)
    with pytest.raises(UserError, match="span model"):
        EntityIndex.load(tmp_path, span_signature="other")
    ann = built.path / "entities.ann"
    data = ann.read_bytes()
    ann.write_bytes(data[: len(data) // 2])
    with pytest.raises(UserError, match="corrupt.*stephanie ner index"):
        EntityIndex.load(tmp_path)
    ann.unlink()
    with pytest.raises(UserError, match="missing"):
        EntityIndex.load(tmp_path)
    (built.path / "index.json").write_text("{not json")
    with pytest.raises(UserError, match="corrupt"):
        EntityIndex.load(tmp_path)
    with pytest.raises(UserError, match="no entity index"):
        EntityIndex.load(tmp_path / "elsewhere")


def test_calibration_per_domain(tmp_path):
    rng = np.random.default_rng(0)
    sims = rng.uniform(-0.2, 0.9, size=400)
    labels = (rng.uniform(size=400) < 1 / (1 + np.exp(-12 * (sims - 0.5)))).astype(float)
    queries = [f"q{i % 40}" for i in range(400)]
    cal, rep = fit_domain(sims, labels, queries, method="platt", holdout_share=0.3, min_judgments=10)
    assert rep["held_out"] > 0 and rep["ece_after"] < rep["ece_before"] and rep["brier_after"] < rep["brier_before"]
    save_domain(tmp_path, "code", cal, np.ones(4, dtype=np.float32), 3, rep)
    cs = CalibrationSet.load(tmp_path, 3)
    out, applied, _ = cs.apply("code", np.array([0.1, 0.8]))
    assert applied and out[0] < out[1]
    assert cs.detect(np.ones(4) / 2, 0.5) == "code" and cs.detect(-np.ones(4) / 2, 0.5) is None
    ident, applied, why = cs.apply("legal", np.array([-0.3, 0.4]))
    assert not applied and list(ident) == [0.0, 0.4] and "no calibrator" in why
    stale = CalibrationSet.load(tmp_path, 4)
    assert "code" in stale.stale and not stale.apply("code", np.array([0.5]))[1]
    with pytest.raises(UserError, match="both"):
        fit_domain(sims, np.ones(400), queries, method="platt", holdout_share=0.3, min_judgments=10)
    bad = tmp_path / "j.jsonl"
    bad.write_text(json.dumps({"query": "x", "result": "abc", "relevant": 1}) + "\n")
    with pytest.raises(UserError, match=":1: \"result\""):
        read_judgments(bad)


def test_hf_token_classification_detector(tmp_path):
    """Any HF token-classification model by path: a tiny random BERT with MiniLM's tokenizer."""
    from transformers import AutoTokenizer, BertConfig, BertForTokenClassification

    from stephanie_ray.embedding import bundled_model_path

    tok = AutoTokenizer.from_pretrained(str(bundled_model_path()))
    labels = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG"]
    conf = BertConfig(vocab_size=tok.vocab_size, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                      intermediate_size=32, num_labels=len(labels), id2label=dict(enumerate(labels)),
                      label2id={v: k for k, v in enumerate(labels)})
    BertForTokenClassification(conf).save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    chain = DetectorChain(DetectorSettings(detectors=("hf", "rules"), hf_model=str(tmp_path)))
    text = "Barack Obama met the board of Siemens in Berlin. " * 3
    (d,) = chain.detect([text])
    for m in d.mentions:
        assert text[m.start:m.end] == m.text
    with pytest.raises(UserError):
        DetectorChain(DetectorSettings(detectors=("hf",), hf_model=str(tmp_path / "nope")))
