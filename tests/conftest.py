"""Shared fixtures: a database URL per test, on SQLite and (when configured) PostgreSQL.

`THRESHER_TEST_PG_URL` names a PostgreSQL server that `scripts/run-tests.sh` starts for the run
(`make test` does this); each test gets a fresh database on it. In CI the variable is always set,
so the PostgreSQL half of the suite always runs there.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


def _pg_url() -> str | None:
    return os.environ.get("THRESHER_TEST_PG_URL") or None


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database: SQLite in tmp_path, or a new database on the test server."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'thresher.db'}"
        return
    base = _pg_url()
    if base is None:
        if os.environ.get("CI"):
            pytest.fail("THRESHER_TEST_PG_URL is not set in CI: run the suite via make test")
        pytest.skip("no PostgreSQL: set THRESHER_TEST_PG_URL (make test starts one)")
    import sqlalchemy as sa

    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield base.rsplit("/", 1)[0] + "/" + name
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
