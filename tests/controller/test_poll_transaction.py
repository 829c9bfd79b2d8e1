"""A poll's finishes, reconciliation and claims are one transaction: all or nothing.

The farm is driven directly (no HTTP) over a real store, and the claim is made to fail after the
poll's finish was written, as a lost database connection would."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from thresher.controller.auth import Caller
from thresher.controller.errors import Unauthorized
from thresher.controller.farm import Farm, Unconfirmed
from thresher.controller.notifier import Notifier
from thresher.controller.settings import ControllerSettings
from thresher.core.errors import Forbidden
from thresher.core.states import TaskStatus
from thresher.schemas import api
from thresher.store import plain_finish, snapshot
from thresher.store.prepared import Prepared
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


def _workers(farm: Farm, n: int) -> list[Caller]:
    out = []
    for i in range(n):
        body = api.RegisterIn(
            name=f"g{i}", hostname=f"g{i}", os="linux", cores=2, ram_bytes=1 << 30, lanes=1
        )
        caller = farm.access.caller(farm.agents.register(ADMIN, body).token)
        assert caller is not None
        out.append(caller)
    return out


def _together(farm: Farm, polls: list[tuple[Caller, api.PollIn]]) -> list[object]:
    """Polls queued together on the farm thread: each confirmed, then their first rounds."""
    items = [(Unconfirmed(c, "POST", "/api/v1/agent/poll"), c, body) for c, body in polls]
    return [
        o if isinstance(o, BaseException) else o.answer  # type: ignore[attr-defined]
        for o in farm._first_rounds(items)
    ]


def test_polls_together_each_get_their_own_outcome(farm: tuple[Farm, Store]) -> None:
    """A revoked token and a foreign lane are refused to their own polls only."""
    farm_, store = farm
    job = farm_.jobs.submit(ADMIN, api.JobIn(name="job", frames="1-9", command=["true"]))
    ok, revoked, foreign, ok2 = _workers(farm_, 4)
    store.tokens.revoke(revoked.token_id)
    out = _together(
        farm_,
        [
            (ok, api.PollIn(lanes=[0])),
            (revoked, api.PollIn(lanes=[0])),
            (foreign, api.PollIn(lanes=[3])),
            (ok2, api.PollIn(lanes=[0])),
        ],
    )
    assert isinstance(out[1], Unauthorized)
    assert isinstance(out[2], Forbidden)
    first, second = out[0], out[3]
    assert isinstance(first, api.PollOut)
    assert isinstance(second, api.PollOut)
    assert len(first.assignments) == len(second.assignments) == 1
    assert store.jobs.get(job.id).counts.running == 2
    # Finishes reported together count once each, and each gets its next task.
    out = _together(farm_, [(ok, _finishing(first)), (ok2, _finishing(second))])
    assert all(isinstance(o, api.PollOut) and len(o.assignments) == 1 for o in out)
    counts = store.jobs.get(job.id).counts
    assert (counts.succeeded, counts.running) == (2, 2)


def test_polls_together_read_their_finishes_with_one_statement(
    farm: tuple[Farm, Store], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A group's finishes are read with one statement, which also reads what each worker
    still runs: no reconciliation of the group reads its worker's attempts again, and each
    poll still gets its next task."""
    farm_, store = farm
    job = farm_.jobs.submit(ADMIN, api.JobIn(name="job", frames="1-9", command=["true"]))
    workers = _workers(farm_, 3)
    got = _together(farm_, [(w, api.PollIn(lanes=[0])) for w in workers])
    ran: list[Prepared] = []
    run_all = Prepared.all

    def counted(self: Prepared, conn: Any, values: Any) -> Any:
        ran.append(self)
        return run_all(self, conn, values)

    monkeypatch.setattr(Prepared, "all", counted)
    out = _together(
        farm_,
        [(w, _finishing(o)) for w, o in zip(workers, got, strict=True)],  # type: ignore[arg-type]
    )
    assert all(isinstance(o, api.PollOut) and len(o.assignments) == 1 for o in out)
    reads = [p for p in ran if p in (plain_finish._PLAIN_HELD, plain_finish._ENDING_HELD)]
    assert len(reads) == 1
    assert snapshot._HELD_BY not in ran  # the reconciliations read nothing more
    counts = store.jobs.get(job.id).counts
    assert (counts.succeeded, counts.running) == (3, 3)


def test_a_failing_poll_leaves_the_others_of_its_group_written(
    farm: tuple[Farm, Store], monkeypatch: pytest.MonkeyPatch
) -> None:
    """One poll's claim fails inside the group's transaction: the group is rolled back and each
    poll runs again alone; the failing one's finish stays unwritten, the others' count."""
    farm_, store = farm
    job = farm_.jobs.submit(ADMIN, api.JobIn(name="job", frames="1-9", command=["true"]))
    a, b, c = _workers(farm_, 3)
    got = _together(farm_, [(w, api.PollIn(lanes=[0])) for w in (a, b, c)])
    assert all(isinstance(o, api.PollOut) for o in got)
    broken_for = farm_.agents.worker_of(b)
    claim = store.dispatch.claim

    def broken(*args: object, **kwargs: object) -> object:
        if kwargs.get("worker_id") == broken_for:
            raise ConnectionError("the database went away")
        return claim(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(store.dispatch, "claim", broken)
    out = _together(
        farm_,
        [(w, _finishing(o)) for w, o in zip((a, b, c), got, strict=True)],  # type: ignore[arg-type]
    )
    assert isinstance(out[1], ConnectionError)
    assert isinstance(out[0], api.PollOut)
    assert isinstance(out[2], api.PollOut)
    counts = store.jobs.get(job.id).counts
    assert (counts.succeeded, counts.running) == (2, 3)  # b's finish rolled back with its claim


def _finishing(answer: api.PollOut) -> api.PollIn:
    return api.PollIn(
        lanes=[0],
        finished=[
            api.FinishIn(attempt_id=a.attempt_id, token=a.token, status="succeeded", exit_code=0)
            for a in answer.assignments
        ],
    )


def test_a_group_whose_claims_cannot_be_written_runs_each_poll_alone(
    farm: tuple[Farm, Store],
) -> None:
    """PostgreSQL writes a group's claims together at its end (`store.claims_later`). A task
    skipped before dispatch while the process holds its position cannot be written as
    claimed: the group rolls back and each poll runs alone; none is handed the skipped task,
    each its own, and the finishes count once."""
    farm_, store = farm
    if store.dialect != "postgresql":
        pytest.skip("claims are gathered on PostgreSQL only")
    job = farm_.jobs.submit(ADMIN, api.JobIn(name="job", frames="1-20", command=["true"]))
    a, b, c = _workers(farm_, 3)
    got = _together(farm_, [(w, api.PollIn(lanes=[0])) for w in (a, b)])
    assert [o.assignments[0].index for o in got] == [0, 1]  # type: ignore[attr-defined]
    store.tasks.set_status(job.id, 0, 3, TaskStatus.SKIPPED, now=0.0)
    out = _together(
        farm_,
        [(a, _finishing(got[0])), (b, _finishing(got[1])), (c, api.PollIn(lanes=[0]))],  # type: ignore[arg-type]
    )
    indexes = [o.assignments[0].index for o in out]  # type: ignore[attr-defined]
    assert sorted(indexes) == [2, 4, 5]
    counts = store.jobs.get(job.id).counts
    assert (counts.succeeded, counts.running, counts.skipped) == (2, 3, 1)
