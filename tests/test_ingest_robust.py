"""Nothing in a real export aborts an import or loses a file (issue: ingest hardening).

Each case runs on SQLite and PostgreSQL (the ``db`` fixture) and checks three things: the bad
unit is reported (file, conversation, field), everything else is imported, and the import's exit
status is right (an empty conversation or a repaired field is not a failure).
"""

from __future__ import annotations

import copy
import json
import zipfile
from datetime import datetime, timezone
from pathlib import Path

import pytest
from sqlalchemy import select

from stephanie_ray.db import Conversation, ImportFile, Message, Turn
from stephanie_ray.ingest import parse as parse_mod
from stephanie_ray.ingest.importer import run_import

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"


def serial(cfg):
    cfg = copy.deepcopy(cfg)
    cfg.ingest.parallel = False
    return cfg


def chatgpt_conv(cid: str, times: tuple = (1700000000.0, 1700000100.0), parts=None, title: str = "t") -> dict:
    """A two-message ChatGPT conversation whose create_times (user, assistant) are ``times``."""
    def node(mid, parent, role, text, ct, children):
        content = {"content_type": "text", "parts": parts if (parts is not None and role == "user") else [text]}
        return {"id": mid, "parent": parent, "children": children,
                "message": {"id": mid, "author": {"role": role}, "content": content, "create_time": ct}}
    return {"id": cid, "conversation_id": cid, "title": title, "create_time": times[0], "update_time": times[1],
            "current_node": f"{cid}-a", "mapping": {
                f"{cid}-root": {"id": f"{cid}-root", "parent": None, "children": [f"{cid}-u"], "message": None},
                f"{cid}-u": node(f"{cid}-u", f"{cid}-root", "user", f"question {cid}", times[0], [f"{cid}-a"]),
                f"{cid}-a": node(f"{cid}-a", f"{cid}-u", "assistant", f"answer {cid}", times[1], []),
            }}


def write_json(path: Path, obj) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, ensure_ascii=False))
    return path


def times_of(db, external_id: str) -> dict[str, datetime | None]:
    with db.session() as s:
        conv = s.scalars(select(Conversation).where(Conversation.external_id == external_id)).one()
        out = {"created": conv.created_at, "updated": conv.updated_at}
        for m in s.scalars(select(Message).where(Message.conversation_id == conv.id)):
            out[m.role] = m.created_at
    return out


def utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, tz=timezone.utc)


# ----------------------------------------------------------------------------- 1. timestamps


def test_bad_timestamps_become_null_with_a_warning(cfg, db, tmp_path):
    good = chatgpt_conv("good")
    convs = [
        chatgpt_conv("huge-float", (1e20, 1700000100.0)),
        chatgpt_conv("negative", (-5, 1700000100.0)),
        chatgpt_conv("string-date", ("2024-03-01T10:00:00Z", "not a date")),
        chatgpt_conv("millis", (1700000000123, 1.7e15)),  # milliseconds, microseconds
        chatgpt_conv("nan-bool", (True, [1, 2])),
        good,
    ]
    raw = json.dumps(convs)
    # integers past 64 bits and NaN: JSON allows any number of digits; exporters write NaN
    raw = raw.replace('"create_time": true', '"create_time": 123456789012345678901234567890')
    raw = raw.replace('"create_time": [1, 2]', '"create_time": NaN')
    path = tmp_path / "chatgpt" / "conversations.json"
    path.parent.mkdir(parents=True)
    path.write_text(raw)

    summary = run_import(serial(cfg), db, [str(path)])
    assert summary.ok, summary.errors
    assert summary.conversations_new == 6 and summary.conversations_failed == 0
    t = times_of(db, "huge-float")
    assert t["user"] is None and t["assistant"] == utc(1700000100.0) and t["updated"] == utc(1700000100.0)
    assert times_of(db, "negative")["user"] is None
    t = times_of(db, "string-date")
    assert t["user"] == datetime(2024, 3, 1, 10, tzinfo=timezone.utc) and t["assistant"] is None
    t = times_of(db, "millis")
    assert t["user"] == utc(1700000000.123) and t["assistant"] == utc(1.7e9)
    t = times_of(db, "nan-bool")
    assert t["user"] is None and t["assistant"] is None
    # every unusable value is a warning naming the file, the conversation and the field
    warned = {(w["conversation"], w["warning"].split(":")[0]) for w in summary.warnings}
    assert ("huge-float", "message huge-float-u create_time") in warned
    assert ("huge-float", "create_time") in warned
    assert ("negative", "message negative-u create_time") in warned
    assert ("string-date", "message string-date-a create_time") in warned
    assert ("nan-bool", "message nan-bool-u create_time") in warned
    assert all(w["file"] == str(path) for w in summary.warnings)
    assert not any(w["conversation"] in ("good", "millis") for w in summary.warnings)
    with db.session() as s:
        f = s.scalars(select(ImportFile)).one()
        assert f.status == "imported" and f.counts["warnings"] == len(summary.warnings)


# ----------------------------------------------------------------------------- 2. lone surrogates


def test_lone_surrogates_are_replaced_not_the_file_lost(cfg, db, tmp_path):
    first = chatgpt_conv("first")
    later = chatgpt_conv("later")
    raw = json.dumps([first, chatgpt_conv("clean"), later])  # json.dumps escapes non-ASCII: \ud83d\ude00 style
    # a cut emoji in the FIRST element (format detection reads it) and in a later one
    raw = raw.replace('"question first"', '"question first \\ud800 cut"', 1)
    raw = raw.replace('"answer later"', '"answer \\udc00 later \\ud83d\\ude00"', 1)
    path = tmp_path / "conversations.json"
    path.write_text(raw)

    summary = run_import(serial(cfg), db, [str(path)])
    assert summary.ok, summary.errors
    assert summary.conversations_new == 3
    with db.session() as s:
        texts = set(s.scalars(select(Message.text)))
    assert "question first \ufffd cut" in texts
    assert "answer \ufffd later \U0001F600" in texts  # the whole emoji pair survives; only the lone half is replaced
    assert {w["conversation"] for w in summary.warnings if "surrogate" in w["warning"]} == {"first", "later"}


# ----------------------------------------------------------------------------- 3. non-string parts


def test_non_string_content_parts_keep_the_conversation(cfg, db, tmp_path):
    conv = chatgpt_conv("parts", parts=["ok", 42, None, {"x": 1}, "more"])
    path = write_json(tmp_path / "conversations.json", [conv, chatgpt_conv("other")])
    summary = run_import(serial(cfg), db, [str(path)])
    assert summary.ok, summary.errors
    assert summary.conversations_new == 2
    with db.session() as s:
        m = s.scalars(select(Message).where(Message.external_id == "parts-u")).one()
        assert m.text == "ok\nmore"
        kept = [b for b in m.blocks if b["type"] == "unrecognised"]
        assert [b["value"] for b in kept] == [42]  # {"x": 1} is an object part: kept as its own block
        assert any(b.get("x") == 1 for b in m.blocks)
        assert s.scalar(select(Turn.id).where(Turn.user_message_id == m.id)) is not None
    assert any("content.parts[1] is int" in w["warning"] for w in summary.warnings)


def test_wrong_types_in_other_providers_keep_their_conversations(cfg, db, tmp_path):
    claude = json.loads((EXAMPLES / "claude" / "conversations.json").read_text())
    odd = copy.deepcopy(claude[0])
    odd["uuid"] = "odd-claude"
    odd["created_at"] = 1e30
    msg = odd["chat_messages"][0]
    msg["content"] = [7, *msg["content"]]  # a number where a content block belongs
    msg["attachments"] = "not a list"
    msg["created_at"] = {"when": "yesterday"}
    path = write_json(tmp_path / "claude" / "conversations.json", [odd, *claude])
    summary = run_import(serial(cfg), db, [str(path)])
    assert summary.ok, summary.errors
    assert summary.conversations_new == len(claude) + 1
    with db.session() as s:
        conv = s.scalars(select(Conversation).where(Conversation.external_id == "odd-claude")).one()
        assert conv.created_at is not None  # from the messages' times, the bad one left out
        first = s.scalars(select(Message).where(Message.external_id == msg["uuid"],
                                                Message.conversation_id == conv.id)).one()
        assert first.created_at is None and first.text
        assert any(b["type"] == "unrecognised" and b["value"] == 7 for b in first.blocks)
    fields = " ".join(w["warning"] for w in summary.warnings if w["conversation"] == "odd-claude")
    assert "created_at" in fields and "attachments" in fields and "content block" in fields


# ----------------------------------------------------------------------------- 4. empty conversations


def test_empty_conversation_is_skipped_and_counted_not_failed(cfg, db, tmp_path):
    claude = json.loads((EXAMPLES / "claude" / "conversations.json").read_text())
    empty = {"uuid": "never-written", "name": "", "created_at": "2024-05-01T10:00:00Z",
             "updated_at": "2024-05-01T10:00:00Z", "chat_messages": []}
    path = write_json(tmp_path / "claude" / "conversations.json", [*claude, empty])
    summary = run_import(serial(cfg), db, [str(path)])
    assert summary.ok and summary.conversations_failed == 0, summary.errors
    assert summary.conversations_empty == 1 and summary.conversations_new == len(claude)
    with db.session() as s:
        f = s.scalars(select(ImportFile)).one()
        assert f.status == "imported" and f.counts["conversations_empty"] == 1


def test_cli_exit_status_zero_for_an_export_with_an_empty_conversation(tmp_path):
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("STEPHANIE_") and k != "RAY_ADDRESS"}
    stephanie = str(Path(sys.executable).with_name("stephanie"))
    path = write_json(tmp_path / "c.json", [chatgpt_conv("a"), {**chatgpt_conv("b"), "mapping": {}}])
    proc = subprocess.run([stephanie, "import", str(path), "--serial", "--json"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout)
    assert out["conversations_new"] == 1 and out["conversations_empty"] == 1 and out["conversations_failed"] == 0


# ----------------------------------------------------------------------------- 5. unsafe zip members


def test_unsafe_zip_member_is_read_and_reported_never_written_outside(cfg, db, tmp_path):
    zpath = tmp_path / "export.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        zf.writestr("../../x/conversations.json", json.dumps([chatgpt_conv("escaped")]))
        zf.writestr("/abs/conversations.json", json.dumps([chatgpt_conv("absolute")]))
        zf.writestr("fine/conversations.json", json.dumps([chatgpt_conv("fine")]))
    summary = run_import(serial(cfg), db, [str(zpath)])
    assert summary.ok, summary.errors
    assert summary.files_seen == 3 and summary.conversations_new == 3
    unsafe = [w for w in summary.warnings if "unsafe path" in w["warning"]]
    assert sorted(w["file"] for w in unsafe) == [f"{zpath}!../../x/conversations.json",
                                                 f"{zpath}!/abs/conversations.json"]
    # nothing escaped the extraction folder
    for root in (tmp_path, tmp_path.parent, tmp_path.parent.parent):
        assert not (root / "x" / "conversations.json").exists()
    assert not Path("/abs/conversations.json").exists()
    with db.session() as s:
        rows = {f.path: f for f in s.scalars(select(ImportFile))}
        assert rows[f"{zpath}!../../x/conversations.json"].counts["warnings"] == 1


# ----------------------------------------------------------------------------- 6. any exception is its unit's error


def test_a_crashing_parser_or_row_builder_costs_only_its_unit(cfg, db, tmp_path, monkeypatch):
    real_chatgpt = parse_mod.PER_OBJECT["chatgpt"]

    def flaky_parser(obj):
        if obj.get("id") == "boom":
            raise RuntimeError("parser exploded")
        return real_chatgpt(obj)

    real_finalize = parse_mod.finalize

    def flaky_finalize(conv, **kw):
        if conv.external_id == "bad-rows":
            raise ZeroDivisionError("row builder exploded")
        return real_finalize(conv, **kw)

    monkeypatch.setitem(parse_mod.PER_OBJECT, "chatgpt", flaky_parser)
    monkeypatch.setattr(parse_mod, "finalize", flaky_finalize)
    # a whole-file parser that crashes takes its file, and only its file
    monkeypatch.setattr(parse_mod.gemini, "conversations_from_entries",
                        lambda entries: (_ for _ in ()).throw(MemoryError("gemini exploded")))

    chat = write_json(tmp_path / "in" / "chatgpt.json", [chatgpt_conv("ok1"), chatgpt_conv("boom"),
                                                         chatgpt_conv("bad-rows"), chatgpt_conv("ok2")])
    summary = run_import(serial(cfg), db, [str(chat), str(EXAMPLES / "claude"), str(EXAMPLES / "gemini"),
                                           str(EXAMPLES / "deepseek")])
    assert not summary.ok
    errs = {(Path(e["file"]).name, e["conversation"]): e["error"] for e in summary.errors}
    assert "parser exploded" in errs[("chatgpt.json", "boom")] and "RuntimeError" in errs[("chatgpt.json", "boom")]
    assert "row builder exploded" in errs[("chatgpt.json", "bad-rows")]
    assert any("gemini exploded" in e for (name, _), e in errs.items() if "Activity" in name)
    with db.session() as s:
        providers = {p: n for p, n in s.execute(select(Conversation.provider, Conversation.external_id))}
        ext = set(s.scalars(select(Conversation.external_id)))
        statuses = {Path(f.path).name: f.status for f in s.scalars(select(ImportFile))}
    assert {"ok1", "ok2"} <= ext and not {"boom", "bad-rows"} & ext
    assert "claude" in providers and "deepseek" in providers  # the other files imported
    assert statuses["chatgpt.json"] == "partial" and statuses["conversations.json"] == "imported"


def test_parse_unit_never_raises_on_mutated_exports(tmp_path):
    """Every field of a real conversation of each provider, replaced by each kind of wrong value:
    parse_unit returns rows (ok, error or empty) and never raises. Timestamps and text parts never
    cost their conversation."""
    from stephanie_ray.ingest.sources import Unit

    bad_values = [None, 42, -1, 1e308, 10**30, "", "garbage", "\ufffd", [], [None, 3], {}, {"x": [1]}, True]
    cases = [("chatgpt", EXAMPLES / "chatgpt" / "conversations.json"),
             ("claude", EXAMPLES / "claude" / "conversations.json"),
             ("deepseek", EXAMPLES / "deepseek" / "conversations.json")]
    checked = 0
    for fmt, src in cases:
        base = json.loads(src.read_text())[0]
        paths: list[tuple] = []
        stack: list[tuple] = [((), base)]
        while stack:
            path, node = stack.pop()
            items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else []
            for k, v in items:
                paths.append(path + (k,))
                stack.append((path + (k,), v))
        for path in paths:
            for bad in bad_values:
                obj = copy.deepcopy(base)
                node = obj
                for k in path[:-1]:
                    node = node[k]
                node[path[-1]] = bad
                f = tmp_path / f"{fmt}.json"
                f.write_text(json.dumps([obj]))
                unit = Unit(0, str(f), f.name, fmt, "array", [(1, f.stat().st_size - 1)])
                rows = parse_mod.parse_unit(unit)
                assert len(rows) == 1 and rows[0]["kind"] in ("ok", "error", "empty"), (fmt, path, bad, rows)
                if path[-1] in ("create_time", "created_at", "inserted_at", "update_time", "updated_at") \
                        or (len(path) > 2 and path[-2] == "parts"):
                    assert rows[0]["kind"] == "ok", (fmt, path, bad, rows[0]["error"])
                checked += 1
    assert checked > 1000


# ----------------------------------------------------------------------------- in-process or Ray Data


def test_parallel_auto_picks_the_path_by_size_cores_and_cluster(cfg, monkeypatch):
    from stephanie_ray.config import load_config
    from stephanie_ray.errors import ConfigError
    from stephanie_ray.ingest.importer import choose_parallel

    from stephanie_ray.ingest import importer

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setattr(importer, "_ray_running", lambda: False)  # other tests may have started one
    c = copy.deepcopy(cfg)
    assert c.ingest.parallel == "auto"  # the default
    c.ray.num_cpus = 8
    c.ingest.auto_parallel_mb = 400
    assert choose_parallel(c, 200 * 2**20)[0] is False
    assert choose_parallel(c, 500 * 2**20)[0] is True
    c.ray.num_cpus = 2  # one parse task beside the writer: Ray Data never pays (benchmarks/ingest.py --e2e)
    assert choose_parallel(c, 10 * 2**30)[0] is False
    monkeypatch.setenv("RAY_ADDRESS", "ray://head:10001")  # a cluster: parallel whatever the size
    assert choose_parallel(c, 1)[0] is True
    monkeypatch.delenv("RAY_ADDRESS")
    monkeypatch.setattr(importer, "_ray_running", lambda: True)  # the pipeline after a Ray stage
    assert choose_parallel(c, 1) == (True, "auto: Ray is already running in this process")
    c.ingest.parallel = False
    assert choose_parallel(c, 10 * 2**30) == (False, "ingest.parallel=false")
    c.ingest.parallel = True
    assert choose_parallel(c, 1) == (True, "ingest.parallel=true")
    for text, want in (("auto", "auto"), ("true", True), ("false", False)):
        assert load_config(None, {"ingest.parallel": text}, env={}).ingest.parallel == want
    with pytest.raises(ConfigError, match="ingest.parallel"):
        load_config(None, {"ingest.parallel": "sometimes"}, env={})


def test_background_writer_matches_inline_writer(cfg, db, tmp_path):
    """The writer thread (PostgreSQL) and the writer process (SQLite) write exactly what the inline
    writer writes."""
    from stephanie_ray.ingest.parse import parse_unit
    from stephanie_ray.ingest.sources import collect, detect, plan_units
    from stephanie_ray.ingest.writer import ConversationWriter

    from stephanie_ray.ingest.synthetic import write_chatgpt_export

    write_chatgpt_export(tmp_path / "c.json", conversations=60, pairs=4, seed=5)
    (src,), _ = collect([str(tmp_path / "c.json")], tmp_path / "x")
    units, _ = plan_units(1, src, detect(src, 2**30), 2**16, 7)
    rows = [r for u in units for r in parse_unit(u)]
    with db.session() as s:
        s.add(ImportFile(id=1, sha256=src.sha256, path=src.display, size=src.size, status="running"))
    writers = []
    background = "thread" if db.backend == "postgresql" else "process"  # what imports use on each
    for background in (background, None):
        w = ConversationWriter(db, batch_messages=50, background=background)
        for r in rows:
            w.add(r)
        w.close()
        writers.append(w.file(1))
    bg, inline = writers
    assert bg.conversations_new == 60 and inline.conversations_unchanged == 60
    assert bg.messages_new > 0 and inline.messages_new == 0


def test_a_write_that_fails_costs_only_its_conversation(cfg, db, tmp_path, monkeypatch):
    """A driver error (raw cursors raise the driver's own exceptions) on one conversation: the batch is
    retried one conversation at a time, that one is reported, the rest are written."""
    import sqlite3

    import psycopg2

    from stephanie_ray.ingest import writer as writer_mod

    real = writer_mod.write_conversations
    error = sqlite3.OperationalError if db.backend == "sqlite" else psycopg2.OperationalError

    def flaky(session, recs):
        if any(r["conversation"]["external_id"] == "doomed" for r in recs):
            raise error("disk I/O error (injected)")
        return real(session, recs)

    monkeypatch.setattr(writer_mod, "write_conversations", flaky)
    path = write_json(tmp_path / "c.json", [chatgpt_conv("a"), chatgpt_conv("doomed"), chatgpt_conv("b")])
    summary = run_import(serial(cfg), db, [str(path)])
    assert [(e["conversation"], "injected" in e["error"]) for e in summary.errors] == [("doomed", True)]
    assert summary.conversations_new == 2
    with db.session() as s:
        assert set(s.scalars(select(Conversation.external_id))) == {"a", "b"}


def test_message_row_follows_the_column_order():
    from stephanie_ray.ingest.writer import MSG_COLS, _message_row, db_time

    m = {c: f"v-{c}" for c in MSG_COLS}
    m.update(blocks=[{"type": "x"}], meta={"k": 1}, created_at=1700000000.5)
    row = _message_row(m, "sqlite")
    expect = {**m, "blocks": '[{"type":"x"}]', "meta": '{"k":1}', "created_at": db_time(1700000000.5, "sqlite")}
    assert row == [expect[c] for c in MSG_COLS]


def test_sqlite_writer_process_import_equals_inline(tmp_path):
    """From ingest.sqlite_writer_process_mb up, SQLite writes run in a writer process: same rows.
    (SQLite only: PostgreSQL writes from a thread, covered by the test above.)"""
    from stephanie_ray.config import load_config
    from stephanie_ray.db import Database
    from stephanie_ray.db.migrate import upgrade
    from stephanie_ray.ingest.synthetic import write_chatgpt_export
    from test_ingest_db import snapshot

    (tmp_path / "in").mkdir()
    write_chatgpt_export(tmp_path / "in" / "conversations.json", conversations=150, pairs=6, seed=11)
    assert (tmp_path / "in" / "conversations.json").stat().st_size > 2**20
    inputs = [str(tmp_path / "in"), str(EXAMPLES)]
    dbs, summaries = [], []
    for name, process_mb in (("process", 1), ("inline", 0)):  # the synthetic export is over 1 MiB
        cfg = load_config(None, {"run.runs_dir": str(tmp_path / f"runs-{name}"), "run.progress": False,
                                 "ingest.parallel": False, "ingest.batch_messages": 400,
                                 "ingest.sqlite_writer_process_mb": process_mb}, env={})
        db = Database.open(f"sqlite:///{tmp_path / name}.sqlite")
        upgrade(db.engine)
        summaries.append(run_import(cfg, db, inputs))
        dbs.append(db)
    assert summaries[0].ok and summaries[0].conversations_new > 150
    assert snapshot(dbs[0]) == snapshot(dbs[1])
    assert [(s.conversations_new, s.messages_new, s.turns_new) for s in summaries][0] == \
        [(s.conversations_new, s.messages_new, s.turns_new) for s in summaries][1]
    for db in dbs:
        db.dispose()
