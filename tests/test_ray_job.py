"""`ray job submit` of jobs/pipeline.py and jobs/train.py against one real local Ray head, as a user would on a
cluster (one head for the module: starting and stopping one costs ~40 s).

Everything goes through Ray's CLI in subprocesses (`ray start`, `ray job submit/status/logs`) with
token authentication on and an explicit token: Ray >= 2.59 enables token auth for local clusters,
and a process that already talked to another local Ray caches that cluster's token.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent

pytestmark = [pytest.mark.ray, pytest.mark.slow]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ray_cli(*args: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "ray"), *args], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=timeout)


def submit_job(address: str, env: dict[str, str], prefix: str, script: str, *args: str,
               timeout: float) -> tuple[subprocess.CompletedProcess, str]:
    """`ray job submit` of ``python script args`` (without --no-wait it follows the job's logs until it ends);
    returns the process and its output with the CLI's colours stripped."""
    sub_id = f"{prefix}-{uuid.uuid4().hex[:8]}"
    deadline = time.time() + 180
    while True:  # the dashboard answers before the node's job agent is up: retry that one refusal
        proc = ray_cli("job", "submit", "--address", address, "--submission-id", sub_id,
                       "--runtime-env", "runtime_env.yaml", "--working-dir", ".", "--",
                       "python", script, *args, env=env, timeout=timeout)
        if proc.returncode == 0 or "No available agent" not in proc.stderr or time.time() > deadline:
            break
        time.sleep(3)
    return proc, re.sub(r"\x1b\[[0-9;]*m", "", proc.stdout + proc.stderr)


def last_report(logs: str) -> dict:
    """The job's own report: the last JSON object it printed on stdout."""
    return json.loads([line for line in logs.splitlines() if line.startswith('{"run_id"')][-1])


@pytest.fixture(scope="module")
def ray_head():
    """A real `ray start --head --block` in its own process group; stopped by signalling that group only
    (`ray stop` would also kill any other Ray on the machine)."""
    port, dash = free_port(), free_port()
    temp_dir = tempfile.mkdtemp(prefix="rayh")  # short: Ray's unix socket paths must stay < 108 chars
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_AUTH_TOKEN_PATH")}
    env.update(RAY_USAGE_STATS_ENABLED="0", RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=uuid.uuid4().hex * 2,
               # the job's `python` is whatever PATH finds on the node: this environment's, as in an activated venv
               PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    head_log = Path(temp_dir) / "head.log"
    log = open(head_log, "w")
    proc = subprocess.Popen(
        [str(BIN / "ray"), "start", "--head", "--block", f"--port={port}", f"--dashboard-port={dash}",
         "--dashboard-host=127.0.0.1", "--include-dashboard=true", "--num-cpus=2", "--disable-usage-stats",
         f"--temp-dir={temp_dir}", "--object-store-memory=300000000",
         # every port that has a fixed default, so another Ray on this machine cannot collide with this one
         f"--dashboard-agent-listen-port={free_port()}", f"--ray-client-server-port={free_port()}"],
        stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True,
    )
    address = f"http://127.0.0.1:{dash}"

    def stop() -> None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        except ProcessLookupError:
            pass
        log.close()

    deadline = time.time() + 240
    while True:
        if proc.poll() is not None:
            stop()
            pytest.fail(f"ray start exited {proc.returncode}: {head_log.read_text()[-3000:]}")
        if ray_cli("job", "list", "--address", address, env=env).returncode == 0:
            break
        if time.time() > deadline:
            stop()
            pytest.fail(f"Ray dashboard did not come up in 240 s: {head_log.read_text()[-3000:]}")
        time.sleep(2)
    try:
        yield address, env
    finally:
        stop()
        shutil.rmtree(temp_dir, ignore_errors=True)


def test_submit_pipeline_job(ray_head, tmp_path):
    address, env = ray_head
    db_file = tmp_path / "job.sqlite"
    proc, logs = submit_job(address, env, "stephanie-test", "jobs/pipeline.py", "--db", f"sqlite:///{db_file}",
                            "--stages", "ingest,casebooks,score", "--set", f"run.runs_dir={tmp_path / 'runs'}",
                            "--json", "examples", timeout=900)
    assert proc.returncode == 0, logs[-5000:]
    assert re.search(r"Job '[^']+' succeeded", logs), logs[-5000:]
    result = last_report(logs)
    assert result["status"] == "succeeded"

    from sqlalchemy import func, select

    from stephanie_ray.audit import list_runs
    from stephanie_ray.db import Conversation, Database

    db = Database.open(f"sqlite:///{db_file}")
    runs = list_runs(db)
    with db.session() as s:
        providers = dict(s.execute(select(Conversation.provider, func.count()).group_by(Conversation.provider)).all())
    db.dispose()
    assert len(runs) == 1 and runs[0]["status"] == "succeeded" and runs[0]["inputs"] == ["examples"]
    assert [s["stage"] for s in runs[0]["stages"]] == [s["stage"] for s in result["stages"]]
    assert runs[0]["stages"][0]["stage"] == "ingest" and runs[0]["stages"][0]["counts"]["conversations_new"] == 7
    assert runs[0]["stages"][1]["stage"] == "casebooks" and runs[0]["stages"][1]["counts"]["cases_new"] > 0
    # the import ran on the job's cluster (Ray Data), and every provider of the examples arrived
    assert providers == {"chatgpt": 2, "claude": 1, "deepseek": 2, "qwen": 1, "gemini": 1}


def test_submit_train_job_on_head(ray_head, synthetic_db, tmp_path):
    """`ray job submit` of jobs/train.py (the critic on Ray Train, 2 workers) on the same real Ray head."""
    address, env = ray_head
    url, _ = synthetic_db
    proc, logs = submit_job(address, env, "stephanie-train", "jobs/train.py", "--db", url, "--steps", "3",
                            "--workers", "2", "--set", f"run.runs_dir={tmp_path / 'runs'}",
                            "--set", "critic.cpus_per_worker=0.5", "--set", "critic.hidden=16",
                            "--set", "critic.run_name=job", "--json", timeout=600)
    assert proc.returncode == 0, logs[-5000:]
    result = last_report(logs)
    assert result["steps"] == 3 and result["workers"] == 2 and result["model_version"] >= 1
    assert Path(result["path"], "meta.json").is_file() and (tmp_path / "runs" / "train" / "job").is_dir()
