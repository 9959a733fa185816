"""`ray job submit` of jobs/pipeline.py against a real local Ray head, as a user would on a cluster."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent

pytestmark = [pytest.mark.ray, pytest.mark.slow]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ray_head():
    """A real `ray start --head --block` in its own process group; stopped by signalling that group only
    (`ray stop` would also kill any other Ray on the machine)."""
    port, dash = free_port(), free_port()
    temp_dir = tempfile.mkdtemp(prefix="rayh")  # short: Ray's unix socket paths must stay < 108 chars
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env["RAY_USAGE_STATS_ENABLED"] = "0"
    # The job's `python` is whatever PATH finds on the node: this interpreter's environment, as in an activated venv.
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    log = open(Path(temp_dir) / "head.log", "w")
    proc = subprocess.Popen(
        [str(BIN / "ray"), "start", "--head", "--block", f"--port={port}", f"--dashboard-port={dash}",
         "--dashboard-host=127.0.0.1", "--include-dashboard=true", "--num-cpus=2", "--disable-usage-stats",
         f"--temp-dir={temp_dir}", "--object-store-memory=300000000",
         f"--min-worker-port={free_port()}", "--max-worker-port=0"],
        stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True,
    )
    address = f"http://127.0.0.1:{dash}"
    deadline = time.time() + 180
    from ray.job_submission import JobSubmissionClient

    client = None
    while time.time() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"ray start exited {proc.returncode}: {(Path(temp_dir) / 'head.log').read_text()[-3000:]}")
        try:
            client = JobSubmissionClient(address)
            client.list_jobs()
            break
        except Exception:  # the dashboard is not up yet: keep polling until the deadline
            time.sleep(1)
    else:
        pytest.fail("Ray dashboard did not come up in 180 s")
    yield address, client, env
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    log.close()
    shutil.rmtree(temp_dir, ignore_errors=True)


def test_submit_pipeline_job(ray_head, tmp_path):
    address, client, env = ray_head
    from ray.job_submission import JobStatus

    db_file = tmp_path / "job.sqlite"
    sub_id = f"stephanie-test-{int(time.time())}"
    proc = subprocess.run(
        [str(BIN / "ray"), "job", "submit", "--address", address, "--submission-id", sub_id, "--no-wait",
         "--runtime-env", "runtime_env.yaml", "--working-dir", ".", "--",
         "python", "jobs/pipeline.py", "--db", f"sqlite:///{db_file}", "--set", f"run.runs_dir={tmp_path / 'runs'}",
         "--json", "examples"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    deadline = time.time() + 900
    status = None
    while time.time() < deadline:
        status = client.get_job_status(sub_id)
        if status in {JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.STOPPED}:
            break
        time.sleep(2)
    logs = client.get_job_logs(sub_id)
    assert status == JobStatus.SUCCEEDED, logs[-5000:]
    # The job's own report: one JSON object on its stdout.
    result = json.loads([line for line in logs.splitlines() if line.startswith('{"run_id"')][-1])
    assert result["status"] == "succeeded"

    from stephanie_ray.audit import list_runs
    from stephanie_ray.db import Database

    from sqlalchemy import func, select

    from stephanie_ray.db import Conversation

    db = Database.open(f"sqlite:///{db_file}")
    runs = list_runs(db)
    with db.session() as s:
        providers = dict(s.execute(select(Conversation.provider, func.count()).group_by(Conversation.provider)).all())
    db.dispose()
    assert len(runs) == 1 and runs[0]["status"] == "succeeded" and runs[0]["inputs"] == ["examples"]
    assert [s["stage"] for s in runs[0]["stages"]] == [s["stage"] for s in result["stages"]]
    assert runs[0]["stages"][0]["stage"] == "ingest" and runs[0]["stages"][0]["counts"]["conversations_new"] == 7
    # the import ran on the job's cluster (Ray Data), and every provider of the examples arrived
    assert providers == {"chatgpt": 2, "claude": 1, "deepseek": 2, "qwen": 1, "gemini": 1}
