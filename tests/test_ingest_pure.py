"""Pure ingestion cores: the JSON array splitter, the tree finaliser, the parsers on real samples."""

from __future__ import annotations

import io
import json
import random

import orjson
import pytest

from stephanie_ray.ingest.jsonsplit import SplitError, array_elements
from stephanie_ray.ingest.model import Conv, ConversationError, Msg, finalize, normalise_text, to_epoch, turn_hash
from stephanie_ray.ingest.parse import parse_unit
from stephanie_ray.ingest.parsers import claude, gemini, qwen
from stephanie_ray.ingest.sources import SourceFile, collect, detect, plan_units, sha256_file


# ----------------------------------------------------------------------------- splitter

def _split(data: bytes, chunk: int = 1 << 24) -> list[bytes]:
    f = io.BytesIO(data)
    return [data[s:e] for s, e in array_elements(f, chunk_size=chunk)]


TRICKY = [
    {"a": "]}{[", "b": "\\", "c": "quote \" inside", "d": ["x", {"e": "\\\\\""}]},
    {"k": "\\\\", "l": [], "m": {}},
    {"unicode": "é ü 中文 \ue200cite\ue201", "n": [1, 2, [3, [4]]]},
    [1, 2, {"z": "]"}],
]


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 64, 1 << 20])
def test_splitter_matches_json_at_any_chunk_size(chunk):
    data = json.dumps(TRICKY, ensure_ascii=False).encode()
    assert [json.loads(p) for p in _split(data, chunk)] == TRICKY


def test_splitter_random_documents():
    rng = random.Random(7)
    alphabet = ['"', "\\", "[", "]", "{", "}", ",", "a", " ", "é", "\n"]

    def rnd(depth=0):
        r = rng.random()
        if depth > 3 or r < 0.3:
            return "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12)))
        if r < 0.6:
            return [rnd(depth + 1) for _ in range(rng.randint(0, 4))]
        return {f"k{i}{rng.choice(alphabet)}": rnd(depth + 1) for i in range(rng.randint(0, 4))}

    for _ in range(50):
        doc = [{"x": rnd()} for _ in range(rng.randint(0, 6))]
        data = json.dumps(doc, ensure_ascii=rng.random() < 0.5, indent=rng.choice([None, 1])).encode()
        assert [json.loads(p) for p in _split(data, rng.choice([1, 5, 17, 4096]))] == doc


def test_splitter_truncated_keeps_complete_elements():
    data = json.dumps([{"a": 1}, {"b": "x]"}, {"c": [1, 2, 3]}]).encode()
    f = io.BytesIO(data[:-8])
    got = []
    with pytest.raises(SplitError, match="truncated JSON"):
        for s, e in array_elements(f, chunk_size=4):
            got.append(json.loads(data[s:e]))
    assert got == [{"a": 1}, {"b": "x]"}]


@pytest.mark.parametrize("bad, message", [
    (b'[{"a": 1} {"b": 2}]', "between array elements"),
    (b'[{"a": 1}, garbage, {"b": 2}]', "between array elements"),
    (b'{"not": "an array"}', "expected a JSON array"),
    (b'[{"a": 1},]', "between array elements"),
])
def test_splitter_rejects_garbage(bad, message):
    with pytest.raises(SplitError, match=message):
        list(array_elements(io.BytesIO(bad)))


# ----------------------------------------------------------------------------- finalize

def _conv(msgs, **kw):
    return Conv(provider="test", external_id="c1", title="t", messages=msgs, **kw)


def test_regenerations_and_edits_make_turns_and_active_thread():
    msgs = [
        Msg("u1", None, "user", "Question?", 1.0),
        Msg("a1", "u1", "assistant", "First answer", 2.0),
        Msg("a1b", "u1", "assistant", "Regenerated answer", 3.0),   # regeneration
        Msg("u1e", None, "user", "Question, edited?", 4.0),        # edited prompt (sibling root)
        Msg("a2", "u1e", "assistant", "Answer to the edit", 5.0),
        Msg("u2", "a2", "user", "thanks", 6.0),
    ]
    rec = finalize(_conv(msgs, current_leaf="u2"))
    active = {m["external_id"]: m["active"] for m in rec["messages"]}
    assert active == {"u1": False, "a1": False, "a1b": False, "u1e": True, "a2": True, "u2": True}
    by_id = {m["id"]: m["external_id"] for m in rec["messages"]}
    pairs = sorted((by_id[t["user_message_id"]], by_id[t["assistant_message_id"]], t["active"]) for t in rec["turns"])
    assert pairs == [("u1", "a1", False), ("u1", "a1b", False), ("u1e", "a2", True)]
    assert rec["turns"][0]["turn_hash"] == turn_hash("Question?", "First answer")
    # parents come before children
    pos = {m["id"]: m["position"] for m in rec["messages"]}
    assert all(m["parent_id"] is None or pos[m["parent_id"]] < m["position"] for m in rec["messages"])


def test_newest_child_rule_without_current_leaf():
    msgs = [Msg("u", None, "user", "q", 1.0), Msg("old", "u", "assistant", "a", 2.0),
            Msg("new", "u", "assistant", "b", 9.0)]
    rec = finalize(_conv(msgs))
    assert {m["external_id"]: m["active"] for m in rec["messages"]} == {"u": True, "old": False, "new": True}


def test_tool_calls_are_not_answers():
    msgs = [Msg("u", None, "user", "compute", 1.0),
            Msg("call", "u", "assistant", "", 2.0, tool_call=True, blocks=[{"type": "code", "text": "1+1"}]),
            Msg("out", "call", "tool", "2", 3.0),
            Msg("final", "out", "assistant", "It is 2.", 4.0)]
    rec = finalize(_conv(msgs))
    by_id = {m["id"]: m["external_id"] for m in rec["messages"]}
    assert [(by_id[t["user_message_id"]], by_id[t["assistant_message_id"]]) for t in rec["turns"]] == [("u", "final")]


@pytest.mark.parametrize("msgs, message", [
    ([Msg("a", "b", "user", "x"), Msg("b", "a", "assistant", "y")], "cycle"),
    ([Msg("r", None, "user", "x"), Msg("a", "b", "user", "x"), Msg("b", "a", "assistant", "y")], "cycle"),
    ([Msg("a", "a", "user", "x")], "its own parent"),
    ([Msg("a", None, "user", "x"), Msg("b", "nowhere", "assistant", "y")], "parent nowhere not found"),
    ([], "no messages"),
    ([Msg("a", None, "robot", "x")], "unknown role"),
])
def test_broken_trees_are_conversation_errors(msgs, message):
    with pytest.raises(ConversationError, match=message):
        finalize(_conv(msgs))


def test_deep_tree_without_recursion():
    n = 60_000  # far past Python's recursion limit
    msgs = [Msg(f"m{i}", f"m{i - 1}" if i else None, "user" if i % 2 == 0 else "assistant", f"text {i}", float(i))
            for i in range(n)]
    rec = finalize(_conv(msgs, current_leaf=f"m{n - 1}"))
    assert len(rec["messages"]) == n and len(rec["turns"]) == n // 2
    assert all(m["active"] for m in rec["messages"]) and rec["messages"][-1]["depth"] == n - 1


def test_huge_message_truncated_and_reported():
    big = "x" * 3_000_000
    rec = finalize(_conv([Msg("u", None, "user", big)]), max_chars=1_000_000)
    assert len(rec["messages"][0]["text"]) == 1_000_000
    assert rec["messages"][0]["meta"]["truncated_from_chars"] == 3_000_000
    assert "truncated" in rec["warnings"][0]


def test_ids_are_deterministic_and_distinct():
    a = finalize(_conv([Msg("u", None, "user", "q"), Msg("a", "u", "assistant", "r")]))
    b = finalize(_conv([Msg("u", None, "user", "q"), Msg("a", "u", "assistant", "r")]))
    assert a == b
    ids = [m["id"] for m in a["messages"]] + [a["conversation"]["id"]]
    assert len(set(ids)) == 3 and all(0 < i < 2**63 for i in ids)


def test_helpers():
    assert to_epoch("2025-07-06T03:10:13.076141Z") == pytest.approx(1751771413.076141)
    assert to_epoch("2025-07-06T11:10:13+08:00") == pytest.approx(1751771413.0)
    assert to_epoch(1762513003035) == pytest.approx(1762513003.035)  # milliseconds
    assert to_epoch("yesterday") is None and to_epoch(None) is None and to_epoch(float("nan")) is None
    assert normalise_text("  a\u00a0 b\n\tc ") == "a b c"
    assert normalise_text("e\u0301") == "é"


# ----------------------------------------------------------------------------- real samples

def _parse_file(path, tmp_path):
    srcs, errors = collect([str(path)], tmp_path / "x")
    assert not errors
    det = detect(srcs[0], 1 << 31)
    assert det.error is None, det.error
    units, err = plan_units(1, srcs[0], det, 1 << 20, 100)
    assert err is None
    rows = [r for u in units for r in parse_unit(u)]
    return det, rows


def _ok(rows):
    return [orjson.loads(r["payload"]) for r in rows if r["kind"] == "ok"]


def test_chatgpt_sample(samples, tmp_path):
    det, rows = _parse_file(samples / "chatgpt" / "conversations.json", tmp_path)
    assert det.format == "chatgpt" and all(r["kind"] == "ok" for r in rows)
    (rec,) = _ok(rows)
    assert rec["conversation"]["title"] == "Average Distance in U(0,1)"
    msgs = rec["messages"]
    from stephanie_ray.ingest.writer import MSG_COLS
    col = {c: i for i, c in enumerate(MSG_COLS)}
    roles = [m[col["role"]] for m in msgs]
    assert roles.count("tool") == 11 and sum(m[col["tool_call"]] for m in msgs) == 11
    code = [json.loads(m[col["blocks"]]) for m in msgs if m[col["content_type"]] == "code"]
    assert len(code) == 11 and all(b[0]["type"] == "code" and b[0]["text"] for b in code)
    hidden = [m for m in msgs if m[col["hidden"]]]
    assert len(hidden) == 2 and all(m[col["role"]] == "system" for m in hidden)
    assert len(rec["turns"]) == 8 and all(t[5] for t in rec["turns"])  # one thread, all active


def test_claude_sample(samples, tmp_path):
    det, rows = _parse_file(samples / "claude" / "conversations.json", tmp_path)
    assert det.format == "claude"
    (rec,) = _ok(rows)
    conv = claude.parse_conversation(json.loads((samples / "claude" / "conversations.json").read_text())[0])
    answer = conv.messages[1]
    assert [b["type"] for b in answer.blocks] == ["thinking"]
    assert "The user is asking" not in answer.text  # thinking is not glued into the answer
    assert answer.text.strip()
    assert len(rec["turns"]) == 1


def test_claude_projects_file_is_ignored(samples, tmp_path):
    srcs, _ = collect([str(samples / "claude" / "projects.json")], tmp_path)
    det = detect(srcs[0], 1 << 31)
    assert det.ignored == "claude projects" and det.error is None


def test_qwen_sample_with_dangling_children(samples, tmp_path):
    det, rows = _parse_file(samples / "qwen" / "chat-export.json", tmp_path)
    assert det.format == "qwen_export"
    (rec,) = _ok(rows)
    assert rec["conversation"]["title"] == "Converter MD para HTML Preservando Conteúdo"
    assert len(rec["messages"]) == 2 and len(rec["turns"]) == 1
    doc = json.loads((samples / "qwen" / "chat-export.json").read_text())
    conv = qwen.parse_conversation(doc["data"][0])
    assert conv.messages[1].text.startswith("Claro!")  # from content_list's answer phase


def test_gemini_sample(samples, tmp_path):
    det, rows = _parse_file(samples / "gemini" / "MyActivity.html", tmp_path)
    assert det.format == "gemini_html"
    recs = _ok(rows)
    assert len(recs) == 2
    ids = sorted(r["conversation"]["external_id"] for r in recs)
    assert "8f60459ed7eee35e" in ids
    first = next(r for r in recs if r["conversation"]["external_id"] == "8f60459ed7eee35e")
    assert first["messages"][0][5].startswith("How is called ancient small organism")
    assert "cyanobacteria" in first["messages"][1][5]
    assert first["conversation"]["created_at"] == pytest.approx(gemini.parse_local_time("Aug 8, 2026, 6:39:27 PM CEST"))
    assert gemini.parse_local_time("Aug 8, 2026, 6:39:27\u202fPM CEST") == pytest.approx(1786207167.0)


def test_sharegpt_and_openai_samples(samples, tmp_path):
    det, rows = _parse_file(samples / "sharegpt" / "dummy_conversation.json", tmp_path)
    assert det.format == "sharegpt" and len(_ok(rows)) == 500
    det, rows = _parse_file(samples / "openai_jsonl" / "toy_chat_fine_tuning.jsonl", tmp_path)
    assert det.format == "openai_jsonl"
    recs = _ok(rows)
    assert len(recs) == sum(1 for line in (samples / "openai_jsonl" / "toy_chat_fine_tuning.jsonl").read_text().splitlines() if line.strip())


def test_chatgpt_html_equals_json(tmp_path):
    """The same export as chat.html and conversations.json imports to the same texts."""
    from pathlib import Path

    ex = Path(__file__).resolve().parent.parent / "examples" / "chatgpt"
    d1, r1 = _parse_file(ex / "conversations.json", tmp_path)
    d2, r2 = _parse_file(ex / "chat.html", tmp_path)
    assert (d1.format, d2.format) == ("chatgpt", "chatgpt_html")
    strip = lambda recs: sorted((r["conversation"]["id"], r["messages"], r["turns"]) for r in recs)  # noqa: E731
    a, b = _ok(r1), _ok(r2)
    for rec in a + b:
        rec["conversation"].pop("source_file")
    assert strip(a) == strip(b) and [r["conversation"] for r in a] == [r["conversation"] for r in b]
    assert any("'" in m[5] or "<" in m[5] for r in b for m in r["messages"])  # unescaped, not &#x27;


def test_detection_errors(tmp_path):
    cases = {
        "empty.json": b"",
        "blank.json": b"   \n",
        "page.html": b"<html><body><p>hello</p></body></html>",
        "unknown.json": b'[{"foo": 1}]',
        "binary.json": b"\x00\x01\x02",
        "trunc.json": b'[{"mapping": {}, "conversation_id": "x"',
    }
    want = {"empty.json": "empty file", "blank.json": "empty file", "page.html": "HTML that is not a chat export",
            "unknown.json": "unknown format", "binary.json": "unknown format", "trunc.json": "invalid JSON"}
    for name, data in cases.items():
        p = tmp_path / name
        p.write_bytes(data)
        src = SourceFile(p, name, len(data), sha256_file(p), True)
        assert want[name] in (detect(src, 1 << 30).error or ""), name
