"""Shared fixtures: a fresh database per test on SQLite *and* PostgreSQL, a local Ray, the samples.

PostgreSQL: every test that uses ``db_url`` runs a second time against a brand-new database on
``$STEPHANIE_TEST_PG_ADMIN`` (default: the local server, user postgres), dropped afterwards.
Where the server is unreachable those tests are skipped with the reason, unless
``STEPHANIE_REQUIRE_POSTGRES=1`` (CI sets it), which turns the skip into a failure.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("STEPHANIE_SHARED", REPO.parent / "shared"))
SAMPLES = SHARED / "samples"
EXAMPLES = REPO / "examples"
PG_ADMIN_URL = os.environ.get("STEPHANIE_TEST_PG_ADMIN", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres")


def _require(var: str) -> bool:
    return os.environ.get(var, "") not in ("", "0", "false")


def _pg_admin_conn():
    import psycopg2
    from sqlalchemy.engine import make_url

    u = make_url(PG_ADMIN_URL)
    conn = psycopg2.connect(host=u.host, port=u.port or 5432, user=u.username, password=u.password,
                            dbname=u.database or "postgres", connect_timeout=5)
    conn.autocommit = True
    return conn, u


@pytest.fixture(scope="session")
def pg_available() -> str | None:
    """None when PostgreSQL is reachable, else the reason."""
    try:
        conn, _ = _pg_admin_conn()
        conn.close()
        return None
    except Exception as exc:  # any failure to connect is a reason to skip (or fail, in CI)
        return f"PostgreSQL at {PG_ADMIN_URL} unreachable: {str(exc).strip().splitlines()[0]}"


@pytest.fixture
def pg_url(pg_available):
    """A brand-new PostgreSQL database for this test, dropped afterwards."""
    if pg_available:
        if _require("STEPHANIE_REQUIRE_POSTGRES"):
            pytest.fail(f"{pg_available} (STEPHANIE_REQUIRE_POSTGRES is set)")
        pytest.skip(pg_available)
    conn, u = _pg_admin_conn()
    name = f"stephanie_test_{uuid.uuid4().hex[:12]}"
    with conn.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    try:
        yield u.set(database=name).render_as_string(hide_password=False)
    finally:
        with conn.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.close()


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'stephanie.sqlite'}"


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path) -> str:
    """Each test using this runs on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'stephanie.sqlite'}"
    return request.getfixturevalue("pg_url")


@pytest.fixture
def db(db_url):
    from stephanie_ray.db import Database
    from stephanie_ray.db.migrate import upgrade

    database = Database.open(db_url)
    upgrade(database.engine)
    yield database
    database.dispose()


@pytest.fixture
def cfg(tmp_path, db_url):
    """A config whose run dir is this test's tmp dir and whose database is ``db_url``."""
    from stephanie_ray.config import load_config

    return load_config(None, {"run.runs_dir": str(tmp_path / "runs"), "db.url": db_url,
                              "ray.num_cpus": 2, "run.progress": False}, env={})


@pytest.fixture(scope="session")
def samples() -> Path:
    if not SAMPLES.is_dir():
        if _require("STEPHANIE_REQUIRE_SAMPLES"):
            pytest.fail(f"{SAMPLES} is missing (STEPHANIE_REQUIRE_SAMPLES is set)")
        pytest.skip(f"real export samples not found at {SAMPLES} (../shared is absent)")
    return SAMPLES


@pytest.fixture(scope="session")
def ray_local():
    """One real local Ray for the whole session (starting Ray costs seconds)."""
    from stephanie_ray.config import RayConfig
    from stephanie_ray.ray_utils import ensure_ray, shutdown_ray

    info = ensure_ray(RayConfig(num_cpus=2, object_store_memory_mb=512))
    yield info
    shutdown_ray()


@pytest.fixture(scope="module")
def synthetic_db(tmp_path_factory):
    """A SQLite database holding one prepared synthetic dataset (24 groups of 3)."""
    from stephanie_ray.db import Database
    from stephanie_ray.db.migrate import upgrade
    from stephanie_ray.training.dataset import save_dataset
    from stephanie_ray.training.synthetic import synthetic_rows

    d = tmp_path_factory.mktemp("pacs")
    url = f"sqlite:///{d / 'db.sqlite'}"
    db = Database.open(url)
    upgrade(db.engine)
    res = save_dataset(db, synthetic_rows(24, 3, seed=1), d, verifier="synthetic", verifier_version="1",
                       settings={}, excluded={}, run_id=None)
    db.dispose()
    return url, res
