"""A poll's finish reads its worker's other running attempts with it, for the reconciliation
that follows in the same transaction (`Snapshots.held_after_reports`): what it answers is
always what a read of the worker's running attempts would answer then."""

from __future__ import annotations

from typing import Any

import pytest

from tests.store.support import add_worker
from tests.store.test_store import finish_report, job_spec, take
from thresher.core.states import AttemptStatus
from thresher.store import snapshot
from thresher.store.prepared import Prepared
from thresher.store.snapshot import HeldAttempt
from thresher.store.store import FinishReport, Store
from thresher.testing import FakeClock


def _ids(held: list[HeldAttempt]) -> list[int]:
    return [h.id for h in held]


def test_a_plain_finish_answers_with_the_workers_other_running_attempts(
    store: Store, clock: FakeClock
) -> None:
    store.jobs.create(job_spec(frames="1-4"), now=clock.now())
    worker = add_worker(store, "w1", clock)
    other = add_worker(store, "w2", clock)
    done, kept, ahead = (take(store, worker, clock) for _ in range(3))
    take(store, other, clock)

    with store.transaction():
        store.attempts.finish_many([finish_report(done)], now=clock.now())
        held = store.snapshot.held_after_reports(worker)
        again = store.snapshot.worker_held(worker)

    assert _ids(held) == _ids(again) == [kept.attempt_id, ahead.attempt_id]
    assert held == again  # owner, priority, lane, capacity, stop asked: as read


def test_a_stop_asked_after_the_finish_is_seen(store: Store, clock: FakeClock) -> None:
    store.jobs.create(job_spec(frames="1-3"), now=clock.now())
    worker = add_worker(store, "w1", clock)
    done, kept = take(store, worker, clock), take(store, worker, clock)

    with store.transaction():
        store.attempts.finish_many([finish_report(done)], now=clock.now())
        store.dispatch.request_stop([kept.attempt_id], "nimby")  # a local NIMBY, say
        held = store.snapshot.held_after_reports(worker)

    assert [(h.id, h.cancel_reason) for h in held] == [(kept.attempt_id, "nimby")]


def test_another_workers_finish_or_a_later_transaction_reads_again(
    store: Store, clock: FakeClock
) -> None:
    store.jobs.create(job_spec(frames="1-4"), now=clock.now())
    worker = add_worker(store, "w1", clock)
    other = add_worker(store, "w2", clock)
    mine = take(store, worker, clock)
    theirs, theirs_too = take(store, other, clock), take(store, other, clock)

    with store.transaction():  # a report for another worker's attempt (w2's, sent by w1)
        store.attempts.finish_many([finish_report(theirs)], now=clock.now())
        assert _ids(store.snapshot.held_after_reports(worker)) == [mine.attempt_id]
    assert _ids(store.snapshot.held_after_reports(other)) == [theirs_too.attempt_id]
    with store.transaction():
        store.attempts.finish_many([finish_report(mine)], now=clock.now())
    newer = take(store, worker, clock)
    with store.transaction():  # what the last one's finish read is not taken for this one's
        assert _ids(store.snapshot.held_after_reports(worker)) == [newer.attempt_id]


def test_a_finish_that_is_not_plain_leaves_the_read_to_the_reconciliation(
    store: Store, clock: FakeClock
) -> None:
    store.jobs.create(job_spec(frames="1-3"), now=clock.now())
    worker = add_worker(store, "w1", clock)
    done, failed, kept = (take(store, worker, clock) for _ in range(3))

    with store.transaction():
        store.attempts.finish_many(
            [
                finish_report(done),
                FinishReport(failed.attempt_id, failed.token, AttemptStatus.FAILED, exit_code=1),
            ],
            now=clock.now(),
        )
        held = store.snapshot.held_after_reports(worker)

    assert _ids(held) == _ids(store.snapshot.worker_held(worker)) == [kept.attempt_id]


def test_the_finishes_of_several_workers_answer_each_workers_reconciliation(
    store: Store, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Polls run together report their finishes with one statement, naming their workers: each
    worker's reconciliation gets what a read would give without a read of its own, and only
    once (a second poll of the same worker in the transaction comes after the first one's
    claim, so it reads)."""
    store.jobs.create(job_spec(frames="1-9"), now=clock.now())
    first, second, idle = (add_worker(store, f"w{i}", clock) for i in range(3))
    done_1, kept_1 = take(store, first, clock), take(store, first, clock)
    done_2 = take(store, second, clock)
    take(store, idle, clock)
    reads = _count_reads(monkeypatch)

    with store.transaction():
        store.attempts.finish_many(
            [finish_report(done_1), finish_report(done_2)],
            now=clock.now(),
            workers=[first, second],
        )
        held_2 = store.snapshot.held_after_reports(second)
        held_1 = store.snapshot.held_after_reports(first)
        assert reads == []  # both taken from the finishes' read
        assert held_1 == store.snapshot.worker_held(first)
        assert _ids(held_1) == [kept_1.attempt_id]
        assert held_2 == []  # its only attempt finished: nothing held, not "not known"
        claimed = take(store, first, clock)  # the first poll's claim
        reads.clear()
        again = store.snapshot.held_after_reports(first)
        assert len(reads) == 1

    assert _ids(again) == [kept_1.attempt_id, claimed.attempt_id]


def test_a_worker_named_without_a_finish_of_its_own_gets_its_running_attempts(
    store: Store, clock: FakeClock
) -> None:
    """A poll of the group reports another worker's attempt (its token right): the reporting
    worker's reconciliation gets its own running attempts, the attempt's owner reads."""
    store.jobs.create(job_spec(frames="1-5"), now=clock.now())
    sender, owner = add_worker(store, "w1", clock), add_worker(store, "w2", clock)
    mine = take(store, sender, clock)
    theirs, theirs_too = take(store, owner, clock), take(store, owner, clock)

    with store.transaction():
        store.attempts.finish_many([finish_report(theirs)], now=clock.now(), workers=[sender])
        assert _ids(store.snapshot.held_after_reports(sender)) == [mine.attempt_id]
        assert _ids(store.snapshot.held_after_reports(owner)) == [theirs_too.attempt_id]


def _count_reads(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """The reads of a worker's running attempts the reconciliation makes itself, as they run."""
    reads: list[object] = []
    run_all = Prepared.all

    def counted(self: Prepared, conn: Any, values: Any) -> Any:
        if self is snapshot._HELD_BY:
            reads.append(values)
        return run_all(self, conn, values)

    monkeypatch.setattr(Prepared, "all", counted)
    return reads
