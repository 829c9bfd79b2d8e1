"""The data directory's disk full in the middle of a job (SQLite), then freed.

While the database cannot be written the controller answers 503 with a JSON error and expires
nobody; once space is back the finishes the workers kept meanwhile are accepted."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import Farm
from tests.faults.conftest import (
    Ledger,
    assert_exactly_once,
    assert_no_internal_error,
    fill,
    hold_fault,
    request,
)
from thresher.testing import wait_until

pytestmark = [pytest.mark.faults, pytest.mark.e2e]

LEASE_S = 3.0
FULL_S = 3 * LEASE_S
# Each task prints 100 lines (about 5 KB) to its log, so the database grows as the job runs.
WORK = "seq -f 'line %g of the output that fills the database' 100; sleep 0.3"


@pytest.fixture
def disk_farm(tmp_path: Path, small_disk: Path) -> Iterator[Farm]:
    """A SQLite farm whose --data-dir is the small disk (stopped before it is unmounted)."""
    farm = Farm(tmp_path, None)
    assert farm.data_dir == small_disk
    try:
        yield farm
    finally:
        farm.stop_all()


def test_disk_full_mid_job_then_freed(disk_farm: Farm, small_disk: Path, ledger: Ledger) -> None:
    farm = disk_farm
    controller = farm.controller(heartbeat=0.5, lease=LEASE_S)
    workers = [farm.worker("w1", lanes=2), farm.worker("w2", lanes=2)]
    frames = range(1, 41)
    with farm.client() as client:
        job = client.submit("disk full", ledger.command(WORK), frames="1-40")
        wait_until(lambda: client.job(job.id).counts.succeeded >= 6, timeout=30, what="6 done")
    filler = fill(small_disk)
    try:
        controller.wait_for("answered 503: the database is unavailable", timeout=30)
        # A write that finds room in pages the database has already succeeds; one that needs
        # more must answer 503.
        path = f"/api/v1/jobs/{job.id}/priority"
        answers: list[int] = []
        hold_fault(
            FULL_S,
            lambda: answers.append(
                request(farm, "PUT", path, json={"priority": 40 + len(answers) % 2})
            ),
            what="the disk full",
        )
    finally:
        filler.unlink()
    with farm.client() as client:
        wait_until(lambda: client.job(job.id).status == "succeeded", timeout=60, what="job done")
        attempts = client.attempts(job.id)
        statuses = {w.name: w.status for w in client.workers()}
    assert_exactly_once(farm, job.id, ledger, frames)
    assert [a for a in attempts if a.status != "succeeded"] == []  # no worker was expired
    assert statuses == {"w1": "online", "w2": "online"}
    assert len(answers) >= FULL_S / 2
    assert_no_internal_error(controller)
    assert any("the database is unavailable" in w.text() for w in workers)
