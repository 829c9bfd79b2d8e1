"""Backups of the farm's database, and the schema's revision.

SQLite: SQLite's online backup API, a consistent copy taken while the controller runs (it
copies the pages under a read transaction, the WAL's committed pages included). PostgreSQL:
`pg_dump --format=custom` and `pg_restore` (the argv is built here; the CLI runs them where
they are installed, else prints them)."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from alembic.runtime.migration import MigrationContext


def revision(engine: sa.Engine) -> str | None:
    """The Alembic revision the database is at (None: an empty database)."""
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def sqlite_path(url: str) -> Path:
    """The file of a `sqlite:///...` URL."""
    parsed = sa.make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database:
        raise ValueError(f"not a SQLite file URL: {url}")
    return Path(parsed.database)


def sqlite_backup(source: Path, target: Path) -> int:
    """Copy the database at `source` (in use or not) to `target`, which must not exist.
    Returns the pages copied."""
    if not source.exists():
        raise FileNotFoundError(f"no database at {source}")
    if target.exists():
        raise FileExistsError(f"{target} exists: back up to a new file")
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    try:
        dst = sqlite3.connect(target)
        try:
            src.backup(dst)
            pages = int(dst.execute("PRAGMA page_count").fetchone()[0])
        finally:
            dst.close()
    finally:
        src.close()
    return pages


def sqlite_restore(backup: Path, target: Path, *, force: bool = False) -> None:
    """Put the backup at `backup` in place as the database `target` (no controller may be
    running on it). An existing database is replaced only with `force`."""
    check = sqlite3.connect(f"file:{backup}?mode=ro", uri=True)
    try:
        result = check.execute("PRAGMA integrity_check").fetchone()[0]
    except sqlite3.DatabaseError as exc:
        raise ValueError(f"{backup} is not a SQLite database: {exc}") from exc
    finally:
        check.close()
    if result != "ok":
        raise ValueError(f"{backup} is damaged: {result}")
    if target.exists() and not force:
        raise FileExistsError(f"{target} exists: pass --force to replace it")
    target.parent.mkdir(parents=True, exist_ok=True)
    for stale in (target, *(target.with_name(target.name + s) for s in ("-wal", "-shm"))):
        stale.unlink(missing_ok=True)
    src = sqlite3.connect(f"file:{backup}?mode=ro", uri=True)
    try:
        dst = sqlite3.connect(target)
        try:
            src.backup(dst)
        finally:
            dst.close()
    finally:
        src.close()


@dataclass(frozen=True)
class PgCommand:
    """A PostgreSQL client tool's argv, and its password (given as PGPASSWORD, never in the
    argv, where every user of the machine could read it)."""

    argv: list[str]
    password: str | None


def pg_dump_command(url: str, target: Path) -> PgCommand:
    """The `pg_dump` that backs up the database at `url` to `target`."""
    dbname, password = _libpq(url)
    argv = ["pg_dump", "--format=custom", "--file", str(target), "--dbname", dbname]
    return PgCommand(argv, password)


def pg_restore_command(url: str, backup: Path) -> PgCommand:
    """The `pg_restore` that restores `backup` into the (empty) database at `url`."""
    dbname, password = _libpq(url)
    return PgCommand(
        ["pg_restore", "--no-owner", "--exit-on-error", "--dbname", dbname, str(backup)], password
    )


def _libpq(url: str) -> tuple[str, str | None]:
    parsed = sa.make_url(url)
    bare = sa.URL.create(
        "postgresql",
        username=parsed.username,
        host=parsed.host,
        port=parsed.port,
        database=parsed.database,
        query=parsed.query,
    )
    return bare.render_as_string(hide_password=False), parsed.password
