"""`thresher backup` while a job runs, the controller lost (-9), `thresher restore` into a
fresh data directory (SQLite) or a fresh database (PostgreSQL, pg_dump/pg_restore), a
controller started on it: the workers re-attach and the job completes. Work finished after the
backup is not in it, so those tasks run again: a backup is a point to go back to."""

from __future__ import annotations

import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.e2e.conftest import THRESHER, Farm
from thresher.testing import wait_until

pytestmark = pytest.mark.e2e

TASKS = 200  # about 10 s of work on two workers: the backup lands well inside it


def thresher(*args: str) -> str:
    done = subprocess.run([THRESHER, *args], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.fixture
def spare_database(db_url: str) -> Iterator[str | None]:
    """A second empty database on the PostgreSQL server (None on SQLite)."""
    if db_url.startswith("sqlite"):
        yield None
        return
    if shutil.which("pg_restore") is None:
        pytest.skip("pg_dump/pg_restore are not installed")
    base = db_url.rsplit("/", 1)[0]
    name = f"r_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(db_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield f"{base}/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def succeeded(farm: Farm, job_id: int) -> int:
    with farm.client() as client:
        return client.job(job_id).counts.succeeded


def test_backup_restore_into_a_fresh_controller_mid_job(
    farm: Farm, spare_database: str | None, tmp_path: Path
) -> None:
    controller = farm.controller(heartbeat=0.5, lease=5.0)
    farm.worker("w1")
    farm.worker("w2")
    with farm.client() as client:
        job = client.submit("backed up", ["sleep", "0.1"], frames=f"1-{TASKS}")
    wait_until(lambda: succeeded(farm, job.id) >= TASKS // 3, timeout=60, what="a third done")
    backup = tmp_path / "farm.backup"
    db_args = ["--database-url", farm.db_url] if spare_database and farm.db_url else []
    thresher("backup", str(backup), "--data-dir", str(farm.data_dir), *db_args)
    assert backup.stat().st_size > 0
    with farm.client() as client:
        before = client.job(job.id).counts.succeeded
    assert before < TASKS  # the backup was taken mid-job
    controller.kill9()

    fresh = tmp_path / "restored"
    fresh.mkdir()
    shutil.copy(farm.data_dir / "admin-token", fresh / "admin-token")  # its hash is backed up
    restore_args = ["--database-url", spare_database] if spare_database else []
    thresher("restore", str(backup), "--data-dir", str(fresh), *restore_args)
    farm.data_dir = fresh
    farm.db_url = spare_database
    farm.controller(heartbeat=0.5, lease=5.0)  # same port: the workers find it there
    with farm.client() as client:
        restored = client.job(job.id)
        assert restored.name == "backed up"
        assert TASKS // 3 <= restored.counts.succeeded + restored.counts.running <= TASKS
        wait_until(lambda: client.job(job.id).status == "succeeded", timeout=120, what="job done")
        assert client.job(job.id).counts.succeeded == TASKS
