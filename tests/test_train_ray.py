"""The critic on a real local Ray Train: N workers = 1 worker on the same groups, a killed worker resumes
from its checkpoint (`ray job submit` of jobs/train.py is in test_ray_job.py, on its Ray head).

Equivalence tolerance: parameters within 2e-6 absolute (the output bias, which RLOO cannot see, below one step) (float32 sums in another order; AdamW's first steps
move each weight by about lr = 1e-3, so this is ~0.2 % of one step), per-step gradient norms within 1e-5
relative. SQLite only here: the Ray runs take seconds each; the database code they call is tested on both
backends in test_prepare.py.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file

pytestmark = [pytest.mark.ray, pytest.mark.slow]


def _cfg(tmp_path, db_url, **critic):
    from stephanie_ray.config import load_config

    over = {"run.runs_dir": str(tmp_path / "runs"), "db.url": db_url, "ray.num_cpus": 2, "run.progress": False,
            "critic.steps": 4, "critic.checkpoint_every": 2, "critic.groups_per_step": 8, "critic.hidden": 16,
            "critic.max_length": 32, "critic.cpus_per_worker": 0.5, "critic.max_failures": 1}
    over.update({f"critic.{k}": v for k, v in critic.items()})
    return load_config(None, over, env={})


def _version(db_url, version):
    from sqlalchemy import select

    from stephanie_ray.db import Database
    from stephanie_ray.db.models import ModelVersion, TrainingStat

    db = Database.open(db_url)
    with db.session() as s:
        mv = s.scalars(select(ModelVersion).where(ModelVersion.version == version)).one()
        stats = [(r.step, r.grad_norm, r.samples) for r in
                 s.scalars(select(TrainingStat).where(TrainingStat.model_version_id == mv.id).order_by(TrainingStat.step))]
        path = mv.path
    db.dispose()
    return load_file(str(Path(path) / "model.safetensors")), stats


def test_two_workers_equal_one_and_a_killed_worker_resumes(ray_local, synthetic_db, tmp_path):
    from stephanie_ray.db import Database
    from stephanie_ray.training.trainer import train_critic

    url, _ = synthetic_db
    one = train_critic(cfg := _cfg(tmp_path, url, workers=1, run_name="one"), Database.open(url), tmp_path / "r1")
    assert one.steps == 4 and one.resumed_from == [] and one.workers == 1

    marker = tmp_path / "killed"

    def kill_rank1_at_step4(step: int, rank: int) -> None:  # runs inside the Ray Train worker
        # step 4: step 3's report went through. Ray Train's controller registers reported checkpoints
        # asynchronously (it polls the workers' reports), and under load it lagged behind a kill that
        # followed at once (CI saw a restart from scratch): give it a few seconds to register the
        # step-2 checkpoint first; what is tested is the resume, not the race.
        if rank == 1 and step == 4 and not marker.exists():
            marker.touch()
            time.sleep(5)
            os.kill(os.getpid(), signal.SIGKILL)

    two = train_critic(_cfg(tmp_path, url, workers=2, run_name="two"), Database.open(url), tmp_path / "r2",
                       on_step=kill_rank1_at_step4)
    assert marker.exists(), "the worker was not killed"
    assert two.resumed_from == [2] and two.steps == 4  # restarted from the step-2 checkpoint, finished all 4

    w1, s1 = _version(url, one.model_version)
    w2, s2 = _version(url, two.model_version)
    assert [s for s, *_ in s2] == [1, 2, 3, 4]  # one stats row per step, none doubled by the restart
    for (_, g1, n1), (_, g2, n2) in zip(s1, s2):
        assert n1 == n2 and g1 == pytest.approx(g2, rel=1e-5)  # the same global batch and gradient at every step
    assert w1.keys() == w2.keys()
    # The head's output bias shifts every score of a group alike, and RLOO's psi cancels that shift: its
    # gradient is 0 in exact arithmetic (all groups here have 3 answers), so in floats it is rounding noise
    # that AdamW scales up to ~lr/10 per step (|g| ~ 1e-9 against eps 1e-8), differently for each order of
    # summation. It is compared loosely (below one step's size); every identifiable weight within 2e-6.
    diffs = {k: float(np.abs(w1[k] - w2[k]).max()) for k in w1}
    assert max(v for k, v in diffs.items() if k != "net.2.bias") < 2e-6, diffs
    assert diffs["net.2.bias"] < 1e-3, diffs

    # rerunning a finished run name finds it: no second version, no extra steps
    again = train_critic(cfg, Database.open(url), tmp_path / "r3")
    assert again.reused and again.model_version == one.model_version


def test_a_model_version_verifies_a_jsonl_file(ray_local, synthetic_db, tmp_path):
    """`stephanie verify` on the version test 1 left (or a fresh one), plus a corrupt version's one-line error."""
    import subprocess
    import sys

    from stephanie_ray.db import Database
    from stephanie_ray.training.trainer import train_critic

    url, _ = synthetic_db
    res = train_critic(_cfg(tmp_path, url, workers=1, run_name="verify", steps=2), Database.open(url), tmp_path / "r")
    f = tmp_path / "items.jsonl"
    f.write_text('{"prompt": "I have a question about cooking: how should I start?", "response": "Sure. First, '
                 'simmer the onions in butter."}\n{"prompt": 1}\n', encoding="utf-8")
    bin_ = Path(sys.executable).parent / "stephanie"
    proc = subprocess.run([str(bin_), "verify", str(f), "--db", url, "--json", "--set", f"run.runs_dir={tmp_path}"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stderr  # one bad line
    out = json.loads(proc.stdout)
    assert out["counts"] == {"ok": 1, "failed": 1}
    assert 0.0 <= out["results"][0]["p_good"] <= 1.0 and out["results"][0]["label"] in (0, 1)
    (Path(res.path) / "model.safetensors").write_bytes(b"garbage")
    proc = subprocess.run([str(bin_), "verify", str(f), "--db", url, "--model", str(res.model_version)],
                          capture_output=True, text=True, timeout=120)
    errors = [line for line in proc.stderr.splitlines() if line.startswith("stephanie: error:")]
    assert proc.returncode == 2 and len(errors) == 1 and "corrupt model.safetensors" in errors[0]
