"""Shared fixtures: a database URL per test, on SQLite and (when configured) PostgreSQL.

`THRESHER_TEST_PG_URL` names a PostgreSQL server that `scripts/run-tests.sh` starts for the run
(`make test` does this); each test gets a fresh database on it. In CI the variable is always set,
so the PostgreSQL half of the suite always runs there.
"""

from __future__ import annotations

import faulthandler
import os
import sqlite3
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


HEAVIEST = REPO / "tests" / "heaviest.txt"


def heaviest_files(listing: Path) -> list[str]:
    """The test files named in `listing` (tests/heaviest.txt), in its order."""
    if not listing.exists():
        return []
    names = (line.split("#", 1)[0].strip() for line in listing.read_text().splitlines())
    return [name for name in names if name]


def heaviest_first(items: list[Any], listing: Path) -> None:
    """Sort `items` (pytest's) so the files `listing` names come first, in its order, and the
    others after them as they were."""
    rank = {name: i for i, name in enumerate(heaviest_files(listing))}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::", 1)[0], len(rank)))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The heaviest test files first (tests/heaviest.txt, written by
    scripts/heaviest-tests.py): with two pytest workers taking a file at a time (`--dist
    loadfile --no-loadscope-reorder`), a long file started near the end of a run keeps one
    worker busy while the other has nothing left to do."""
    heaviest_first(items, HEAVIEST)


def _pg_url() -> str | None:
    return os.environ.get("THRESHER_TEST_PG_URL") or None


class _Templates:
    """Databases migrated once per test process and copied for each test: migrating a fresh
    database costs 0.2-0.5 s on SQLite and 1-2 s on PostgreSQL here, and a run opens hundreds.
    A copy holds what `Store.open` makes of an empty database (the migrations' schema and
    rows), as a fresh one would."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._sqlite: Path | None = None
        self._postgres: tuple[str, str] | None = None  # (server URL, template's name)

    def sqlite_copy(self, path: Path) -> None:
        if self._sqlite is None:
            template = self.folder / "thresher.db"
            Store.open(f"sqlite:///{template}").close()
            self._sqlite = template
        source, copy = sqlite3.connect(self._sqlite), sqlite3.connect(path)
        try:
            source.backup(copy)  # whole, whatever the journal mode left beside the file
        finally:
            source.close()
            copy.close()

    def postgres_template(self, base: str, admin: Any) -> str:
        if self._postgres is None:
            import sqlalchemy as sa

            name = f"tmpl_{uuid.uuid4().hex[:12]}"
            with admin.connect() as conn:
                conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
            self._postgres = (base, name)
            Store.open(base.rsplit("/", 1)[0] + "/" + name).close()  # no session left on it
        return self._postgres[1]

    def drop(self) -> None:
        if self._postgres is None:
            return
        import sqlalchemy as sa

        base, name = self._postgres
        admin = sa.create_engine(base, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def _templates(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_Templates]:
    templates = _Templates(tmp_path_factory.mktemp("templates"))
    yield templates
    templates.drop()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path, _templates: _Templates) -> Iterator[str]:
    """A fresh database, its schema migrated (`Store.open` finds nothing to do): SQLite in
    tmp_path, or a new database on the test server. Empty for a test marked
    `empty_database` (migrations, controllers racing to set a schema up)."""
    empty = request.node.get_closest_marker("empty_database") is not None
    if request.param == "sqlite":
        path = tmp_path / "thresher.db"
        if not empty:
            _templates.sqlite_copy(path)
        yield f"sqlite:///{path}"
        return
    base = _pg_url()
    if base is None:
        if os.environ.get("CI"):
            pytest.fail("THRESHER_TEST_PG_URL is not set in CI: run the suite via make test")
        pytest.skip("no PostgreSQL: set THRESHER_TEST_PG_URL (make test starts one)")
    import sqlalchemy as sa

    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    template = "" if empty else f' TEMPLATE "{_templates.postgres_template(base, admin)}"'
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"{template}'))
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
