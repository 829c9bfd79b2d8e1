"""Shared fixtures: a database URL per test, on SQLite and (when configured) PostgreSQL.

`THRESHER_TEST_PG_URL` names a PostgreSQL server that `scripts/run-tests.sh` starts for the run
(`make test` does this); each test gets a fresh database on it. In CI the variable is always set,
so the PostgreSQL half of the suite always runs there.
"""

from __future__ import annotations

import faulthandler
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from thresher.store.store import Store

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


@pytest.fixture(autouse=True)
def _stacks_on_a_request_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    """A request of a test that times out prints where every thread of the test's process was
    at that moment (in the failure's captured stderr): a controller served in process
    (`serve_in_thread`) that did not answer shows what held it. Seen a few times under load."""
    original = httpx.HTTPTransport.handle_request

    def handle_request(self: httpx.HTTPTransport, request: httpx.Request) -> Any:
        try:
            return original(self, request)
        except httpx.TimeoutException:
            faulthandler.dump_traceback(all_threads=True)
            raise

    monkeypatch.setattr(httpx.HTTPTransport, "handle_request", handle_request)


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


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    """A store over the test's database (`db_url`: each database in turn)."""
    opened = Store.open(db_url)
    try:
        yield opened
    finally:
        opened.close()
