"""Imports into real SQLite and PostgreSQL: dedup, merge, idempotency, bad input, crash safety, Ray parity."""

from __future__ import annotations

import copy
import json
import os
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
from sqlalchemy import func, insert, select
from sqlalchemy.exc import IntegrityError

from stephanie_ray.db import Conversation, ImportFile, Message, Turn
from stephanie_ray.ingest.importer import run_import
from stephanie_ray.ingest.synthetic import write_chatgpt_export

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"


def counts(db) -> dict[str, int]:
    with db.session() as s:
        return {name: s.scalar(select(func.count()).select_from(model))
                for name, model in (("conversations", Conversation), ("messages", Message), ("turns", Turn))}


def snapshot(db) -> dict[str, list]:
    """Every row of the ingest tables, order-independent, for equality checks."""
    with db.session() as s:
        return {
            "conversations": sorted(tuple(r) for r in s.execute(select(
                Conversation.id, Conversation.provider, Conversation.external_id, Conversation.title,
                Conversation.created_at, Conversation.updated_at, Conversation.message_count))),
            "messages": sorted((m.id, m.conversation_id, m.external_id, m.parent_id, m.role, m.text, m.active, m.hidden,
                                m.tool_call, m.created_at, m.position, json.dumps(m.blocks, sort_keys=True))
                               for m in s.scalars(select(Message))),
            "turns": sorted(tuple(r) for r in s.execute(select(
                Turn.id, Turn.user_message_id, Turn.assistant_message_id, Turn.turn_hash, Turn.active))),
        }


def serial(cfg):
    cfg = copy.deepcopy(cfg)
    cfg.ingest.parallel = False
    return cfg


def test_examples_import_and_idempotency(cfg, db):
    s1 = run_import(serial(cfg), db, [str(EXAMPLES)])
    assert s1.ok, s1.errors
    assert (s1.files_imported, s1.conversations_new, s1.conversations_unchanged) == (6, 7, 2)  # chat.html = same export
    c1, snap1 = counts(db), snapshot(db)
    assert c1 == {"conversations": 7, "messages": 30, "turns": 14}
    # same files again: skipped by sha256 without parsing, nothing changes
    s2 = run_import(serial(cfg), db, [str(EXAMPLES)])
    assert s2.files_skipped_duplicate == 6 and s2.conversations_new == s2.messages_new == 0
    assert snapshot(db) == snap1
    with db.session() as s:
        assert {f.status for f in s.scalars(select(ImportFile))} == {"imported"}


def test_database_constraints_enforce_dedup(cfg, db):
    run_import(serial(cfg), db, [str(EXAMPLES / "claude")])
    with db.session() as s:
        m = s.scalars(select(Message)).first()
        row = {c.name: getattr(m, c.key) for c in Message.__table__.columns}
    row["id"] = row["id"] + 1  # a different id, same (conversation, external id)
    with pytest.raises(IntegrityError):
        with db.session() as s:
            s.execute(insert(Message), [row])


def test_newer_export_merges_branches(cfg, db, tmp_path):
    """A later export of the same conversation adds the new branch and moves the active thread."""
    src = json.loads((EXAMPLES / "chatgpt" / "conversations.json").read_text())
    old = copy.deepcopy(src)
    conv = next(c for c in old if c["conversation_id"] == "9a7e44b2-rloo")
    # the old export: before the follow-up question
    for nid in ("b-u2", "b-a2"):
        del conv["mapping"][nid]
    conv["mapping"]["b-a1"]["children"] = []
    conv["current_node"] = "b-a1"
    conv["update_time"] -= 100
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "conversations.json").write_text(json.dumps(old))
    s1 = run_import(serial(cfg), db, [str(tmp_path / "old")])
    assert s1.ok and s1.conversations_new == 2

    new = copy.deepcopy(src)
    conv = next(c for c in new if c["conversation_id"] == "9a7e44b2-rloo")
    # the new export also has a regenerated answer to the follow-up, now the active one
    regen = copy.deepcopy(conv["mapping"]["b-a2"])
    regen["id"] = regen["message"]["id"] = "b-a2r"
    regen["message"]["content"]["parts"] = ["A regenerated, shorter explanation."]
    regen["message"]["create_time"] += 50
    conv["mapping"]["b-a2r"] = regen
    conv["mapping"]["b-u2"]["children"].append("b-a2r")
    conv["current_node"] = "b-a2r"
    conv["title"] = "RLOO baselines (renamed)"
    (tmp_path / "new").mkdir()
    (tmp_path / "new" / "conversations.json").write_text(json.dumps(new))
    s2 = run_import(serial(cfg), db, [str(tmp_path / "new")])
    assert s2.ok, s2.errors
    assert (s2.conversations_new, s2.conversations_merged, s2.conversations_unchanged) == (0, 1, 1)
    assert (s2.messages_new, s2.turns_new) == (3, 2)
    with db.session() as s:
        c = s.scalars(select(Conversation).where(Conversation.external_id == "9a7e44b2-rloo")).one()
        assert c.title == "RLOO baselines (renamed)" and c.message_count == 6
        active = dict(s.execute(select(Message.external_id, Message.active).where(Message.conversation_id == c.id)).all())
        assert active["b-a2r"] is True and active["b-a2"] is False and active["b-u2"] is True
        turns = s.execute(select(Turn.active).where(Turn.conversation_id == c.id)).scalars().all()
        assert sorted(turns) == [False, True, True]
    # importing the old export again afterwards (a different file? no: same sha -> skipped) changes nothing
    snap = snapshot(db)
    old_copy = tmp_path / "old2.json"
    old_copy.write_text(json.dumps(old, indent=1))  # same content, different bytes: parsed, merged as older
    s3 = run_import(serial(cfg), db, [str(old_copy)])
    assert s3.conversations_unchanged == 2 and s3.messages_new == 0
    assert snapshot(db) == snap


def test_bad_inputs_reported_rest_imported(cfg, db, tmp_path):
    d = tmp_path / "mixed"
    d.mkdir()
    good = json.loads((EXAMPLES / "chatgpt" / "conversations.json").read_text())
    broken = copy.deepcopy(good[0])
    broken["conversation_id"] = broken["id"] = "cycle-conv"
    broken["mapping"]["b-u1"]["parent"] = "b-a2"  # parent links form a cycle
    dangling = copy.deepcopy(good[0])
    dangling["conversation_id"] = dangling["id"] = "dangling-conv"
    dangling["mapping"]["b-a2"]["parent"] = "no-such-node"
    wrongtype = copy.deepcopy(good[0])
    wrongtype["conversation_id"] = wrongtype["id"] = "wrongtype-conv"
    wrongtype["mapping"] = ["not", "a", "mapping"]
    big = copy.deepcopy(good[1])
    big["conversation_id"] = big["id"] = "huge-message-conv"
    big["mapping"]["a-u1"]["message"]["content"]["parts"] = ["y" * (50 * 1024 * 1024)]
    (d / "mixed.json").write_text(json.dumps([good[0], broken, dangling, wrongtype, big, good[1]]))
    (d / "truncated.json").write_bytes((EXAMPLES / "claude" / "conversations.json").read_bytes()[:-300])
    (d / "unknown.json").write_text(json.dumps([{"hello": "world"}]))
    (d / "empty.json").write_bytes(b"")
    (d / "page.html").write_text("<html><body>not an export</body></html>")
    bad_utf8 = json.dumps([good[0]]).encode().replace(b"Explain leave-one-out", b"Explain \xff\xfe leave-one-out")
    (d / "badutf8.json").write_bytes(bad_utf8)
    (d / "photo.png").write_bytes(b"\x89PNG\r\n\x1a\n....")  # exports carry images: not even considered
    (d / "notes.txt").write_text("just some notes")  # found in a directory, not JSON/HTML: ignored
    (d / "good").mkdir()
    (d / "good" / "deepseek.json").write_bytes((EXAMPLES / "deepseek" / "conversations.json").read_bytes())

    summary = run_import(serial(cfg), db, [str(d)])
    errs = {(Path(e["file"]).name, e["conversation"]): e["error"] for e in summary.errors}
    assert "cycle" in errs[("mixed.json", "cycle-conv")]
    assert "not found" in errs[("mixed.json", "dangling-conv")]
    assert "mapping" in errs[("mixed.json", "wrongtype-conv")]
    assert any(n == "truncated.json" and "truncated JSON" in e for (n, _), e in errs.items())
    assert "unknown format" in errs[("unknown.json", None)]
    assert "empty file" in errs[("empty.json", None)]
    assert "not a chat export" in errs[("page.html", None)]
    assert any(n == "badutf8.json" and "UTF-8" in e for (n, _), e in errs.items())
    assert not summary.ok
    with db.session() as s:
        ext = set(s.scalars(select(Conversation.external_id)))
        huge = s.scalars(select(Message).where(Message.external_id == "a-u1", Message.conversation_id == select(
            Conversation.id).where(Conversation.external_id == "huge-message-conv").scalar_subquery())).one()
        files = {Path(f.path).name: f for f in s.scalars(select(ImportFile))}
    # everything good is in: both good conversations of mixed.json, the huge one (truncated), the part of
    # the truncated Claude file before the cut (none here: one conversation), DeepSeek
    assert {"9a7e44b2-rloo", "6f1c0d6e-queue", "huge-message-conv", "d1a2b3c4-queue", "d5e6f7a8-rloo"} <= ext
    assert "cycle-conv" not in ext and "dangling-conv" not in ext
    assert len(huge.text) == cfg.ingest.max_message_chars and huge.meta["truncated_from_chars"] == 50 * 1024 * 1024
    assert any("truncated" in w["warning"] for w in summary.warnings)
    assert files["mixed.json"].status == "partial" and len(files["mixed.json"].errors) == 3
    assert files["empty.json"].status == "failed" and files["notes.txt"].status == "ignored"
    assert "photo.png" not in files
    assert files["deepseek.json"].status == "imported"


def test_zip_export(cfg, db, tmp_path):
    z = tmp_path / "chatgpt-export.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.write(EXAMPLES / "chatgpt" / "conversations.json", "conversations.json")
        zf.write(EXAMPLES / "chatgpt" / "chat.html", "chat.html")
        zf.writestr("user.json", json.dumps({"id": "user-1", "email": "a@b.c", "chatgpt_plus_user": True}))
        zf.writestr("file-abc.png", b"\x89PNG....")
    s = run_import(serial(cfg), db, [str(z)])
    assert s.ok, s.errors
    assert (s.conversations_new, s.conversations_unchanged, s.files_ignored) == (2, 2, 1)
    assert counts(db)["conversations"] == 2


def test_samples_import(cfg, db, samples):
    s = run_import(serial(cfg), db, [str(samples)])
    assert s.ok, s.errors
    assert s.files_ignored == 1  # claude/projects.json
    with db.session() as sess:
        by_provider = dict(sess.execute(select(Conversation.provider, func.count()).group_by(Conversation.provider)).all())
    # chatgpt: 1 (English) + 25 (multilingual/cosmax_it_conversations.json, a real Italian export)
    assert by_provider == {"chatgpt": 26, "claude": 1, "gemini": 2, "qwen": 1, "sharegpt": 500, "openai_chat": 4}
    assert s.files_seen == 8 and s.files_imported == 7  # every file under samples/ but projects.json


@pytest.mark.ray
def test_parallel_equals_serial(cfg, db, tmp_path, ray_local, samples):
    """Ray Data parallel import and serial import give identical database contents."""
    data = tmp_path / "in"
    data.mkdir()
    write_chatgpt_export(data / "conversations.json", conversations=120, pairs=6, seed=3)
    inputs = [str(data), str(EXAMPLES), str(samples)]
    par = copy.deepcopy(cfg)
    par.ingest.parallel = True
    par.ingest.unit_conversations = 17  # many tasks
    par.ingest.batch_messages = 300     # many write batches
    s_par = run_import(par, db, inputs)
    assert s_par.ok, s_par.errors
    snap_par = snapshot(db)

    from stephanie_ray.db import Database
    from stephanie_ray.db.migrate import upgrade

    other = Database.open(f"sqlite:///{tmp_path / 'serial.sqlite'}")
    upgrade(other.engine)
    s_ser = run_import(serial(cfg), other, inputs)
    assert s_par.parallel and not s_ser.parallel
    timings = ("seconds", "write_seconds", "write_wait_seconds", "parse_wait_seconds", "parallel")
    assert {k: v for k, v in s_ser.to_dict().items() if k not in timings} == \
        {k: v for k, v in s_par.to_dict().items() if k not in timings}
    assert snapshot(other) == snap_par
    other.dispose()


def test_kill_mid_import_then_rerun_is_exact(tmp_path, db_url):
    """SIGKILL in the middle of an import leaves no half conversation; a rerun completes it exactly."""
    data = tmp_path / "in"
    data.mkdir()
    info = write_chatgpt_export(data / "conversations.json", conversations=600, pairs=8, seed=5)
    env = {k: v for k, v in os.environ.items() if not k.startswith("STEPHANIE_") and k != "RAY_ADDRESS"}
    stephanie = str(Path(sys.executable).with_name("stephanie"))
    args = [stephanie, "-q", "import", str(data), "--serial", "--db", db_url,
            "--set", f"run.runs_dir={tmp_path / 'runs'}", "--set", "ingest.batch_messages=40", "--json"]
    proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    from stephanie_ray.db import Database

    db = Database.open(db_url)
    deadline = time.time() + 120
    n = 0
    while time.time() < deadline and proc.poll() is None:
        try:
            with db.session() as s:
                n = s.scalar(select(func.count()).select_from(Conversation))
        except Exception:  # schema not created yet by the child process
            n = 0
        if n >= 50:
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.02)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the import finished before it could be killed"
    with db.session() as s:
        # no half-written conversation: every stored conversation has all its messages
        partial = s.execute(select(Conversation.external_id).where(Conversation.message_count != select(
            func.count()).where(Message.conversation_id == Conversation.id).scalar_subquery())).all()
        assert partial == []
        assert s.scalar(select(ImportFile.status)) == "running"
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    c = counts(db)
    assert c["conversations"] == info["conversations"] and c["messages"] == info["messages"]
    assert summary["conversations_new"] + summary["conversations_unchanged"] == info["conversations"]
    with db.session() as s:
        assert s.scalar(select(ImportFile.status)) == "imported"
    db.dispose()


def test_cli_import_json_and_exit_status(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("STEPHANIE_") and k != "RAY_ADDRESS"}
    stephanie = str(Path(sys.executable).with_name("stephanie"))
    (tmp_path / "bad.json").write_text("[{")
    proc = subprocess.run([stephanie, "import", str(EXAMPLES / "claude"), str(tmp_path / "bad.json"), "--serial",
                           "--json"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stderr
    out = json.loads(proc.stdout)
    for key in ("files_seen", "files_imported", "files_skipped_duplicate", "files_failed", "conversations_new",
                "conversations_merged", "messages_new", "turns_new", "errors"):
        assert key in out
    assert out["files_failed"] == 1 and out["conversations_new"] == 1
    assert out["errors"][0]["file"].endswith("bad.json") and "invalid JSON" in out["errors"][0]["error"]
    exp = subprocess.run([stephanie, "chats", "export", "--active-only"], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=120)
    (line,) = exp.stdout.strip().splitlines()
    conv = json.loads(line)
    assert set(conv) == {"provider", "external_id", "title", "created_at", "messages"}
    assert [m["role"] for m in conv["messages"]] == ["user", "assistant", "user"]  # c-a1 is not on the active thread
    assert set(conv["messages"][0]) == {"id", "parent_id", "role", "text", "created_at", "active", "hidden"}


def test_bulk_insert_falls_back_when_rows_already_exist(cfg, db):
    """PostgreSQL copies new rows straight into the table; rows that conflict (a racing import) roll back
    to a savepoint and go through the conflict-aware path instead: no error, no duplicate, others kept."""
    from stephanie_ray.ingest.writer import MSG_COLS, _bulk_insert

    run_import(serial(cfg), db, [str(EXAMPLES / "claude")])
    with db.session() as s:
        msgs = list(s.scalars(select(Message)))
    before = counts(db)
    with db.session() as s:
        dialect = s.get_bind().dialect.name
        from stephanie_ray.ingest.writer import db_time, _json

        def row(m, new_id=None):
            vals = {c.key: getattr(m, c.key) for c in Message.__table__.columns}
            if new_id is not None:
                vals["id"], vals["external_id"] = new_id, f"{m.external_id}-new"
            return [db_time(vals[k].timestamp(), dialect) if k == "created_at" and vals[k] else
                    _json(vals[k]) if k in ("blocks", "meta") else vals[k] for k in MSG_COLS]

        rows = [row(m) for m in msgs[:3]] + [row(msgs[0], new_id=msgs[0].id + 7)]
        _bulk_insert(s, "messages", MSG_COLS, rows)  # 3 conflicts and 1 new row
    after = counts(db)
    assert after["messages"] == before["messages"] + 1
