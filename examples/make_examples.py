"""Write the example exports in examples/ (deterministic; run again to regenerate).

One person's line of work across five assistants, in each provider's real export format:

* goal A — a durable job queue on SQLite in Python (retries, backoff, crash safety), asked of
  ChatGPT (with a regenerated answer and an edited prompt), then Claude (thinking blocks, a
  regenerated answer), DeepSeek (THINK/RESPONSE fragments) and Qwen (content_list phases);
* goal B — leave-one-out (RLOO) baselines for policy gradients, asked of ChatGPT, Gemini and DeepSeek;
* the person's reactions ("thanks, that works", "that's wrong: ...") follow the answers, as in real chats.

    python examples/make_examples.py
"""

from __future__ import annotations

import html
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
T0 = datetime(2025, 3, 3, 9, 0, tzinfo=timezone.utc)

Q_A = "How do I implement a durable job queue on SQLite in Python, with retries and exponential backoff?"
Q_A_EDIT = ("How do I implement a durable job queue on SQLite in Python, with retries and exponential backoff? "
            "Workers may crash mid-job.")
Q_B = "Explain leave-one-out (RLOO) baselines for policy-gradient training of language models."

ANS_A1 = """Use one table as the queue and let SQLite's locking do the hard part.

```sql
CREATE TABLE jobs (
  id INTEGER PRIMARY KEY,
  payload TEXT NOT NULL,
  state TEXT NOT NULL DEFAULT 'queued',   -- queued | running | done | failed
  attempts INTEGER NOT NULL DEFAULT 0,
  run_after REAL NOT NULL DEFAULT 0
);
```

Claim a job inside `BEGIN IMMEDIATE` so two workers never take the same row:

```python
def claim(conn):
    with conn:
        conn.execute("BEGIN IMMEDIATE")
        row = conn.execute("SELECT id, payload FROM jobs WHERE state='queued' AND run_after <= ? "
                           "ORDER BY id LIMIT 1", (time.time(),)).fetchone()
        if row:
            conn.execute("UPDATE jobs SET state='running', attempts=attempts+1 WHERE id=?", (row[0],))
        return row
```

On failure, set `state='queued'` and `run_after = now + base * 2**attempts` (exponential backoff);
after `max_attempts`, mark it `failed`."""

ANS_A1_REGEN = """A minimal, durable design:

1. Enable WAL mode (`PRAGMA journal_mode=WAL`) so readers do not block the writer.
2. Store jobs with `state`, `attempts` and `next_run_at` columns.
3. Claim with an atomic `UPDATE ... RETURNING` (SQLite 3.35+):

```python
row = conn.execute(
    "UPDATE jobs SET state='running', attempts=attempts+1, leased_until=? "
    "WHERE id=(SELECT id FROM jobs WHERE state='queued' AND next_run_at<=? ORDER BY id LIMIT 1) "
    "RETURNING id, payload", (now + lease, now)).fetchone()
```

4. Retry with exponential backoff plus jitter: `delay = min(cap, base * 2**attempts) * random.uniform(0.5, 1.0)`."""

ANS_A_EDIT = """Because workers may crash mid-job, add a **lease**: a claimed job carries `leased_until`.

```python
def reap_expired(conn, now):
    conn.execute("UPDATE jobs SET state='queued' WHERE state='running' AND leased_until < ?", (now,))
```

Run `reap_expired` before each claim. A crashed worker's job becomes visible again once its lease
expires, and `attempts` still counts the crash, so a job that always kills its worker ends `failed`
after `max_attempts`. Make the job handler idempotent: it may run twice."""

FOLLOW_A = "That's wrong: the reaper and the claim race. Two workers can both requeue and claim the same job."
ANS_A_FIX = """You're right. Put the reap and the claim in the same `BEGIN IMMEDIATE` transaction:

```python
def claim(conn, now, lease=30.0):
    with conn:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("UPDATE jobs SET state='queued' WHERE state='running' AND leased_until < ?", (now,))
        return conn.execute(
            "UPDATE jobs SET state='running', attempts=attempts+1, leased_until=? "
            "WHERE id=(SELECT id FROM jobs WHERE state='queued' AND next_run_at<=? ORDER BY id LIMIT 1) "
            "RETURNING id, payload", (now + lease, now)).fetchone()
```

`BEGIN IMMEDIATE` takes the write lock first, so the requeue and the claim are one atomic step."""
THANKS = "Thanks, that works. The crash test passes now."

CLAUDE_Q = ("I have a SQLite job queue with leases (BEGIN IMMEDIATE, UPDATE ... RETURNING). "
            "How should I test that it survives a worker being killed mid-job?")
CLAUDE_A1 = """Kill real processes; don't mock the crash.

1. Start N worker processes with `multiprocessing`, each claiming jobs in a loop.
2. Have the job handler `os.kill(os.getpid(), signal.SIGKILL)` on a chosen job id the first time it runs.
3. After all workers exit, assert: every job is `done` exactly once (an idempotency table keyed by job id),
   the killed job has `attempts == 2`, and no job is stuck `running` past its lease.

Use a short lease (e.g. 0.5 s) in the test so the reaper requeues quickly."""
CLAUDE_A2 = """Write a property-style test with real crashes:

```python
def test_survives_sigkill(tmp_path):
    db = tmp_path / "q.sqlite"
    enqueue(db, range(200))
    procs = [Process(target=worker, args=(db, 0.5)) for _ in range(4)]
    for p in procs: p.start()
    time.sleep(0.3); procs[0].kill()          # a worker dies holding a lease
    for p in procs[1:]: p.join()
    assert count(db, "done") == 200
    assert count(db, "running") == 0
```

Checking `attempts` of the killed job tells you the lease expired and the job ran again."""
CLAUDE_FOLLOW = "Thanks, that works. Killing a real process found a bug in my reaper."

DS_Q = "Write a complete Python module for a SQLite-backed job queue: enqueue, claim with lease, complete, fail with exponential backoff."
DS_THINK = "The user wants a full module. Use WAL, BEGIN IMMEDIATE, lease-based claims, exponential backoff with jitter, max attempts."
DS_A = """```python
import random, sqlite3, time

SCHEMA = '''CREATE TABLE IF NOT EXISTS jobs(
  id INTEGER PRIMARY KEY, payload TEXT NOT NULL, state TEXT NOT NULL DEFAULT 'queued',
  attempts INTEGER NOT NULL DEFAULT 0, next_run_at REAL NOT NULL DEFAULT 0, leased_until REAL)'''

class Queue:
    def __init__(self, path, lease=30.0, base=1.0, cap=300.0, max_attempts=5):
        self.conn = sqlite3.connect(path, isolation_level=None)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute(SCHEMA)
        self.lease, self.base, self.cap, self.max_attempts = lease, base, cap, max_attempts

    def enqueue(self, payload):
        self.conn.execute("INSERT INTO jobs(payload) VALUES (?)", (payload,))

    def claim(self):
        now = time.time()
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            self.conn.execute("UPDATE jobs SET state='queued' WHERE state='running' AND leased_until<?", (now,))
            row = self.conn.execute(
                "UPDATE jobs SET state='running', attempts=attempts+1, leased_until=? WHERE id=("
                "SELECT id FROM jobs WHERE state='queued' AND next_run_at<=? ORDER BY id LIMIT 1) "
                "RETURNING id, payload, attempts", (now + self.lease, now)).fetchone()
            self.conn.execute("COMMIT")
            return row
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise

    def complete(self, job_id):
        self.conn.execute("UPDATE jobs SET state='done', leased_until=NULL WHERE id=?", (job_id,))

    def fail(self, job_id, attempts):
        if attempts >= self.max_attempts:
            self.conn.execute("UPDATE jobs SET state='failed' WHERE id=?", (job_id,))
            return
        delay = min(self.cap, self.base * 2 ** attempts) * random.uniform(0.5, 1.0)
        self.conn.execute("UPDATE jobs SET state='queued', next_run_at=? WHERE id=?", (time.time() + delay, job_id))
```"""
DS_FOLLOW = "Perfect, thanks! This works in production now."

QW_Q = "Review this SQLite job queue design: WAL, BEGIN IMMEDIATE claims with leases, a reaper, exponential backoff. What can still go wrong?"
QW_THINK = "Consider clock skew, long jobs exceeding leases, poison jobs, WAL checkpoint growth, busy timeouts."
QW_A = """Remaining risks, most likely first:

1. **Jobs longer than the lease** run twice: renew the lease from a heartbeat thread (`UPDATE ... SET leased_until=?`).
2. **`database is locked`** under contention: set `PRAGMA busy_timeout=5000` so writers wait instead of failing.
3. **Poison jobs**: cap `attempts` and move them to a dead-letter table with the last error.
4. **WAL growth**: a long-lived reader blocks checkpoints; run `PRAGMA wal_checkpoint(TRUNCATE)` periodically.
5. **Clock jumps**: use `time.monotonic()` for in-process timing, wall time only for persisted deadlines."""

GPT_B = """RLOO (REINFORCE Leave-One-Out) samples k answers per prompt and uses, for each answer, the mean
reward of the *other* k-1 answers as its baseline:

    A_i = r_i - (1/(k-1)) * sum_{j != i} r_j

The baseline does not depend on answer i, so the gradient stays unbiased, while subtracting it removes
the per-prompt reward level and cuts variance. Unlike PPO there is no learned value network: the group
of samples *is* the critic. With k = 4 it is typically as stable as PPO at a fraction of the memory."""
FOLLOW_B = "Why is the baseline unbiased if it uses rewards from the same batch?"
GPT_B2 = """Because each baseline excludes its own sample. For answer i, b_i depends only on answers j != i, which
are independent of answer i given the prompt. So E[grad log p(y_i) * b_i] = E[b_i] * E[grad log p(y_i)] = 0,
and subtracting b_i changes the variance but not the expected gradient. Including y_i in its own baseline
(the plain group mean) would bias it by a factor of (k-1)/k."""

GEM_Q = ("I'm learning leave-one-out (RLOO) baselines for policy-gradient training of language models. "
         "Give a worked numeric example of RLOO advantages for 4 sampled answers with rewards 1, 0, 0, 1.")
GEM_A = """<p>Rewards r = [1, 0, 0, 1], k = 4.</p><ul><li>Answer 1: baseline = (0+0+1)/3 = 0.333, advantage = 1 - 0.333 = <strong>0.667</strong></li><li>Answer 2: baseline = (1+0+1)/3 = 0.667, advantage = <strong>-0.667</strong></li><li>Answer 3: same as answer 2: <strong>-0.667</strong></li><li>Answer 4: same as answer 1: <strong>0.667</strong></li></ul><p>The advantages sum to zero: correct answers are pushed up exactly as much as wrong ones are pushed down.</p>"""
GEM_FOLLOW_Q = "And with rewards 1, 1, 1, 1?"
GEM_FOLLOW_A = "<p>Every baseline is 1, so every advantage is <strong>0</strong>: a prompt where all samples agree carries no learning signal for RLOO.</p>"

DS_B_Q = ("Leave-one-out (RLOO) baselines for policy-gradient training: implement the RLOO advantages in PyTorch "
          "for a (num_prompts, k) reward tensor.")
DS_B_A = """```python
import torch

def rloo_advantages(rewards: torch.Tensor) -> torch.Tensor:
    # rewards: (num_prompts, k), k >= 2
    k = rewards.shape[1]
    baseline = (rewards.sum(dim=1, keepdim=True) - rewards) / (k - 1)   # (num_prompts, k)
    return rewards - baseline
```
Each row's advantages sum to zero, and a row of equal rewards gives zeros."""


def ts(minutes: float) -> float:
    return (T0 + timedelta(minutes=minutes)).timestamp()


def iso(minutes: float) -> str:
    return (T0 + timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z")


# ----------------------------------------------------------------------------- ChatGPT


def chatgpt_conversation(cid: str, title: str, start: float, tree: list[tuple[str, str | None, str, str, str]],
                         current: str, model: str = "gpt-4o") -> dict:
    """tree rows: (id, parent, role, text, content_type)."""
    root = f"{cid}-root"
    mapping = {root: {"id": root, "message": None, "parent": None, "children": []}}
    sys_id = f"{cid}-sys"
    mapping[sys_id] = {"id": sys_id, "parent": root, "children": [], "message": {
        "id": sys_id, "author": {"role": "system", "name": None, "metadata": {}}, "create_time": None,
        "update_time": None, "content": {"content_type": "text", "parts": [""]}, "status": "finished_successfully",
        "end_turn": True, "weight": 0.0, "metadata": {"is_visually_hidden_from_conversation": True},
        "recipient": "all", "channel": None}}
    mapping[root]["children"].append(sys_id)
    for k, (mid, parent, role, text, ctype) in enumerate(tree):
        parent = parent or sys_id
        content = {"content_type": "text", "parts": [text]} if ctype == "text" else \
            {"content_type": "code", "language": "python", "text": text}
        mapping[mid] = {"id": mid, "parent": parent, "children": [], "message": {
            "id": mid, "author": {"role": role, "name": "python" if role == "tool" else None, "metadata": {}},
            "create_time": ts(start + k), "update_time": None, "content": content,
            "status": "finished_successfully", "end_turn": role == "assistant", "weight": 1.0,
            "metadata": {"model_slug": model} if role == "assistant" else {},
            "recipient": "python" if ctype == "code" else "all", "channel": None}}
        mapping[parent]["children"].append(mid)
    return {"title": title, "create_time": ts(start), "update_time": ts(start + len(tree)), "mapping": mapping,
            "moderation_results": [], "current_node": current, "plugin_ids": None, "conversation_id": cid,
            "conversation_template_id": None, "gizmo_id": None, "is_archived": False, "safe_urls": [],
            "default_model_slug": model, "id": cid}


def chatgpt_export() -> list[dict]:
    a = "6f1c0d6e-queue"
    conv_a = chatgpt_conversation(a, "SQLite job queue with retries", 0, [
        ("a-u1", None, "user", Q_A, "text"),
        ("a-a1", "a-u1", "assistant", ANS_A1, "text"),
        ("a-a1r", "a-u1", "assistant", ANS_A1_REGEN, "text"),        # regenerated answer (a branch)
        ("a-u1e", None, "user", Q_A_EDIT, "text"),                  # edited prompt: sibling of a-u1
        ("a-a2", "a-u1e", "assistant", ANS_A_EDIT, "text"),
        ("a-u2", "a-a2", "user", FOLLOW_A, "text"),
        ("a-a3", "a-u2", "assistant", ANS_A_FIX, "text"),
        ("a-u3", "a-a3", "user", THANKS, "text"),
    ], current="a-u3")
    b = "9a7e44b2-rloo"
    conv_b = chatgpt_conversation(b, "RLOO baselines", 60 * 24 * 9, [
        ("b-u1", None, "user", Q_B, "text"),
        ("b-a1", "b-u1", "assistant", GPT_B, "text"),
        ("b-u2", "b-a1", "user", FOLLOW_B, "text"),
        ("b-a2", "b-u2", "assistant", GPT_B2, "text"),
    ], current="b-a2")
    return [conv_b, conv_a]  # exports are not sorted by time


def chatgpt_html(convs: list[dict]) -> str:
    def esc(o):
        if isinstance(o, str):
            return html.escape(o, quote=True)
        if isinstance(o, list):
            return [esc(x) for x in o]
        if isinstance(o, dict):
            return {k: esc(v) for k, v in o.items()}
        return o

    return ("<!DOCTYPE html><html><head><meta charset=\"UTF-8\"><title>ChatGPT Data Export</title></head><body>"
            "<div id=\"root\"></div><script>\nvar jsonData = " + json.dumps(esc(convs), ensure_ascii=False)
            + ";\n</script></body></html>\n")


# ----------------------------------------------------------------------------- Claude


def claude_export() -> list[dict]:
    cid = "3c0f2d4e-5b6a-4c7d-8e9f-0a1b2c3d4e5f"
    root = "00000000-0000-4000-8000-000000000000"

    def msg(uuid, parent, sender, minute, blocks):
        text = "\n\n".join(b.get("text") or b.get("thinking") or "" for b in blocks)
        return {"uuid": uuid, "text": text, "content": [{"start_timestamp": iso(minute), "stop_timestamp": iso(minute),
                "flags": None, **b} for b in blocks], "sender": sender, "created_at": iso(minute),
                "updated_at": iso(minute), "attachments": [], "files": [], "parent_message_uuid": parent}

    start = 60 * 24 * 2
    messages = [
        msg("c-u1", root, "human", start, [{"type": "text", "text": CLAUDE_Q, "citations": []}]),
        msg("c-a1", "c-u1", "assistant", start + 1, [
            {"type": "thinking", "thinking": "They want crash tests: use real processes and SIGKILL.", "summaries": []},
            {"type": "text", "text": CLAUDE_A1, "citations": []}]),
        msg("c-a2", "c-u1", "assistant", start + 5, [  # regenerated later: the newest child is the one shown
            {"type": "text", "text": CLAUDE_A2, "citations": []}]),
        msg("c-u2", "c-a2", "human", start + 9, [{"type": "text", "text": CLAUDE_FOLLOW, "citations": []}]),
    ]
    return [{"uuid": cid, "name": "Testing a SQLite queue against crashes", "summary": "", "created_at": iso(start),
             "updated_at": iso(start + 9), "account": {"uuid": "acct-example"}, "chat_messages": messages}]


# ----------------------------------------------------------------------------- DeepSeek


def deepseek_export() -> list[dict]:
    def iso8(minute):
        return (T0 + timedelta(minutes=minute)).astimezone(timezone(timedelta(hours=8))).isoformat()

    def conv(cid, title, start, turns):
        mapping = {"root": {"id": "root", "parent": None, "children": [], "message": None}}
        prev, n = "root", 0
        for q, think, a in turns:
            for frags in ([{"type": "REQUEST", "content": q}],
                          ([{"type": "THINK", "content": think}] if think else []) + [{"type": "RESPONSE", "content": a}]):
                n += 1
                nid = str(n)
                mapping[nid] = {"id": nid, "parent": prev, "children": [], "message": {
                    "files": [], "model": "deepseek-reasoner" if think else "deepseek-chat",
                    "inserted_at": iso8(start + n), "fragments": frags}}
                mapping[prev]["children"].append(nid)
                prev = nid
        return {"id": cid, "title": title, "inserted_at": iso8(start), "updated_at": iso8(start + n), "mapping": mapping}

    return [
        conv("d1a2b3c4-queue", "SQLite job queue module", 60 * 24 * 4,
             [(DS_Q, DS_THINK, DS_A), (DS_FOLLOW, None, "Glad it works! Consider adding a dead-letter table.")]),
        conv("d5e6f7a8-rloo", "RLOO baselines in PyTorch", 60 * 24 * 11, [(DS_B_Q, None, DS_B_A)]),
    ]


# ----------------------------------------------------------------------------- Qwen


def qwen_export() -> dict:
    start = 60 * 24 * 6
    u, a = "q-u1", "q-a1"
    messages = {
        u: {"id": u, "role": "user", "content": QW_Q, "models": ["qwen3-max"], "chat_type": "t2t", "parentId": None,
            "childrenIds": [a], "files": [], "timestamp": int(ts(start))},
        a: {"id": a, "role": "assistant", "content": "", "parentId": u, "childrenIds": ["q-missing-child"],
            "model": "qwen3-max", "modelName": "Qwen3-Max", "timestamp": int(ts(start + 1)),
            "content_list": [{"content": QW_THINK, "phase": "think", "status": "finished"},
                             {"content": QW_A, "phase": "answer", "status": "finished"}]},
    }
    return {"success": True, "request_id": "example", "data": [{
        "id": "qwen-7d3c-queue-review", "user_id": "example", "title": "Review of a SQLite queue design",
        "chat": {"history": {"messages": messages, "currentId": a}}}]}


# ----------------------------------------------------------------------------- Gemini


def gemini_activity() -> list[dict]:
    link = "https://gemini.google.com/app/4b1d2c3e4f5a6b7c"
    entries = []
    for minute, q, a in ((60 * 24 * 10, GEM_Q, GEM_A), (60 * 24 * 10 + 3, GEM_FOLLOW_Q, GEM_FOLLOW_A)):
        entries.append({"header": "Gemini Apps", "title": f"Prompted {q}", "time": iso(minute),
                        "products": ["Gemini Apps"], "activityControls": ["Gemini Apps Activity"],
                        "safeHtmlItem": [{"html": a}], "details": [{"name": "Details", "url": link}]})
    entries.append({"header": "Gemini Apps", "title": "Used an Assistant feature", "time": iso(60 * 24 * 10 + 5),
                    "products": ["Gemini Apps"]})
    return list(reversed(entries))  # Takeout lists newest first


def main() -> None:
    convs = chatgpt_export()
    out = {
        "chatgpt/conversations.json": json.dumps(convs, indent=1, ensure_ascii=False),
        "chatgpt/chat.html": chatgpt_html(convs),
        "claude/conversations.json": json.dumps(claude_export(), indent=1, ensure_ascii=False),
        "deepseek/conversations.json": json.dumps(deepseek_export(), indent=1, ensure_ascii=False),
        "qwen/chat-export.json": json.dumps(qwen_export(), indent=1, ensure_ascii=False),
        "gemini/My Activity/Gemini Apps/MyActivity.json": json.dumps(gemini_activity(), indent=1, ensure_ascii=False),
    }
    for rel, text in out.items():
        path = HERE / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text + ("\n" if not text.endswith("\n") else ""), encoding="utf-8")
        print(f"wrote {path.relative_to(HERE.parent)}")


if __name__ == "__main__":
    main()
