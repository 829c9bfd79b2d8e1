"""The baseline migration (0001) is frozen: a database made by it, with a farm's rows in it,
upgrades to the newest schema and keeps its rows readable."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from thresher.core.states import JobStatus
from thresher.store.db import create_engine, migrate
from thresher.store.store import Store

pytestmark = pytest.mark.empty_database  # made by the baseline, then upgraded

VERSIONS = Path(__file__).resolve().parents[2] / "src/thresher/store/migrations/versions"
#: The baseline's SHA-256. Changing 0001 breaks every database made by it: write a new
#: migration instead (the issue that froze it: 16).
BASELINE_SHA256 = "11fbd8651a33033399f5ee3bfb837b397c100f3ce1eb9c209c5a1968c882227a"


def test_the_baseline_migration_is_frozen() -> None:
    text = (VERSIONS / "0001_initial_schema.py").read_bytes()
    assert hashlib.sha256(text).hexdigest() == BASELINE_SHA256


def _at_baseline(engine: sa.Engine) -> None:
    """The schema as migration 0001 made it, through Alembic itself."""
    config = Config()
    config.set_main_option("script_location", "thresher.store:migrations")
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "0001")


def _insert(conn: sa.Connection, table: sa.Table, **given: Any) -> int:
    """A row with `given` values, every other required column filled with a plain value."""
    values = dict(given)
    for column in table.columns:
        if column.name in values or column.nullable or column.server_default is not None:
            continue
        if column.primary_key:
            continue
        values[column.name] = _plain(column.type)
    result = conn.execute(table.insert().values(values))
    return int(result.inserted_primary_key[0])  # type: ignore[index]


def _plain(kind: sa.types.TypeEngine[Any]) -> Any:
    if isinstance(kind, sa.JSON):
        return []
    if isinstance(kind, sa.Boolean):
        return False
    if isinstance(kind, sa.Integer | sa.Float | sa.Numeric):
        return 0
    return "x"


def test_a_baseline_database_with_rows_upgrades_to_head(db_url: str) -> None:
    engine = create_engine(db_url)
    try:
        _at_baseline(engine)
        old = sa.MetaData()
        old.reflect(engine)
        with engine.begin() as conn:
            job_id = _insert(
                conn,
                old.tables["jobs"],
                name="from 0001",
                owner="admin",
                priority=70,
                kind="command",
                payload={"command": ["echo", "{frame}"]},
                env={},
                after=[],
            )
            _insert(
                conn,
                old.tables["blocks"],
                job_id=job_id,
                idx=0,
                name="main",
                frames="1-10",
                chunk=1,
                task_count=10,
                retries=3,
                n_succeeded=4,
                limits=[],
                after=[],
                after_frames=[],
            )
            _insert(
                conn,
                old.tables["workers"],
                name="old-worker",
                hostname="old-host",
                os="linux",
                status="offline",
                pools=[],
                attributes={},
                lanes=2,
            )
        migrate(engine)
    finally:
        engine.dispose()
    store = Store.open(db_url)
    try:
        job = store.jobs.get(job_id)
        assert (job.spec.name, job.spec.priority, job.counts.total, job.counts.succeeded) == (
            "from 0001",
            70,
            10,
            4,
        )
        assert job.status is JobStatus.QUEUED
        assert store.workers.find("old-worker").hostname == "old-host"
    finally:
        store.close()
