"""Opening the database: SQLite in a data directory by default, PostgreSQL by URL.

On SQLite a transaction that deleted log lines (a job deleted) ends with an incremental vacuum,
so the file shrinks; on PostgreSQL autovacuum makes the space reusable by the same tables."""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from thresher.store.tables import log_lines

log = logging.getLogger("thresher.store")


def sqlite_url(data_dir: Path) -> str:
    return f"sqlite:///{data_dir / 'thresher.db'}"


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    # Space freed by deletes can be given back to the file system (see _reclaim_space). Only a
    # database without tables takes this setting, so it comes before anything writes the file;
    # a database made before it was set keeps its pages until a full VACUUM.
    cur.execute("PRAGMA auto_vacuum=INCREMENTAL")
    # WAL lets readers run beside the writer; NORMAL is durable across process crashes in WAL mode.
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.close()


def _note_deleted_logs(
    conn: sa.Connection, clause: Any, _multiparams: Any, _params: Any, _options: Any, _result: Any
) -> None:
    if isinstance(clause, sa.Delete) and clause.table is log_lines:
        conn.info["reclaim"] = True


def _reclaim_space(conn: sa.Connection) -> None:
    """Give the pages a transaction freed by deleting log lines (a job deleted) back to the
    file system as it commits. Through `executescript`, which commits the transaction first
    and runs the pragma to its end (a cursor's `execute` frees one page only); a vacuum that
    fails leaves the pages free for the database to reuse, and the next delete tries again."""
    if not conn.info.pop("reclaim", False):
        return
    dbapi_conn: Any = conn.connection.dbapi_connection
    try:
        dbapi_conn.executescript("PRAGMA incremental_vacuum;")
    except sqlite3.Error:
        log.warning("incremental vacuum failed: the pages stay free for reuse", exc_info=True)


def _forget_reclaim(conn: sa.Connection) -> None:
    conn.info.pop("reclaim", None)


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


def _private_sqlite_file(url: str) -> None:
    """The database file readable by its owner only (0600), created so before SQLite opens
    it; SQLite gives its -wal and -shm files the database file's mode."""
    database = sa.engine.make_url(url).database
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    path = Path(database)
    if path.parent.is_dir():
        os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
        os.chmod(path, 0o600)


def create_engine(url: str) -> sa.Engine:
    """An engine for `url` with the settings Thresher relies on."""
    if url.startswith("sqlite"):
        _private_sqlite_file(url)
        engine = sa.create_engine(url, connect_args={"check_same_thread": False})
        sa.event.listen(engine, "connect", _sqlite_pragmas)
        sa.event.listen(engine, "after_execute", _note_deleted_logs)
        sa.event.listen(engine, "commit", _reclaim_space)
        sa.event.listen(engine, "rollback", _forget_reclaim)
        return engine
    engine = sa.create_engine(url, pool_size=10, max_overflow=20)
    sa.event.listen(engine, "connect", _mark_used)
    sa.event.listen(engine, "checkin", _mark_used)
    sa.event.listen(engine, "checkout", _ping_if_idle)
    return engine


#: The advisory lock key schema upgrades take on PostgreSQL (CRC-32 of "thresher:migrate").
MIGRATION_LOCK = 0x7468_7273


def migrate(engine: sa.Engine, revision: str = "head") -> None:
    """Bring the schema up to the newest Alembic revision (or `revision`). On PostgreSQL under
    an advisory lock held to the end of the upgrade's transaction, so that controllers started
    at the same moment on one database upgrade it one after another (the first does it all,
    the others find it done); SQLite's own write lock does the same there."""
    config = Config()
    config.set_main_option("script_location", "thresher.store:migrations")
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": MIGRATION_LOCK})
        config.attributes["connection"] = conn
        command.upgrade(config, revision)
