"""PostgreSQL down for 25 s in the middle of a job, then back on the same directory and port.

While it is away the controller answers 503 with a JSON error (workers' polls included) and
expires nobody; when it is back every online worker's lease is renewed, and the finishes the
workers kept meanwhile are accepted."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

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
from thresher.controller.auth import Caller
from thresher.controller.farm import Farm as Controller
from thresher.controller.notifier import Notifier
from thresher.controller.settings import ControllerSettings
from thresher.core.errors import Unavailable
from thresher.schemas import api
from thresher.store.store import Store
from thresher.testing import FakeClock, wait_until

pytestmark = [pytest.mark.faults, pytest.mark.postgres]

OUTAGE_S = 25.0
LEASE_S = 3.0  # far shorter than the outage


@pytest.mark.e2e
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


ADMIN = Caller(token_id=0, name="admin", role="admin")


@pytest.fixture
def controller(
    tmp_path: Path, pg_cluster: PgCluster
) -> Iterator[tuple[Controller, Store, FakeClock]]:
    """The controller's use cases over our own PostgreSQL, on a fake clock, no sweeper: the
    test sweeps."""
    store = Store.open(pg_cluster.url)
    clock = FakeClock(100.0)
    settings = ControllerSettings(data_dir=tmp_path, lease_s=LEASE_S)
    farm = Controller(store, clock, settings, Notifier())
    farm.start(clock.now())
    try:
        yield farm, store, clock
    finally:
        farm.close()
        store.close()


def sweep_once_back(farm: Controller) -> list[int]:
    """A sweep once the database answers again (the first may meet a connection it dropped)."""
    for _ in range(3):
        try:
            return farm.agents.sweep()
        except Unavailable:
            continue
    return farm.agents.sweep()


def poll_meeting_a_dropped_connection(
    farm: Controller, store: Store, worker_id: int, now: float
) -> None:
    """What a poll's first round does first (see Agents.poll): in its transaction, the
    heartbeat, then a store call."""
    with farm.unit.transaction():
        farm.agents.heartbeat(worker_id, now)
        store.workers.get(worker_id)


def test_a_heartbeat_heard_before_an_outage_does_not_expire_its_worker_after_it(
    controller: tuple[Controller, Store, FakeClock], pg_cluster: PgCluster
) -> None:
    """The race the farm above runs into, step by step: a poll arrives as the server goes
    away; its transaction starts on a pooled connection the server has dropped, so the poll's
    heartbeat is heard (kept, to be written with others) before its first statement fails.
    From then on no transaction can start, so nothing writes or drops that heartbeat."""
    farm, store, clock = controller
    body = api.RegisterIn(
        name="w1", hostname="w1", os="linux", cores=2, ram_bytes=1 << 30, site="hq", lanes=1
    )
    worker_id = farm.agents.register(ADMIN, body).worker_id
    assert farm.agents.sweep() == []  # writes the heartbeats heard so far
    clock.advance(0.2)
    pg_cluster.down()
    with pytest.raises(Unavailable):
        poll_meeting_a_dropped_connection(farm, store, worker_id, clock.now())
    for _ in range(int(OUTAGE_S)):  # the sweeper fails each second of the outage
        with pytest.raises(Unavailable):
            farm.agents.sweep()
        clock.advance(1.0)
    pg_cluster.up()
    assert sweep_once_back(farm) == []  # leases renewed
    clock.advance(1.0)  # the next sweep, before the worker's next poll
    assert farm.agents.sweep() == []
    assert store.workers.get(worker_id).status.value == "online"
