"""`thresher db upgrade|current`, `thresher backup`, `thresher restore` (in-process CLI)."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.config import Config
from alembic.script import ScriptDirectory
from typer.testing import CliRunner

from thresher.cli.main import app

runner = CliRunner()


def head() -> str:
    config = Config()
    config.set_main_option("script_location", "thresher.store:migrations")
    revision = ScriptDirectory.from_config(config).get_current_head()
    assert revision is not None
    return revision


def run(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


def test_db_upgrade_brings_an_empty_database_to_head(tmp_path: Path) -> None:
    data = str(tmp_path / "data")
    assert run("db", "upgrade", "--data-dir", data, "--to", "0001") == (
        0,
        "database schema: empty -> 0001\n",
    )
    assert run("db", "current", "--data-dir", data) == (0, "0001\n")
    assert run("db", "upgrade", "--data-dir", data) == (0, f"database schema: 0001 -> {head()}\n")
    assert run("db", "current", "--data-dir", data) == (0, f"{head()}\n")


def test_backup_and_restore_refuse_to_overwrite(tmp_path: Path) -> None:
    data, copy = tmp_path / "data", tmp_path / "copy.db"
    assert run("db", "upgrade", "--data-dir", str(data))[0] == 0
    code, out = run("backup", str(copy), "--data-dir", str(data))
    assert code == 0, out
    assert "backed up" in out
    code, out = run("backup", str(copy), "--data-dir", str(data))
    assert code == 2
    assert "exists" in out
    code, out = run("restore", str(copy), "--data-dir", str(data))
    assert code == 2
    assert "--force" in out
    assert run("restore", str(copy), "--data-dir", str(data), "--force")[0] == 0
    assert run("db", "current", "--data-dir", str(data)) == (0, f"{head()}\n")


def test_restore_refuses_what_is_not_a_database(tmp_path: Path) -> None:
    junk = tmp_path / "junk"
    junk.write_bytes(b"not a database at all" * 100)
    code, out = run("restore", str(junk), "--data-dir", str(tmp_path / "data"))
    assert code == 2
    assert "not a SQLite database" in out


def test_without_pg_dump_the_command_is_printed_without_the_password(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no pg_dump on it
    url = "postgresql+psycopg://farm:s3cret@db.example:5432/thresher"
    code, out = run(
        "backup", str(tmp_path / "b.dump"), "--data-dir", str(tmp_path), "--database-url", url
    )
    assert code == 1
    assert "pg_dump --format=custom" in out
    assert "postgresql://farm@db.example:5432/thresher" in out
    assert "s3cret" not in out
