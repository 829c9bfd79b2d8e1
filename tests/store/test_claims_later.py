"""A transaction that gathers its claims (a group of polls) writes them with one statement
before its commit, and before any statement of its own that may read them; a rollback writes
none and gives their positions back; a position whose task row was made meanwhile is
`ClaimsLost`, nothing written (`store.claims_later`, PostgreSQL only: SQLite claims as
before)."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from tests.store.support import add_worker, block, candidates
from tests.store.test_rollback_positions import _all_the_rest
from tests.store.test_scheduling import add_job
from tests.store.test_store import assert_counters_match_rows, finish_report, job_spec, take
from thresher.core.states import TaskStatus
from thresher.store import claims_later, pg_claim, tally
from thresher.store.claims_later import ClaimsLost
from thresher.store.prepared import Prepared
from thresher.store.store import Refused, Store
from thresher.store.tables import attempts, limit_holds
from thresher.testing import FakeClock


@pytest.fixture(autouse=True)
def _postgresql_only(store: Store) -> None:
    if store.dialect != "postgresql":
        pytest.skip("claims are gathered on PostgreSQL only (SQLite has one writer)")


_ATTEMPT_IDS = Prepared(sa.select(attempts.c.id).order_by(attempts.c.id))


def _attempts(store: Store) -> dict[int, str]:
    with store.engine.connect() as conn:
        return {int(r.id): str(r.token) for r in conn.execute(sa.select(attempts))}


def test_a_transaction_writes_the_claims_it_gathered_with_one_statement(
    store: Store, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    job_id = store.jobs.create(job_spec(frames="1-100"), now=clock.now())
    workers = [add_worker(store, f"w{i}", clock, lanes=1) for i in range(3)]
    ran: list[str] = []
    run = tally._run

    def counted(conn: Any, sql: str, params: Any, **kw: Any) -> Any:
        ran.append(sql)
        return run(conn, sql, params, **kw)

    (cand,) = candidates(store, now=clock.now())  # as the controller's index knows them
    # The first claim of a block reads what its assignments repeat of the job, kept since:
    # a read, so it writes what was gathered before it, as any statement of the transaction.
    warm = store.dispatch.claim(cand, worker_id=workers[0], now=clock.now()).assignments
    monkeypatch.setattr(tally, "_run", counted)
    with store.transaction(claims_later=True):
        got = [
            a
            for w in workers
            for a in store.dispatch.claim(cand, worker_id=w, now=clock.now()).assignments
        ]
        assert ran.count(claims_later._WRITE) == 0  # not yet: at the commit
        # another connection sees none of them before the commit
        assert set(_attempts(store)) == {warm[0].attempt_id}
    assert ran.count(claims_later._WRITE) == 1
    assert pg_claim._CLAIM not in ran
    got = warm + got
    assert [a.task_index for a in got] == [0, 1, 2, 3]
    assert _attempts(store) == {a.attempt_id: a.token for a in got}
    assert store.jobs.get(job_id).counts.running == 4
    assert_counters_match_rows(store)
    # What the workers were handed is theirs to finish.
    store.attempts.finish_many([finish_report(a) for a in got], now=clock.now())
    assert store.jobs.get(job_id).counts.succeeded == 4
    assert_counters_match_rows(store)


def test_a_statement_of_the_transaction_sees_the_claims_gathered_before_it(
    store: Store, clock: FakeClock
) -> None:
    job_id = store.jobs.create(job_spec(frames="1-10"), now=clock.now())
    worker = add_worker(store, "w1", clock, lanes=1)
    with store.transaction(claims_later=True) as conn:
        got = take(store, worker, clock)
        held = store.snapshot.worker_held(worker)  # reads attempts: the claim written first
        assert [h.id for h in held] == [got.attempt_id]
        again = take(store, worker, clock)  # gathered again after the write
        ids = [r.id for r in _ATTEMPT_IDS.all(conn, {})]  # a `Prepared` statement: the same
        assert ids == [got.attempt_id, again.attempt_id]
        yet_again = take(store, worker, clock)
        # the finish's read (a `Prepared` statement) finds the attempt just claimed
        store.attempts.finish_many([finish_report(again)], now=clock.now())
    assert set(_attempts(store)) == {got.attempt_id, again.attempt_id, yet_again.attempt_id}
    counts = store.jobs.get(job_id).counts
    assert (counts.running, counts.succeeded) == (2, 1)


def test_a_rollback_writes_none_of_the_claims_and_gives_their_positions_back(
    store: Store, clock: FakeClock
) -> None:
    store.jobs.create(job_spec(frames="1-100"), now=clock.now())
    worker = add_worker(store, "w1", clock, lanes=1)

    def group_that_fails() -> None:
        with store.transaction(claims_later=True):
            assert [take(store, worker, clock).task_index for _ in range(3)] == [0, 1, 2]
            raise RuntimeError("the group failed after its claims")

    with pytest.raises(RuntimeError):
        group_that_fails()
    assert _attempts(store) == {}
    assert _all_the_rest(store, add_worker(store, "w2", clock, lanes=100), clock) == list(
        range(100)
    )
    assert_counters_match_rows(store)


def test_a_position_whose_task_was_touched_meanwhile_loses_the_claims_and_writes_none(
    store: Store, clock: FakeClock
) -> None:
    """Task 2 is skipped before dispatch while the process holds its position: a gathered
    claim of it cannot be written as promised. Nothing of the transaction is written, and
    claims that write at once pass the skipped task over and hand out the rest in order."""
    job_id = store.jobs.create(job_spec(frames="1-100"), now=clock.now())
    worker = add_worker(store, "w1", clock, lanes=1)
    first = take(store, worker, clock)  # position 0; the process holds the rest of the range
    store.tasks.set_status(job_id, 0, 2, TaskStatus.SKIPPED, now=clock.now())
    with pytest.raises(ClaimsLost), store.transaction(claims_later=True):
        assert [take(store, worker, clock).task_index for _ in range(3)] == [1, 2, 3]
    assert set(_attempts(store)) == {first.attempt_id}
    rest = _all_the_rest(store, add_worker(store, "w2", clock, lanes=100), clock)
    assert rest == [1, *range(3, 100)]
    assert_counters_match_rows(store)


def test_a_limited_blocks_hold_finds_its_gathered_attempt(store: Store, clock: FakeClock) -> None:
    """A claim of a block with limits holds a unit for its attempt: the hold's row names the
    attempt, so the claims gathered are written before it (the foreign key would refuse it)."""
    store.limits.set("nuke", max_total=2, max_per_host=None, max_hosts=None, now=clock.now())
    job_id = add_job(store, clock, block("main", "1-10", 1, limits=("nuke",)))
    workers = [add_worker(store, f"w{i}", clock, lanes=1) for i in range(3)]
    (cand,) = candidates(store, now=clock.now())
    with store.transaction(claims_later=True):
        got = [store.dispatch.claim(cand, worker_id=w, now=clock.now(), lane=0) for w in workers]
    assert [o.refused for o in got] == [None, None, Refused.LIMIT]
    with store.engine.connect() as conn:
        held = {int(r.attempt_id) for r in conn.execute(sa.select(limit_holds))}
    assert held == {o.assignment.attempt_id for o in got if o.assignment is not None}
    assert store.jobs.get(job_id).counts.running == 2
    assert_counters_match_rows(store)
