"""A poll's finishes, reconciliation and claims are one transaction: all or nothing.

The farm is driven directly (no HTTP) over a real store, and the claim is made to fail after the
poll's finish was written, as a lost database connection would."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from thresher.controller.auth import Caller
from thresher.controller.farm import Farm
from thresher.controller.notifier import Notifier
from thresher.controller.settings import ControllerSettings
from thresher.schemas import api
from thresher.store.store import Store
from thresher.testing import FakeClock

ADMIN = Caller(token_id=0, name="admin", role="admin")


@pytest.fixture
def farm(db_url: str, tmp_path: Path) -> Iterator[tuple[Farm, Store]]:
    store = Store.open(db_url)
    try:
        farm = Farm(store, FakeClock(), ControllerSettings(data_dir=tmp_path), Notifier())
        farm.start(0.0)
        yield farm, store
    finally:
        farm.close()
        store.close()


def _worker(farm: Farm) -> Caller:
    body = api.RegisterIn(
        name="w1", hostname="w1", os="linux", cores=2, ram_bytes=1 << 30, site="hq", lanes=1
    )
    caller = farm.access.caller(farm.agents.register(ADMIN, body).token)
    assert caller is not None
    return caller


def _poll(farm: Farm, worker: Caller, finished: list[api.AssignmentOut]) -> api.PollOut:
    body = api.PollIn(
        lanes=[0],
        finished=[
            api.FinishIn(attempt_id=a.attempt_id, token=a.token, status="succeeded", exit_code=0)
            for a in finished
        ],
    )

    async def connected() -> bool:
        return False

    return asyncio.run(farm.agents.poll(worker, body, disconnected=connected))


def test_a_poll_that_fails_after_its_finish_writes_nothing(
    farm: tuple[Farm, Store], monkeypatch: pytest.MonkeyPatch
) -> None:
    farm_, store = farm
    job = farm_.jobs.submit(ADMIN, api.JobIn(name="job", frames="1-3", command=["true"]))
    worker = _worker(farm_)
    first = _poll(farm_, worker, []).assignments
    assert len(first) == 1

    def broken(*_: object, **__: object) -> None:
        raise ConnectionError("the database went away")

    with monkeypatch.context() as patched:
        patched.setattr(store.dispatch, "claim", broken)
        with pytest.raises(ConnectionError):
            _poll(farm_, worker, first)
    counts = store.jobs.get(job.id).counts
    assert (counts.succeeded, counts.running) == (0, 1)  # the finish was rolled back with it
    # The worker polls again with the same report: the finish counts once, a task is handed out.
    again = _poll(farm_, worker, first)
    assert len(again.assignments) == 1
    assert again.stale == []
    counts = store.jobs.get(job.id).counts
    assert (counts.succeeded, counts.running) == (1, 1)
