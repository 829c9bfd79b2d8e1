"""Operating a farm: `thresher db upgrade|current`, `thresher backup`, `thresher restore`.

Each reads the database the controller would: --database-url (THRESHER_DATABASE_URL), else
SQLite in --data-dir."""

import os
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from thresher.cli.common import fail, stdout

if TYPE_CHECKING:
    from thresher.store.backup import PgCommand

DataDir = Annotated[
    Path, typer.Option("--data-dir", help="The controller's data directory (SQLite lives here).")
]
DatabaseUrl = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        envvar="THRESHER_DATABASE_URL",
        help="SQLAlchemy URL, e.g. postgresql+psycopg://...; default: SQLite in --data-dir.",
    ),
]


def _url(data_dir: Path, database_url: str | None) -> str:
    from thresher.store.db import sqlite_url

    return database_url or sqlite_url(data_dir)


def upgrade(
    data_dir: DataDir,
    database_url: DatabaseUrl = None,
    to: Annotated[str, typer.Option("--to", help="The revision to reach.")] = "head",
) -> None:
    """Upgrade the database schema (Alembic) to the newest revision, or --to one.

    Controllers upgrade at start too, under a lock; this is for doing it ahead of a rollout."""
    from thresher.store.backup import revision
    from thresher.store.db import create_engine, migrate

    data_dir.mkdir(parents=True, exist_ok=True)
    engine = create_engine(_url(data_dir, database_url))
    try:
        before = revision(engine)
        migrate(engine, to)
        after = revision(engine)
    finally:
        engine.dispose()
    stdout().print(f"database schema: {before or 'empty'} -> {after}", markup=False)


def current(data_dir: DataDir, database_url: DatabaseUrl = None) -> None:
    """Print the revision the database schema is at."""
    from thresher.store.backup import revision
    from thresher.store.db import create_engine

    engine = create_engine(_url(data_dir, database_url))
    try:
        stdout().print(revision(engine) or "empty", markup=False)
    finally:
        engine.dispose()


def backup(
    target: Annotated[Path, typer.Argument(help="The backup file to write (must not exist).")],
    data_dir: DataDir,
    database_url: DatabaseUrl = None,
) -> None:
    """Back up the farm's database while the controller runs: SQLite's online backup, or
    pg_dump for PostgreSQL (printed instead of run where pg_dump is not installed)."""
    from thresher.store.backup import pg_dump_command, sqlite_backup, sqlite_path

    url = _url(data_dir, database_url)
    if url.startswith("sqlite"):
        try:
            pages = sqlite_backup(sqlite_path(url), target)
        except (OSError, ValueError) as exc:
            fail(str(exc))
        stdout().print(f"backed up {pages} pages to {target}", markup=False, soft_wrap=True)
        return
    _run_or_show(pg_dump_command(url, target), f"backed up to {target}")


def restore(
    source: Annotated[Path, typer.Argument(help="A backup file written by `thresher backup`.")],
    data_dir: DataDir,
    database_url: DatabaseUrl = None,
    force: Annotated[
        bool, typer.Option("--force", help="Replace an existing SQLite database.")
    ] = False,
) -> None:
    """Restore a backup as the farm's database; no controller may run on it meanwhile.

    Start the controller afterwards: workers re-attach, tasks they ran since the backup are
    requeued or taken over as they report them, and the schema is upgraded if it is older."""
    from thresher.store.backup import pg_restore_command, sqlite_path, sqlite_restore

    url = _url(data_dir, database_url)
    if url.startswith("sqlite"):
        try:
            sqlite_restore(source, sqlite_path(url), force=force)
        except (OSError, ValueError) as exc:
            fail(str(exc))
        stdout().print(f"restored {source} into {sqlite_path(url)}", markup=False, soft_wrap=True)
        return
    _run_or_show(pg_restore_command(url, source), f"restored {source}")


def _run_or_show(command: "PgCommand", done: str) -> None:
    """Run a PostgreSQL client tool, or print the command where it is not installed (the
    password is passed as PGPASSWORD, never shown)."""
    argv = command.argv
    if shutil.which(argv[0]) is None:
        stdout().print(
            f"{argv[0]} is not installed here. Run it where it is (PostgreSQL's client tools, "
            f"the server's major version or newer), with PGPASSWORD set if the database "
            f"needs one:\n  {shlex.join(argv)}",
            markup=False,
            soft_wrap=True,
        )
        raise typer.Exit(1)
    env = dict(os.environ)
    if command.password is not None:
        env["PGPASSWORD"] = command.password
    done_run = subprocess.run(argv, check=False, env=env)
    if done_run.returncode != 0:
        fail(f"{argv[0]} failed with exit status {done_run.returncode}")
    stdout().print(done, markup=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    db_app = typer.Typer(name="db", help="The database schema.", no_args_is_help=True)
    db_app.command("upgrade")(upgrade)
    db_app.command("current")(current)
    app.add_typer(db_app)
    app.command("backup")(backup)
    app.command("restore")(restore)
