"""Opening the database: SQLite in a data directory by default, PostgreSQL by URL."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config


def sqlite_url(data_dir: Path) -> str:
    return f"sqlite:///{data_dir / 'thresher.db'}"


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # WAL lets readers run beside the writer; NORMAL is durable across process crashes in WAL mode.
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.close()


#: A pooled PostgreSQL connection idle for longer than this is pinged before it is used.
IDLE_PING_S = 10.0


def _mark_used(_dbapi_conn: Any, record: Any) -> None:
    record.info["used_at"] = time.monotonic()


def _ping_if_idle(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
    """Ping a connection that sat idle in the pool (the server may have restarted or a
    firewall dropped it meanwhile); a dead one is replaced before anyone uses it.

    Instead of `pool_pre_ping`, which pings on every checkout: that is one round trip more
    per transaction, and a busy controller checks a connection out for every poll. A
    connection that breaks while in steady use fails its one request instead (SQLAlchemy then
    invalidates the pool, and the worker simply polls again)."""
    if time.monotonic() - record.info.get("used_at", 0.0) < IDLE_PING_S:
        return
    try:
        cursor = dbapi_conn.cursor()
        try:
            cursor.execute("SELECT 1")
        finally:
            cursor.close()
        dbapi_conn.rollback()  # the ping must not leave a transaction open
    except Exception as exc:
        raise sa.exc.DisconnectionError(f"pooled connection is gone: {exc}") from exc


def create_engine(url: str) -> sa.Engine:
    """An engine for `url` with the settings Thresher relies on."""
    if url.startswith("sqlite"):
        engine = sa.create_engine(url, connect_args={"check_same_thread": False})
        sa.event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    engine = sa.create_engine(url, pool_size=10, max_overflow=20)
    sa.event.listen(engine, "connect", _mark_used)
    sa.event.listen(engine, "checkin", _mark_used)
    sa.event.listen(engine, "checkout", _ping_if_idle)
    return engine


def migrate(engine: sa.Engine) -> None:
    """Bring the schema up to the newest Alembic revision."""
    config = Config()
    config.set_main_option("script_location", "thresher.store:migrations")
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "head")
