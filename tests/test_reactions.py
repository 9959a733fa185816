"""The reactions classifier: rules in many languages, the llm and hf backends, the CLI, the dev-set guard."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from stephanie_ray.config import ReactionsConfig, load_config
from stephanie_ray.errors import ConfigError
from stephanie_ray.reactions import (BACKENDS, LABELS, Reaction, ReactionError, ReactionInput, classify, classify_batch,
                                     make_backend)
from stephanie_ray.reactions.evaluate import LineError, agreement, parse_line, read_labelled
from stephanie_ray.reactions.lexicon import LEXICON
from stephanie_ray.reactions.text import error_shape, normalise, overlap, prose, tokens

REPO = Path(__file__).resolve().parent.parent
DEV = REPO / "tests" / "data" / "reactions_dev.jsonl"
SAMPLES = REPO / "tests" / "data" / "reactions_samples.jsonl"
STEPHANIE = str(Path(sys.executable).with_name("stephanie"))


def label(next_msg, prompt="How do I make this work?", answer="Here is how: ...", **kw) -> str:
    return classify(prompt, answer, next_msg, **kw).label


# ----------------------------------------------------------------------------- the issue's examples


def test_issue_false_corrections_are_gone():
    # a follow-up that repeats terms of the request is not "asks the same again"
    assert label("How do I add priorities to the durable SQLite job queue in Python?",
                 prompt="How do I implement a durable job queue on SQLite in Python, with retries?") == "continued"
    # "No explanation necessary" is not "no"
    assert label("No explanation necessary, just add type hints") == "continued"
    # a pasted log the assistant asked for is the reply it asked for, not a complaint
    log = "myapp[812]: Traceback (most recent call last):\nmyapp[812]: ModuleNotFoundError: No module named 'flask'"
    r = classify("nginx returns 502", "Run `journalctl -u myapp -n 50` and paste the output here.", log)
    assert r.label == "continued" and "asked for" in r.rationale
    # "buy a great amount of the products" is not acceptance
    assert label("How can I buy a great amount of the products cheaply?") == "continued"


@pytest.mark.parametrize("next_msg", [
    "버튼이 작동하지 않아요",  # Korean: the button doesn't work
    "Unable to connect. No connection could be made because the target machine actively refused it.",
    "but i get false",
    "it does not change the color of the bars",
    "Ik zou liever hebben dat je eerst mogelijke oorzaken voorstelt",  # Dutch: I'd rather you suggest causes
])
def test_issue_missed_corrections_are_found(next_msg):
    assert label(next_msg) == "corrected"


# ----------------------------------------------------------------------------- per language


@pytest.mark.parametrize("lang, next_msg, expected", [
    ("en", "thx, that worked 👍", "accepted"),
    ("en", "nope, still the same error", "corrected"),
    ("en", "ok. and for hosting?", "continued"),
    ("nl", "werkt niet, hij markeert niks", "corrected"),
    ("nl", "Top, dankjewel! Het is gelukt", "accepted"),
    ("nl", "kan ik ook havermelk gebruiken?", "continued"),
    ("de", "Funktioniert nicht, node -v zeigt immer noch v12", "corrected"),
    ("de", "Perfekt, danke!", "accepted"),
    ("de", "Kannst du noch eine Strophe über Regen hinzufügen?", "continued"),
    ("it", "non funziona, mi restituisce solo la prima colonna", "corrected"),
    ("it", "perfetto grazie mille", "accepted"),
    ("it", "e se volessi aggiungere una gita a Tivoli?", "continued"),
    ("ko", "해봤는데 안 돼요", "corrected"),
    ("ko", "덕분에 해결됐어요", "accepted"),
    ("ko", "비 오면 어디 가면 좋아요?", "continued"),
    ("zh", "试了还是不行，颜色没有变化", "corrected"),
    ("zh", "好的，谢谢！", "accepted"),
    ("zh", "那怎么加标题和坐标轴名称", "continued"),
    ("fr", "ça marche pas, l'image reste à gauche", "corrected"),
    ("es", "listo, ya funciona. gracias!!", "accepted"),
    ("pt", "nao funcionou, aparece #N/D", "corrected"),
    ("ja", "試しましたが、まだ動かないです", "corrected"),
    ("ru", "Спасибо, всё работает", "accepted"),
    ("pl", "nie działa, przycisk jest wyszarzony", "corrected"),
    ("tr", "çalışmıyor, None döndürüyor", "corrected"),
])
def test_rules_per_language(lang, next_msg, expected):
    assert label(next_msg) == expected, (lang, classify("q", "a", next_msg))


def test_every_required_language_has_every_category():
    for lang in ("en", "nl", "de", "fr", "es", "it", "pt", "ko", "zh", "ja", "ru", "pl", "tr"):
        entry = LEXICON[lang]
        for cat in ("complain", "problem", "thanks", "approve", "approve_open", "asks_output"):
            assert entry.get(cat), (lang, cat)


def test_complaints_outweigh_thanks_and_approval_outweighs_a_bug_in_passing():
    assert label("Thanks, but it still fails with a lock error") == "corrected"
    assert label("nice, that caught a bug in my add function actually. thanks!") == "accepted"
    assert label("I get an exception when two processes start") == "corrected"  # weak problem words
    assert label("does it work with Python 3.8?") == "continued"  # a question, not approval
    assert label("not helpful") == "corrected"


def test_error_output_by_shape_in_any_language():
    tb = 'Traceback (most recent call last):\n  File "a.py", line 2, in <module>\nKeyError: \'name\''
    assert error_shape(tb) == "a Python traceback"
    assert error_shape("Uncaught TypeError: x is undefined\n    at App (App.jsx:14:22)") == "an exception"
    assert error_shape("HTTP/1.1 500 Internal Server Error") == "an HTTP error"
    assert error_shape("ORA-00942: table or view does not exist") == "a database error"
    assert error_shape("FAILED tests/test_a.py::test_b - assert 1 == 2") == "failing test output"
    assert error_shape("da kommt #WERT! raus") == "a spreadsheet error"
    assert error_shape("今天天气很好") is None and error_shape("what is an error budget") is None
    assert label(tb, prompt="用Python写一个读取JSON文件的函数") == "corrected"
    # the assistant asked for it (in Chinese, in Italian): the same traceback is a reply, not a complaint
    assert label(tb, answer="把完整的报错信息贴出来我看看。") == "continued"
    assert label(tb, answer="Eseguilo e incollami l'output se dà errori.") == "continued"


def test_reask_needs_high_similarity_and_little_new_content():
    p = "How do I center a div?"
    assert label("How do I center a div?", prompt=p) == "corrected"
    assert label("how do i center a div", prompt=p) == "corrected"
    longer = "How do I center a div vertically inside a flex container with a fixed header?"
    assert label(longer, prompt=p) == "continued"
    assert label("写一个冒泡排序", prompt="写一个冒泡排序") == "corrected"  # CJK: per-character tokens
    ov = overlap("How do I implement a durable job queue on SQLite in Python?",
                 "How do I add priorities to the durable job queue on SQLite in Python?")
    assert ov.new_share > 0.25


def test_structural_reactions():
    assert classify("q", "a", None) == Reaction("none", 1.0, "no next message (the end of the conversation)")
    assert classify("q", "a", "   ").label == "none"
    assert classify("q", "a", None, regenerated=True).label == "corrected"
    assert classify("q", "a", None, edited=True).label == "corrected"
    assert classify("q", "a", "thanks!", regenerated=True).label == "accepted"  # words win over the flag


def test_text_helpers_are_unicode_aware():
    assert normalise("Doesn’t  WORK") == "doesnt work" and normalise("não") == "nao" and normalise("działa") == "dziala"
    assert normalise("안 돼요") == "안 돼요" and normalise("がぎ") == "がぎ" and normalise("й") == "й"
    assert tokens("写一个 sort 函数") == ["写", "一", "个", "sort", "函", "数"]
    assert tokens("Привет, мир") == ["привет", "мир"] and tokens("버튼이 작동") == ["버튼이", "작동"]
    assert prose("still broken\n    x = 1\n' a VBA comment, falsch\nok") == "still broken\nok"


def test_reaction_and_config_validation():
    with pytest.raises(ValueError):
        Reaction("maybe", 0.5, "x")
    with pytest.raises(ValueError):
        Reaction("accepted", 1.5, "x")
    with pytest.raises(ValueError):
        Reaction("accepted", float("nan"), "x")
    assert set(BACKENDS) == {"rules", "llm", "hf"}
    cfg = load_config(None, ["reactions.reask_similarity=0.8"], env={})
    assert cfg.reactions.reask_similarity == 0.8 and cfg.reactions.backend == "rules"
    for bad, msg in ((["reactions.backend=magic"], "reactions.backend must be one of rules, llm, hf"),
                     (["reactions.backend=llm"], "llm_base_url is empty"),
                     (["reactions.hf_label_map={LABEL_0: wrong}"], "not a reaction label"),
                     (["reactions.reask_similarity=0"], "reask_similarity")):
        with pytest.raises(ConfigError, match=msg):
            load_config(None, bad, env={})


def test_labelled_lines_name_their_problem():
    with pytest.raises(LineError, match="line 3: not valid JSON"):
        parse_line("{oops", 3)
    with pytest.raises(LineError, match="line 4: 'next' must be a string or null"):
        parse_line('{"prompt": "q", "answer": "a", "next": 5}', 4)
    with pytest.raises(LineError, match="unknown label 'meh'"):
        parse_line('{"prompt": "q", "answer": "a", "next": null, "label": "meh"}', 1)
    a = agreement(["corrected", "accepted", "continued", "none"], ["corrected", "continued", "continued", "none"])
    assert a.accuracy == 0.75 and a.corrected.precision == 1.0 and a.accepted.recall == 0.0 and 0 < a.kappa < 1


def test_rules_on_the_dev_set_regression_guard():
    """A regression guard, not an estimate: the rules were written while looking at this dev set (the
    honest figures are the held-out test set's and the real samples', in the README)."""
    rows = read_labelled(DEV)
    assert len(rows) >= 150 and len({r.lang for r in rows}) >= 13
    pred = [r.label for r in classify_batch([r.item for r in rows])]
    a = agreement([r.label for r in rows], pred)
    assert a.kappa >= 0.5 and a.corrected.precision >= 0.7 and a.corrected.recall >= 0.6, a


def test_rules_on_the_real_samples():
    """Hand-labelled answers from the real exports (tests/data/reactions_samples.jsonl): every line
    names its conversation, and the rules beat the trivial baseline on them."""
    rows = read_labelled(SAMPLES)
    assert len(rows) >= 40
    raw = [json.loads(line) for line in SAMPLES.read_text(encoding="utf-8").splitlines() if line.strip()]
    assert all(r["conversation"] and r["label"] in LABELS for r in raw)
    a = agreement([r.label for r in rows], [r.label for r in classify_batch([r.item for r in rows])])
    assert a.kappa >= 0.5 and a.corrected.recall >= 0.6 and a.corrected.precision >= 0.7, a


# ----------------------------------------------------------------------------- the llm backend


class Judge(BaseHTTPRequestHandler):
    """Speaks the chat-completions protocol; the model name picks the behaviour."""

    calls: dict[str, int] = {}

    def log_message(self, *args):
        pass

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        model = body["model"]
        Judge.calls[model] = Judge.calls.get(model, 0) + 1
        assert self.path.endswith("/chat/completions") and body["messages"][0]["role"] == "system"
        user = body["messages"][1]["content"]
        if model == "failing":
            self.send_response(500)
            self.end_headers()
            return
        if model == "slow":
            time.sleep(1.0)
        if model == "malformed":
            content = "I think the person liked it."
        elif model == "badlabel":
            content = json.dumps({"label": "happy", "confidence": 0.9, "rationale": "?"})
        else:  # a judge that reads the next message
            lab = "corrected" if "doesn't work" in user else "accepted"
            content = "Sure: " + json.dumps({"label": lab, "confidence": 0.9, "rationale": f"it is {lab}"})
        data = json.dumps({"choices": [{"message": {"role": "assistant", "content": content}}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class QuietServer(ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        pass


@pytest.fixture
def judge_url():
    server = QuietServer(("127.0.0.1", 0), Judge)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()


def llm(url: str, model: str, **kw):
    return make_backend(ReactionsConfig(backend="llm", llm_base_url=url, llm_model=model, llm_max_retries=1,
                                        llm_timeout_s=kw.pop("timeout", 5.0), **kw))


ITEMS = [ReactionInput("q", "a", "it doesn't work"), ReactionInput("q", "a", "thanks"), ReactionInput("q", "a", None)]


def test_llm_backend_good_reply(judge_url):
    out = classify_batch(ITEMS, backend=llm(judge_url, "good"))
    assert [r.label for r in out] == ["corrected", "accepted", "none"]  # in order; no call for the missing next
    assert out[0].confidence == 0.9 and out[0].rationale == "it is corrected"
    assert Judge.calls["good"] == 2


@pytest.mark.parametrize("model, reason", [("malformed", "no JSON object"), ("badlabel", "label missing or unknown"),
                                           ("failing", "HTTP 500"), ("slow", "timed out")])
def test_llm_backend_failures_are_errors_for_those_items(judge_url, model, reason):
    backend = llm(judge_url, model, timeout=0.3)
    out = classify_batch(ITEMS, backend=backend)
    assert all(isinstance(r, ReactionError) and reason in str(r) for r in out[:2]), out
    assert out[2].label == "none"  # nothing to ask: the others stand
    with pytest.raises(ReactionError, match="after 2 attempts"):
        classify("q", "a", "hm", backend=backend)


# ----------------------------------------------------------------------------- the hf backend


@pytest.fixture(scope="module")
def tiny_classifier(tmp_path_factory):
    """A randomly initialised 2-layer BERT classifier saved with the bundled MiniLM's tokenizer."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    from stephanie_ray.embedding import bundled_model_path

    torch.manual_seed(0)
    tok = AutoTokenizer.from_pretrained(str(bundled_model_path()))
    labels = ["LABEL_OK", "LABEL_FIX", "LABEL_MORE", "LABEL_END"]
    config = BertConfig(vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=512, num_labels=4,
                        id2label=dict(enumerate(labels)), label2id={n: i for i, n in enumerate(labels)})
    path = tmp_path_factory.mktemp("tiny-reactions")
    BertForSequenceClassification(config).save_pretrained(path)
    tok.save_pretrained(path)
    return path


def test_hf_backend_shapes_labels_and_order(tiny_classifier):
    label_map = {"LABEL_OK": "accepted", "LABEL_FIX": "corrected", "LABEL_MORE": "continued", "LABEL_END": "none"}
    backend = make_backend(ReactionsConfig(backend="hf", hf_model=str(tiny_classifier), hf_label_map=label_map,
                                           hf_batch_size=2))
    items = [ReactionInput("q", "a", n) for n in ("thanks", "werkt niet", "还是不行", "x" * 3000, "ok")]
    items.insert(2, ReactionInput("q", "a", None))
    out = classify_batch(items, backend=backend)
    assert len(out) == len(items) and out[2].label == "none" and out[2].confidence == 1.0
    for r in out[:2] + out[3:]:
        assert r.label in LABELS and 0.0 < r.confidence <= 1.0 and "predicts" in r.rationale
    # batching does not change results: one at a time gives the same labels, in the same order
    backend.batch_size = 1
    assert [r.label for r in classify_batch(items, backend=backend)] == [r.label for r in out]


def test_hf_backend_refuses_unmapped_labels(tiny_classifier):
    with pytest.raises(ValueError, match="map to no reaction label"):
        make_backend(ReactionsConfig(backend="hf", hf_model=str(tiny_classifier)))


# ----------------------------------------------------------------------------- the command


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STEPHANIE_")}
    return subprocess.run([STEPHANIE, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def test_cli_classify_jsonl_and_json(tmp_path):
    lines = [json.dumps({"prompt": "fix it", "answer": "do X", "next": "it still fails"}), "{not json",
             "", json.dumps({"prompt": "q", "answer": "a", "next": None}),
             json.dumps({"prompt": "q", "answer": "a", "next": "감사합니다!", "edited": True}),
             json.dumps({"prompt": "q", "answer": "a", "next": "hm", "regenerated": "yes"})]
    (tmp_path / "in.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    proc = run_cli("reactions", "classify", "in.jsonl", cwd=tmp_path)
    assert proc.returncode == 1
    out = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [o.get("label") for o in out] == ["corrected", None, "none", "accepted", None]
    assert [o["line"] for o in out] == [1, 2, 4, 5, 6] and set(out[0]) == {"line", "label", "confidence", "rationale"}
    assert "in.jsonl: line 2: not valid JSON" in proc.stderr
    assert "line 6: 'regenerated' must be true or false" in proc.stderr
    proc = run_cli("reactions", "classify", "in.jsonl", "--json", cwd=tmp_path)
    data = json.loads(proc.stdout)
    assert proc.returncode == 1 and data["counts"] == {"corrected": 1, "accepted": 1, "continued": 0, "none": 1,
                                                       "failed": 2}
    assert len(data["results"]) == 5
    good = tmp_path / "good.jsonl"
    good.write_text(lines[0] + "\n", encoding="utf-8")
    assert run_cli("reactions", "classify", "good.jsonl", "--backend", "rules", cwd=tmp_path).returncode == 0
    for args, msg in ((["nope.jsonl"], "file not found: nope.jsonl"),
                      (["good.jsonl", "--backend", "magic"], "unknown reaction backend 'magic'"),
                      (["good.jsonl", "--backend", "llm"], "needs reactions.llm_base_url")):
        proc = run_cli("reactions", "classify", *args, cwd=tmp_path)
        assert proc.returncode == 2 and msg in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
