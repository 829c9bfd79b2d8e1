"""A poll's finishes, reconciliation and claims are one transaction: all or nothing.

The farm is driven directly (no HTTP) over a real store, and the claim is made to fail after the
poll's finish was written, as a lost database connection would."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.store.support import add_worker

from thresher.controller import polling
from thresher.controller.farm import Farm
from thresher.controller.notifier import Notifier
from thresher.controller.settings import ControllerSettings
from thresher.schemas import api
from thresher.store.store import BlockSpec, JobSpec, Store
from thresher.testing import FakeClock


@pytest.fixture
def farm(db_url: str, tmp_path: Path) -> Iterator[Farm]:
    store = Store.open(db_url)
    try:
        yield Farm(store, FakeClock(), ControllerSettings(data_dir=tmp_path), Notifier())
    finally:
        store.close()


def _job(farm: Farm, frames: str) -> int:
    spec = JobSpec(
        name="job",
        owner="alice",
        priority=50,
        kind="command",
        blocks=(BlockSpec(name="main", frames=frames, chunk=1),),
        payload={"commands": [["true"]]},
    )
    return farm.store.create_job(spec, now=farm.clock.now())


def _poll(farm: Farm, worker_id: int, finished: list[api.AssignmentOut]) -> api.PollOut:
    body = api.PollIn(
        lanes=[0],
        finished=[
            api.FinishIn(attempt_id=a.attempt_id, token=a.token, status="succeeded", exit_code=0)
            for a in finished
        ],
    )

    async def connected() -> bool:
        return False

    return asyncio.run(polling.poll(farm, worker_id, body, disconnected=connected))


def test_a_poll_that_fails_after_its_finish_writes_nothing(
    farm: Farm, monkeypatch: pytest.MonkeyPatch
) -> None:
    job_id = _job(farm, "1-3")
    worker_id = add_worker(farm.store, "w1", farm.clock, lanes=1)
    first = _poll(farm, worker_id, []).assignments
    assert len(first) == 1

    def broken(*_: object, **__: object) -> None:
        raise ConnectionError("the database went away")

    with monkeypatch.context() as patched:
        patched.setattr(farm.store, "claim", broken)
        with pytest.raises(ConnectionError):
            _poll(farm, worker_id, first)
    counts = farm.store.get_job(job_id).counts
    assert (counts.succeeded, counts.running) == (0, 1)  # the finish was rolled back with it
    # The worker polls again with the same report: the finish counts once, a task is handed out.
    again = _poll(farm, worker_id, first)
    assert len(again.assignments) == 1
    assert again.stale == []
    counts = farm.store.get_job(job_id).counts
    assert (counts.succeeded, counts.running) == (1, 1)
