"""A submission claims for the polls held open in its own transaction (`controller/hand_out.py`),
over a real store (SQLite and PostgreSQL), the polls and use cases run as the server runs them
(an event loop, the farm thread): the held poll is answered with the new job's task from the
submission's one commit, without a round of its own; and a submission that fails anywhere
after the poll was taken writes nothing, and the poll claims for itself as before."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Coroutine, Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

import pytest
import sqlalchemy as sa
from tests.controller.test_use_case_transactions import (
    ALICE,
    FaultAt,
    InjectedFault,
    dump,
    register,
)
from tests.statements import statements_run

from thresher.controller.farm import Farm
from thresher.controller.notifier import Notifier
from thresher.controller.settings import ControllerSettings
from thresher.core.states import JobStatus
from thresher.schemas import api
from thresher.store import tally
from thresher.store.store import Store
from thresher.testing import wait_until

T = TypeVar("T")


class Served:
    """The farm with its notifier bound to an event loop in a thread of its own, as in the
    server: polls wait on that loop, use cases run on the farm thread."""

    def __init__(self, farm: Farm) -> None:
        self.farm = farm
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        self.run(self._bind())

    async def _bind(self) -> None:
        self.farm.notifier.bind(asyncio.get_running_loop())

    async def _end_polls(self) -> None:
        polls = asyncio.all_tasks() - {asyncio.current_task()}
        for poll in polls:
            poll.cancel()
        await asyncio.gather(*polls, return_exceptions=True)

    def start(self, coro: Coroutine[Any, Any, T]) -> Future[T]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.start(coro).result(timeout=30)

    def close(self) -> None:
        self.run(self._end_polls())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


@pytest.fixture
def served(db_url: str, tmp_path: Path) -> Iterator[Served]:
    store = Store.open(db_url)
    settings = ControllerSettings(data_dir=tmp_path, poll_hold_s=60)
    farm = Farm(store, _Clock(), settings, Notifier())
    farm.start(0.0)
    served = Served(farm)
    try:
        yield served
    finally:
        served.close()
        farm.close()
        store.close()


class _Clock:
    """The wall clock: a held poll's hold is measured in the loop's real time."""

    def now(self) -> float:
        import time

        return time.time()


def hold(served: Served, worker: Any) -> Future[api.PollOut]:
    """A poll of `worker` for lane 0, held open (until it is answered)."""

    async def connected() -> bool:
        return False

    body = api.PollIn(lanes=[0], wait_s=60)
    answer = served.start(served.farm.agents.poll(worker, body, disconnected=connected))
    wait_until(lambda: len(served.farm.agents.idle) == 1, timeout=10, what="the poll held")
    return answer


def count_own_rounds(farm: Any, monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """The rounds held polls run on their own (not in a submission's transaction), as listed."""
    own_rounds: list[object] = []
    next_round = farm.agents._next_round

    def counted(*args: Any, **kwargs: Any) -> Any:
        own_rounds.append(args)
        return next_round(*args, **kwargs)

    monkeypatch.setattr(farm.agents, "_next_round", counted)
    return own_rounds


def submit(served: Served, name: str) -> int:
    farm = served.farm
    body = api.JobIn(name=name, frames="1", command=["true"])
    return served.run(farm.call(farm.jobs.submit, ALICE, body)).id


def attempts(served: Served) -> list[tuple[Any, ...]]:
    return dump(served.farm)["attempts"]


def work(farm: Farm) -> dict[str, list[tuple[Any, ...]]]:
    """Every row but the workers' (a held poll's own rounds refresh its worker's lease)."""
    return {name: rows for name, rows in dump(farm).items() if name != "workers"}


#: Where the fault is put: at the commit (the transaction's body done, rolled back instead).
COMMIT = -1


@contextlib.contextmanager
def failing_commit(store: Store, fail: bool) -> Iterator[None]:
    """With `fail`, the outermost transaction opened meanwhile ends in a rollback instead of
    its commit, as a commit the database refused."""
    if not fail:
        yield
        return
    transaction = store.transaction
    left = [1]  # the submission's own transaction only, not the poll's round after it

    @contextlib.contextmanager
    def refused(*, claims_later: bool = False) -> Iterator[sa.Connection]:
        depth = left[0]
        left[0] = 0 if depth == 1 else depth
        with transaction(claims_later=claims_later) as conn:
            yield conn
            if depth == 1:
                raise InjectedFault("the commit refused")

    setattr(store, "transaction", refused)  # noqa: B010 - the store's own, put back below
    try:
        yield
    finally:
        setattr(store, "transaction", transaction)  # noqa: B010


def test_a_held_poll_gets_the_new_jobs_task_from_the_submissions_commit(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    farm = served.farm
    worker = served.run(farm.call(register, farm, "w1", 1))
    own_rounds = count_own_rounds(farm, monkeypatch)
    answer = hold(served, worker)

    job_id = submit(served, "shot")

    (task,) = answer.result(timeout=10).assignments
    assert (task.job_id, task.block, task.index) == (job_id, 0, 0)
    assert own_rounds == []  # claimed in the submission's transaction
    (row,) = attempts(served)
    assert task.attempt_id in row


def test_a_submission_failing_after_it_took_the_poll_writes_nothing_and_the_poll_claims_itself(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    farm = served.farm
    worker = served.run(farm.call(register, farm, "w1", 1))
    answer = hold(served, worker)
    # Every store call of the submission from the one that takes the poll's task onwards
    # fails in turn (the commit's failure included): nothing is written, and the poll stays
    # held, taking part in the next submission again.
    fault = FaultAt(farm.unit.store, monkeypatch)
    claim = farm.agents.round_in
    at_claim: list[int] = []

    def noted(*args: Any, **kwargs: Any) -> Any:
        at_claim.append(fault.calls)
        return claim(*args, **kwargs)

    monkeypatch.setattr(farm.agents, "round_in", noted)
    submit(served, "counted")  # no fault: how many store calls, and where the claim starts
    (first,) = answer.result(timeout=10).assignments
    calls, start = fault.calls, at_claim[0]
    assert calls > start, "the claim made no store call"
    finished = api.FinishIn(
        attempt_id=first.attempt_id, token=first.token, status="succeeded", exit_code=0
    )
    served.run(farm.call(farm.agents.report, worker, api.ReportIn(finished=[finished])))
    answer = hold(served, worker)
    before = work(farm)
    for at in [*range(start + 1, calls + 1), COMMIT]:
        fault.at, fault.calls = at, 0
        with pytest.raises(InjectedFault), failing_commit(farm.unit.store, at == COMMIT):
            submit(served, f"fails at {at}")
        assert work(farm) == before, f"a fault at store call {at} left changes"
        wait_until(
            lambda: len(farm.agents.idle) == 1 or answer.done(), timeout=10, what=f"held {at}"
        )
        assert not answer.done(), (at, answer.result())
    fault.at = 0

    job_id = submit(served, "after the faults")

    (task,) = answer.result(timeout=10).assignments
    assert task.job_id == job_id
    assert len(attempts(served)) == 2


def test_a_poll_without_a_free_lane_is_left_to_its_own_rounds(served: Served) -> None:
    farm = served.farm
    worker = served.run(farm.call(register, farm, "w1", 1))

    async def connected() -> bool:
        return False

    body = api.PollIn(lanes=[], wait_s=60)  # a heartbeat: nothing asked
    answer = served.start(farm.agents.poll(worker, body, disconnected=connected))
    wait_until(lambda: len(farm.agents.idle) == 1, timeout=10, what="the poll held")

    assert farm.agents.idle.take(8) == []
    assert len(farm.agents.idle) == 1
    assert not answer.done()


def test_a_submission_inside_a_wider_transaction_leaves_the_poll_to_its_own_round(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its change's end is not the commit: no poll may hear of its claims before the commit."""
    farm = served.farm
    worker = served.run(farm.call(register, farm, "w1", 1))
    own_rounds = count_own_rounds(farm, monkeypatch)
    answer = hold(served, worker)

    def submit_inside() -> int:
        with farm.unit.transaction():
            body = api.JobIn(name="inside", frames="1", command=["true"])
            return farm.jobs.submit(ALICE, body).id

    job_id = served.run(farm.call(submit_inside))

    (task,) = answer.result(timeout=10).assignments
    assert task.job_id == job_id
    assert own_rounds != []


def test_the_submissions_claim_reads_back_none_of_the_job_it_wrote(served: Served) -> None:
    """GIVEN a held poll, WHEN a job is submitted with a command, env and cwd, THEN the poll's
    assignment carries them, taken from the job as written: no statement of the submission
    reads the job's row back for it (one round trip less on PostgreSQL)."""
    farm = served.farm
    worker = served.run(farm.call(register, farm, "w1", 1))
    answer = hold(served, worker)
    body = api.JobIn(
        name="static", frames="1", command=["echo", "hi"], env={"SHOT": "010"}, cwd="/tmp"
    )
    with statements_run(farm.store.db.engine) as statements:
        job_id = served.run(farm.call(farm.jobs.submit, ALICE, body)).id
        (task,) = answer.result(timeout=10).assignments

    assert task.job_id == job_id
    assert (task.env, task.cwd, task.kind) == ({"SHOT": "010"}, "/tmp", "command")
    assert task.payload["commands"] == [["echo", "hi"]]
    reads_of_job = [s for s in statements if s.lstrip().startswith("SELECT jobs.kind")]
    assert reads_of_job == []


def test_the_submissions_claim_takes_from_its_new_block_without_locking_its_row(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL: the block a submission inserted is its transaction's own until the commit
    (no other sees it) and its cursor is 0, so the held poll's claim reserves its position
    without locking or reading the row (one round trip less); the cursor is written with the
    claim's counts at the commit, and the next job's claim does the same."""
    farm = served.farm
    if farm.store.dialect != "postgresql":
        pytest.skip("SQLite has no block locks: one writer")
    workers = [served.run(farm.call(register, farm, name, 1)) for name in ("w1", "w2")]
    run = tally._run
    statements: list[str] = []

    def seen(conn: sa.Connection, sql: str, params: dict[str, Any], **kw: Any) -> Any:
        statements.append(sql)
        return run(conn, sql, params, **kw)

    monkeypatch.setattr(tally, "_run", seen)
    monkeypatch.setattr(tally, "_fold_due", lambda: False)  # no periodic fold at the commits
    for name, worker in zip(("first", "second"), workers, strict=True):
        answer = hold(served, worker)
        before = len(statements)
        job_id = submit(served, name)
        (task,) = answer.result(timeout=10).assignments
        submission = statements[before:]
        assert (task.job_id, task.index) == (job_id, 0)
        assert [s for s in submission if "FOR NO KEY UPDATE" in s] == []
        # one write of the block's row: its cursor and the claim's counts, at the commit
        assert len([s for s in submission if s.startswith("UPDATE blocks")]) == 1
        assert farm.store.jobs.get(job_id).status is JobStatus.RUNNING

    with farm.store.db.engine.connect() as conn:
        cursors = conn.execute(sa.text("SELECT cursor FROM blocks ORDER BY id")).scalars()
        assert cursors.all() == [1, 1]
