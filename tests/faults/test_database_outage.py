"""PostgreSQL down for 25 s in the middle of a job, then back on the same directory and port.

While it is away the controller answers 503 with a JSON error (workers' polls included) and
expires nobody; when it is back every online worker's lease is renewed, and the finishes the
workers kept meanwhile are accepted."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import Farm
from tests.faults.conftest import (
    Ledger,
    PgCluster,
    assert_exactly_once,
    assert_no_internal_error,
    hold_fault,
    request,
)
from thresher.testing import wait_until

pytestmark = [pytest.mark.faults, pytest.mark.e2e, pytest.mark.postgres]

OUTAGE_S = 25.0
LEASE_S = 3.0  # far shorter than the outage


def test_postgresql_down_25_s_mid_job(pg_farm: Farm, pg_cluster: PgCluster, ledger: Ledger) -> None:
    farm = pg_farm
    controller = farm.controller(heartbeat=0.5, lease=LEASE_S)
    workers = [farm.worker("w1", lanes=2), farm.worker("w2", lanes=2)]
    frames = range(1, 41)
    with farm.client() as client:
        job = client.submit("outage", ledger.command("sleep 0.5"), frames="1-40")
        wait_until(lambda: client.job(job.id).counts.succeeded >= 8, timeout=30, what="8 done")
        recorded = client.job(job.id).counts.succeeded
    pg_cluster.down()
    try:
        answers = []
        hold_fault(
            OUTAGE_S,
            lambda: answers.append(request(farm, "GET", f"/api/v1/jobs/{job.id}")),
            what="the outage",
        )
        # The tasks that were running went on and finished meanwhile, unrecorded.
        assert ledger.tally(frames).runs > recorded
    finally:
        pg_cluster.up()
    with farm.client() as client:
        wait_until(lambda: client.job(job.id).status == "succeeded", timeout=60, what="job done")
        attempts = client.attempts(job.id)
        statuses = {w.name: w.status for w in client.workers()}
    assert_exactly_once(farm, job.id, ledger, frames)
    assert [a for a in attempts if a.status != "succeeded"] == []  # no worker was expired
    assert statuses == {"w1": "online", "w2": "online"}
    # The controller answered all along, every time 503.
    assert len(answers) >= OUTAGE_S / 2
    assert set(answers) == {503}
    assert_no_internal_error(controller)
    assert any("the database is unavailable" in w.text() for w in workers)  # polls got it too
