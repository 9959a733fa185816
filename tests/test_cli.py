"""The `stephanie` console script as a user runs it (real subprocesses)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
STEPHANIE = str(Path(sys.executable).with_name("stephanie"))


def run(*args: str, cwd: Path, env: dict[str, str] | None = None, ok: bool = True) -> subprocess.CompletedProcess:
    e = {k: v for k, v in os.environ.items() if not k.startswith("STEPHANIE_") and k != "RAY_ADDRESS"}
    e.update(env or {})
    proc = subprocess.run([STEPHANIE, *args], cwd=cwd, env=e, capture_output=True, text=True, timeout=600)
    if ok:
        assert proc.returncode == 0, proc.stderr
    return proc


def test_help_lists_subcommands(tmp_path):
    out = run("--help", cwd=tmp_path).stdout
    for name in ("pipeline", "runs", "db", "config", "stages"):
        assert name in out


@pytest.mark.parametrize(
    "args, files, message",
    [
        (["runs", "list", "--bogus"], {}, "unrecognized arguments: --bogus"),
        (["--config", "bad.yaml", "runs", "list"], {"bad.yaml": "db: [\n"}, "malformed config file bad.yaml"),
        (["runs", "list", "--set", "ray.nope=1"], {}, "unknown config key 'ray.nope'"),
        (["runs", "list", "--db", "postgresql+psycopg2://x@127.0.0.1:1/none"], {}, "cannot connect to database"),
        (["runs", "list", "--db", "oracle://x@h/d"], {}, "unsupported database"),
        (["pipeline", "does-not-exist/"], {}, "input path not found: does-not-exist"),
        (["pipeline", "--stages", "nosuchstage"], {}, "unknown stage 'nosuchstage'"),
        (["runs", "show", "999"], {}, "no run with id 999"),
    ],
)
def test_user_errors_are_one_line(tmp_path, args, files, message):
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    (tmp_path / "examples").mkdir()
    proc = run(*args, cwd=tmp_path, ok=False)
    assert proc.returncode == 2
    errors = [line for line in proc.stderr.splitlines() if "error" in line.lower()]
    assert len(errors) == 1 and message in errors[0], proc.stderr
    assert "Traceback" not in proc.stderr


def test_db_upgrade_current_and_runs_json(tmp_path, db_url):
    up = json.loads(run("db", "upgrade", "--db", db_url, "--json", cwd=tmp_path).stdout)
    assert up["before"] is None and up["after"]
    again = json.loads(run("--db", db_url, "db", "upgrade", "--json", cwd=tmp_path).stdout)
    assert again["before"] == again["after"] == up["after"]
    cur = json.loads(run("db", "current", "--db", db_url, "--json", cwd=tmp_path).stdout)
    assert cur["up_to_date"] is True
    runs = json.loads(run("runs", "list", "--json", cwd=tmp_path, env={"STEPHANIE_DB": db_url}).stdout)
    assert runs == {"runs": []}


def test_config_show_reflects_overrides(tmp_path):
    (tmp_path / "c.yaml").write_text("ray:\n  num_cpus: 3\n")
    out = json.loads(run("config", "show", "--config", "c.yaml", "--set", "run.log_level=debug", "--json",
                         cwd=tmp_path).stdout)
    assert out["ray"]["num_cpus"] == 3 and out["run"]["log_level"] == "DEBUG"
    fields = run("config", "show", "--fields", cwd=tmp_path).stdout
    assert "db.url" in fields and "ray.address" in fields


def test_pipeline_records_audit_trail(tmp_path):
    """`stephanie pipeline` with the embedded default database records its run."""
    (tmp_path / "examples").mkdir()
    (tmp_path / "examples" / "empty.txt").write_text("")
    proc = run("pipeline", "examples", "--stages", "", "--json", cwd=tmp_path, ok=False)
    assert proc.returncode in (0, 1), proc.stderr
    result = json.loads(proc.stdout)
    assert (tmp_path / "runs" / "stephanie.sqlite").exists()
    runs = json.loads(run("runs", "list", "--json", cwd=tmp_path).stdout)["runs"]
    assert runs[0]["id"] == result["run_id"] and runs[0]["command"] == "pipeline"
    assert runs[0]["status"] == result["status"] and runs[0]["finished_at"]
    assert [s["stage"] for s in runs[0]["stages"]] == [s["stage"] for s in result["stages"]]
    assert (Path(result["run_dir"]) / "report.md").exists()
    shown = json.loads(run("runs", "show", str(result["run_id"]), "--json", cwd=tmp_path).stdout)
    assert shown["config"]["db"]["url"] == ""  # embedded default


def test_output_into_a_closed_pipe_is_not_a_traceback(tmp_path, samples):
    """`stephanie chats export | head -1`: the reader leaves early; no traceback, exit 0."""
    run("import", str(samples), "--serial", cwd=tmp_path)
    e = {k: v for k, v in os.environ.items() if not k.startswith("STEPHANIE_")}
    proc = subprocess.run(f"'{STEPHANIE}' chats export | head -1; exit ${{PIPESTATUS[0]}}", shell=True,
                          executable="/bin/bash", cwd=tmp_path, env=e, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr and len(proc.stdout.splitlines()) == 1
