"""The Store on real SQLite and PostgreSQL: lazy tasks, claims, counters, retries, fencing, leases.

Every test drives the store directly with times taken from a `FakeClock`, and checks after each
state change that the counters on the blocks agree with the task rows they summarise.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import replace
from typing import Any

import pytest
import sqlalchemy as sa

from tests.store import support
from tests.store.support import add_worker, block
from thresher.core.errors import Conflict, NotFound, StaleAttempt
from thresher.core.lanes import Nimby
from thresher.core.model import Assignment, Counts, JobSpec
from thresher.core.states import AttemptStatus, JobStatus, TaskStatus, WorkerStatus
from thresher.store.store import FinishReport, Store
from thresher.store.tables import attempts, blocks, tasks
from thresher.testing import FakeClock

LEASE_S = 15.0


def job_spec(
    name: str = "job",
    *,
    frames: str = "1-10",
    chunk: int = 1,
    priority: int = 50,
    retries: int = 3,
    priority_frames: str | None = None,
    after: tuple[int, ...] = (),
    paused: bool = False,
) -> JobSpec:
    spec_block = block(
        name="main", frames=frames, chunk=chunk, priority_frames=priority_frames, retries=retries
    )
    return JobSpec(
        name=name,
        owner="alice",
        priority=priority,
        kind="command",
        blocks=(spec_block,),
        after=after,
        payload={"commands": [["echo", "{start}"]]},
        paused=paused,
    )


def claim(
    store: Store, worker_id: int, clock: FakeClock, *, avoid_since: float | None = None
) -> Assignment | None:
    """One task for the worker, the way the controller walks candidates (dependencies first)."""
    return support.claim(store, worker_id, now=clock.now(), avoid_failed_since=avoid_since)


def take(store: Store, worker_id: int, clock: FakeClock) -> Assignment:
    """One task for the worker; there must be one."""
    got = claim(store, worker_id, clock)
    assert got is not None, "expected a task to claim"
    return got


def claim_all(store: Store, worker_id: int, clock: FakeClock) -> list[Assignment]:
    out = []
    while (got := claim(store, worker_id, clock)) is not None:
        out.append(got)
    return out


def finish(
    store: Store, a: Assignment, status: AttemptStatus, clock: FakeClock, **values: Any
) -> int | None:
    report = FinishReport(attempt_id=a.attempt_id, token=a.token, status=status, **values)
    return store.attempts.finish(report, now=clock.now())


def task_row_count(store: Store) -> int:
    with store.engine.connect() as conn:
        return int(conn.scalar(sa.select(sa.func.count()).select_from(tasks)) or 0)


def assert_counters_match_rows(store: Store) -> None:
    """For every block: the counters equal the task rows grouped by status; no row is waiting."""
    with store.engine.connect() as conn:
        by_status: dict[int, dict[str, int]] = {}
        for block_id, status, n in conn.execute(
            sa.select(tasks.c.block_id, tasks.c.status, sa.func.count()).group_by(
                tasks.c.block_id, tasks.c.status
            )
        ).all():
            by_status.setdefault(block_id, {})[status] = n
        block_rows = conn.execute(sa.select(blocks)).all()
    for b in block_rows:
        rows = by_status.get(b.id, {})
        assert "waiting" not in rows, f"block {b.id} has task rows still waiting: {rows}"
        counters = {
            "queued": b.n_queued,
            "running": b.n_running,
            "succeeded": b.n_succeeded,
            "failed": b.n_failed,
            "skipped": b.n_skipped,
            "canceled": b.n_canceled,
        }
        from_rows = {status: rows.get(status, 0) for status in counters}
        assert counters == from_rows, f"block {b.id}: counters {counters} != rows {from_rows}"
        assert sum(from_rows.values()) <= b.task_count


def counts(store: Store, job_id: int) -> Counts:
    return store.jobs.get(job_id).counts


# -- jobs without a row per task ------------------------------------------------------------------


def test_creating_a_job_makes_no_task_rows(store: Store, clock: FakeClock) -> None:
    job_id = store.jobs.create(job_spec(frames="1-10", chunk=3), now=clock.now())

    job = store.jobs.get(job_id)
    assert task_row_count(store) == 0
    assert job.status is JobStatus.QUEUED
    assert job.counts == Counts(total=4)
    assert job.counts.waiting == 4
    total, page = store.tasks.page(job_id)
    assert total == 4
    assert [t.frames for t in page] == [(1, 2, 3), (4, 5, 6), (7, 8, 9), (10,)]
    assert {t.status for t in page} == {TaskStatus.WAITING}
    assert all(t.last_worker is None and t.attempts == 0 for t in page)


def test_the_record_a_job_is_added_with_is_the_one_read_back(
    store: Store, clock: FakeClock
) -> None:
    """`add` builds the record from the rows written: equal to `get`'s, JSON values included
    (tuples as lists, keys as strings), with its dependencies' state."""
    first = store.jobs.add(job_spec("first", frames="1-3"), now=clock.now())
    assert first == store.jobs.get(first.id)
    spec = JobSpec(
        name="second",
        owner="bob",
        priority=70,
        kind="command",
        blocks=(
            block("a", "1-10", 4, limits=("lic",)),
            block("b", "1-10", 4, after=(0,), after_frames=(0,)),
        ),
        after=(first.id,),
        env={"A": "1"},
        payload={"commands": [("echo", "{start}")], "map": {1: (2, 3)}},
        filters="os:linux",
        max_running=3,
    )
    added = store.jobs.add(spec, now=clock.now() + 0.125)
    read = store.jobs.get(added.id)
    assert added == read
    assert added.status is JobStatus.WAITING
    assert added.status_reason == read.status_reason
    assert [b.id for b in added.blocks] == [b.id for b in read.blocks]
    assert store.jobs.payload(added.id) == read.spec.payload
    with pytest.raises(NotFound):
        store.jobs.payload(added.id + 1)


def test_a_million_frame_job_is_listed_page_by_page_without_task_rows(
    store: Store, clock: FakeClock
) -> None:
    job_id = store.jobs.create(job_spec(frames="1-1000000", chunk=1), now=clock.now())

    assert store.jobs.get(job_id).counts.waiting == 1_000_000
    assert [j.id for j in store.jobs.page()] == [job_id]

    total, first = store.tasks.page(job_id, offset=0, limit=100)
    assert total == 1_000_000
    assert [t.index for t in first] == list(range(100))
    assert first[0].frames == (1,)
    assert first[99].frames == (100,)

    _, middle = store.tasks.page(job_id, offset=500_000, limit=100)
    assert [t.index for t in middle] == list(range(500_000, 500_100))
    assert middle[0].frames == (500_001,)

    _, last = store.tasks.page(job_id, offset=999_950, limit=100)
    assert len(last) == 50
    assert last[-1].index == 999_999
    assert last[-1].frames == (1_000_000,)

    _, beyond = store.tasks.page(job_id, offset=1_000_000, limit=100)
    assert beyond == []
    for page in (first, middle, last):
        assert {t.status for t in page} == {TaskStatus.WAITING}
    assert task_row_count(store) == 0

    # Dispatching one task makes exactly one row; the rest stay synthesised.
    worker = add_worker(store, "w1", clock)
    got = take(store, worker, clock)
    assert (got.task_index, got.frames) == (0, (1,))
    assert task_row_count(store) == 1
    _, first = store.tasks.page(job_id, offset=0, limit=2)
    assert [t.status for t in first] == [TaskStatus.RUNNING, TaskStatus.WAITING]
    assert first[0].last_worker == "w1"
    assert_counters_match_rows(store)


# -- claims -------------------------------------------------------------------------------------


def test_claims_follow_priority_then_age(store: Store, clock: FakeClock) -> None:
    ids = {}
    for name, priority in [("a50", 50), ("b80", 80), ("c50", 50), ("d80", 80), ("e10", 10)]:
        ids[name] = store.jobs.create(
            job_spec(name, frames="1", priority=priority), now=clock.now()
        )
        clock.advance(1)
    late = store.jobs.create(job_spec("late", frames="1-2"), now=clock.now())
    store.jobs.set_priority(late, 90)  # raised after submission: now ahead of everyone
    worker = add_worker(store, "w1", clock)

    claimed = claim_all(store, worker, clock)

    assert [a.job_id for a in claimed] == [
        late,
        late,
        ids["b80"],
        ids["d80"],
        ids["a50"],
        ids["c50"],
        ids["e10"],
    ]
    tokens = [a.token for a in claimed]
    assert len(set(tokens)) == len(tokens)
    assert all(len(t) >= 16 for t in tokens)
    assert len({a.attempt_id for a in claimed}) == len(claimed)
    assert (claimed[0].kind, claimed[0].payload) == ("command", {"commands": [["echo", "{start}"]]})
    assert_counters_match_rows(store)


def test_priority_frames_are_dispatched_first(store: Store, clock: FakeClock) -> None:
    single = store.jobs.create(
        job_spec("single", frames="1-10", priority_frames="7,3"), now=clock.now()
    )
    clock.advance(1)
    chunked = store.jobs.create(
        job_spec("chunked", frames="1-10", chunk=2, priority_frames="8"), now=clock.now()
    )
    worker = add_worker(store, "w1", clock)

    claimed = claim_all(store, worker, clock)

    ones = [a for a in claimed if a.job_id == single]
    assert [a.frames for a in ones][:2] == [(3,), (7,)]
    assert [a.task_index for a in ones] == [2, 6, 0, 1, 3, 4, 5, 7, 8, 9]
    # A priority frame brings its whole chunk forward.
    twos = [a.frames for a in claimed if a.job_id == chunked]
    assert twos == [(7, 8), (1, 2), (3, 4), (5, 6), (9, 10)]
    assert_counters_match_rows(store)


def test_concurrent_claims_never_hand_out_a_task_twice(store: Store, clock: FakeClock) -> None:
    job_id = store.jobs.create(job_spec(frames="1-120", retries=0), now=clock.now())
    worker_ids = [add_worker(store, f"w{i}", clock) for i in range(4)]
    claimed: list[Assignment] = []
    errors: list[BaseException] = []
    together = threading.Barrier(len(worker_ids))
    lock = threading.Lock()

    def claim_until_empty(worker_id: int) -> None:
        together.wait()
        try:
            while (got := claim(store, worker_id, clock)) is not None:
                with lock:
                    claimed.append(got)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=claim_until_empty, args=(w,)) for w in worker_ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert errors == []
    assert sorted(a.task_index for a in claimed) == list(range(120))
    assert len({a.attempt_id for a in claimed}) == 120
    assert store.jobs.get(job_id).counts == Counts(total=120, running=120)
    assert_counters_match_rows(store)


def test_paused_and_canceled_jobs_are_not_claimed(store: Store, clock: FakeClock) -> None:
    paused = store.jobs.create(job_spec("paused", frames="1", paused=True), now=clock.now())
    canceled = store.jobs.create(job_spec("canceled", frames="1"), now=clock.now())
    store.jobs.set_flags(canceled, canceled=True)
    worker = add_worker(store, "w1", clock)

    assert claim(store, worker, clock) is None
    assert store.jobs.get(paused).status is JobStatus.PAUSED
    assert store.jobs.get(canceled).status is JobStatus.CANCELED
    assert [j.id for j in store.jobs.page(statuses=[JobStatus.PAUSED])] == [paused]
    assert [j.id for j in store.jobs.page(statuses=[JobStatus.CANCELED])] == [canceled]

    store.jobs.set_flags(paused, paused=False)
    assert take(store, worker, clock).job_id == paused
    assert store.jobs.get(paused).status is JobStatus.RUNNING


# -- counters, retries, leases ------------------------------------------------------------------


def test_counters_stay_consistent_with_rows(store: Store, clock: FakeClock) -> None:
    job_id = store.jobs.create(job_spec(frames="1-8", retries=1), now=clock.now())
    w1, w2 = add_worker(store, "w1", clock), add_worker(store, "w2", clock)
    assert_counters_match_rows(store)

    a0, a1, a2 = take(store, w1, clock), take(store, w2, clock), take(store, w1, clock)
    assert_counters_match_rows(store)
    assert counts(store, job_id).running == 3

    finish(store, a0, AttemptStatus.SUCCEEDED, clock, duration_s=2.0)
    assert_counters_match_rows(store)
    finish(store, a1, AttemptStatus.FAILED, clock, exit_code=1)
    assert_counters_match_rows(store)
    store.tasks.set_status(job_id, 0, 7, TaskStatus.SKIPPED, now=clock.now())
    assert_counters_match_rows(store)

    clock.advance(LEASE_S + 1)
    store.workers.touch_many({w2: clock.now()})
    assert store.workers.expire(now=clock.now(), lease_s=LEASE_S) == [w1]
    assert_counters_match_rows(store)
    assert counts(store, job_id) == Counts(total=8, queued=2, succeeded=1, skipped=1)
    assert store.attempts.of_task(job_id, 0, a2.task_index)[0].status is AttemptStatus.LOST

    # Run everything left to the end on w2, failing task 1 once more (its last retry).
    while (got := claim(store, w2, clock)) is not None:
        status = (
            AttemptStatus.FAILED if got.task_index == a1.task_index else AttemptStatus.SUCCEEDED
        )
        finish(store, got, status, clock, exit_code=0 if status is AttemptStatus.SUCCEEDED else 2)
        assert_counters_match_rows(store)

    job = store.jobs.get(job_id)
    assert job.counts == Counts(total=8, succeeded=6, failed=1, skipped=1)
    assert job.status is JobStatus.FAILED
    assert job.blocks[0].mean_runtime_s == pytest.approx(2.0)


def test_a_failing_task_is_requeued_up_to_its_retries_then_failed(
    store: Store, clock: FakeClock
) -> None:
    job_id = store.jobs.create(job_spec(frames="1", retries=2), now=clock.now())
    worker = add_worker(store, "w1", clock)

    for failures in (1, 2):
        got = take(store, worker, clock)
        finish(store, got, AttemptStatus.FAILED, clock, exit_code=3)
        task = store.tasks.get(job_id, 0, 0)
        assert (task.status, task.failures, task.attempts) == (
            TaskStatus.QUEUED,
            failures,
            failures,
        )
        assert store.jobs.get(job_id).status is JobStatus.QUEUED
        assert_counters_match_rows(store)

    got = take(store, worker, clock)
    finish(store, got, AttemptStatus.TIMED_OUT, clock)
    task = store.tasks.get(job_id, 0, 0)
    assert (task.status, task.failures, task.attempts) == (TaskStatus.FAILED, 3, 3)
    assert store.jobs.get(job_id).status is JobStatus.FAILED
    assert claim(store, worker, clock) is None
    assert [a.status for a in store.attempts.of_task(job_id, 0, 0)] == [
        AttemptStatus.FAILED,
        AttemptStatus.FAILED,
        AttemptStatus.TIMED_OUT,
    ]
    assert_counters_match_rows(store)


def test_a_worker_heard_from_meanwhile_is_kept_past_its_lease(
    store: Store, clock: FakeClock
) -> None:
    """`keep`: workers heard from whose lease could not be written (an outage) stay online."""
    heard = add_worker(store, "heard", clock)
    silent = add_worker(store, "silent", clock)
    clock.advance(LEASE_S + 1)
    assert store.workers.expire(now=clock.now(), lease_s=LEASE_S, keep=[heard, 999]) == [silent]
    assert store.workers.get(heard).status is WorkerStatus.ONLINE
    assert store.workers.get(silent).status is WorkerStatus.OFFLINE


def test_an_expired_worker_loses_its_attempts_without_a_failure(
    store: Store, clock: FakeClock
) -> None:
    job_id = store.jobs.create(job_spec(frames="1-2", retries=0), now=clock.now())
    silent = add_worker(store, "silent", clock)
    clock.advance(5)
    alive = add_worker(store, "alive", clock)
    got = take(store, silent, clock)

    clock.advance(LEASE_S - 4)  # alive was seen 11 s ago, silent 16 s ago
    assert store.workers.expire(now=clock.now(), lease_s=LEASE_S) == [silent]

    assert store.workers.get(silent).status is WorkerStatus.OFFLINE
    assert store.workers.get(alive).status is WorkerStatus.ONLINE
    task = store.tasks.get(job_id, 0, got.task_index)
    assert (task.status, task.failures) == (TaskStatus.QUEUED, 0)
    (attempt,) = store.attempts.of_task(job_id, 0, got.task_index)
    assert attempt.status is AttemptStatus.LOST
    assert attempt.ended_at == clock.now()
    assert_counters_match_rows(store)
    # Already offline: a second sweep changes nothing.
    assert store.workers.expire(now=clock.now(), lease_s=LEASE_S) == []

    again = take(store, alive, clock)
    assert again.task_index == got.task_index
    assert store.tasks.get(job_id, 0, got.task_index).attempts == 2
    # Even with retries=0, a lost attempt never failed the task.
    finish(store, again, AttemptStatus.SUCCEEDED, clock)
    assert store.tasks.get(job_id, 0, got.task_index).status is TaskStatus.SUCCEEDED

    # A worker touched (polling) within its lease stays online however long it lives...
    for _ in range(3):
        clock.advance(LEASE_S - 1)
        store.workers.touch_many({alive: clock.now()})
        assert store.workers.expire(now=clock.now(), lease_s=LEASE_S) == []
    # ...and a silent one that polls again is back online.
    store.workers.touch_many({silent: clock.now()})
    assert store.workers.get(silent).status is WorkerStatus.ONLINE


def test_a_late_success_of_a_lost_attempt_stands_while_nobody_took_its_task(
    store: Store, clock: FakeClock
) -> None:
    job_id = store.jobs.create(job_spec(frames="1-2"), now=clock.now())
    worker = add_worker(store, "w1", clock)
    first, second = take(store, worker, clock), take(store, worker, clock)
    clock.advance(LEASE_S + 1)
    store.workers.expire(now=clock.now(), lease_s=LEASE_S)
    other = add_worker(store, "w2", clock)
    again = take(store, other, clock)  # the second's task taken by another worker
    assert again.task_index in (first.task_index, second.task_index)
    late, taken = (second, first) if again.task_index == first.task_index else (first, second)

    finish(store, late, AttemptStatus.SUCCEEDED, clock)
    with pytest.raises(StaleAttempt):
        finish(store, taken, AttemptStatus.SUCCEEDED, clock)

    assert store.tasks.get(job_id, 0, late.task_index).status is TaskStatus.SUCCEEDED
    assert store.tasks.get(job_id, 0, taken.task_index).status is TaskStatus.RUNNING
    assert_counters_match_rows(store)


def test_a_re_registered_worker_loses_what_it_ran(store: Store, clock: FakeClock) -> None:
    job_id = store.jobs.create(job_spec(frames="1"), now=clock.now())
    worker = add_worker(store, "w1", clock)
    got = take(store, worker, clock)

    assert add_worker(store, "w1", clock) == worker

    assert store.tasks.get(job_id, 0, 0).status is TaskStatus.QUEUED
    assert store.attempts.of_task(job_id, 0, 0)[0].status is AttemptStatus.LOST
    with pytest.raises(StaleAttempt):
        finish(store, got, AttemptStatus.FAILED, clock)
    assert_counters_match_rows(store)


def test_attempts_a_worker_no_longer_reports_are_lost(store: Store, clock: FakeClock) -> None:
    job_id = store.jobs.create(job_spec(frames="1-3"), now=clock.now())
    worker = add_worker(store, "w1", clock)
    kept, dropped = take(store, worker, clock), take(store, worker, clock)
    clock.advance(1)
    fresh = take(store, worker, clock)

    lost = store.workers.lose_unreported(
        worker, [kept.attempt_id], before=clock.now(), now=clock.now()
    )

    assert lost == 1  # `fresh` was handed out at this very moment, so it may be in flight
    assert store.tasks.get(job_id, 0, dropped.task_index).status is TaskStatus.QUEUED
    assert store.tasks.get(job_id, 0, kept.task_index).status is TaskStatus.RUNNING
    assert store.tasks.get(job_id, 0, fresh.task_index).status is TaskStatus.RUNNING
    assert_counters_match_rows(store)


# -- fencing ------------------------------------------------------------------------------------


def test_a_wrong_token_or_a_lost_attempt_is_stale(store: Store, clock: FakeClock) -> None:
    job_id = store.jobs.create(job_spec(frames="1"), now=clock.now())
    worker = add_worker(store, "w1", clock)
    got = take(store, worker, clock)

    bad = FinishReport(got.attempt_id, "0" * 32, AttemptStatus.SUCCEEDED)
    with pytest.raises(StaleAttempt) as info:
        store.attempts.finish(bad, now=clock.now())
    assert info.value.field == "token"
    with pytest.raises(StaleAttempt):
        store.attempts.record_output(got.attempt_id, "nope", lines=[("stdout", "x")], progress=None)
    with pytest.raises(StaleAttempt):
        store.attempts.finish(
            FinishReport(got.attempt_id + 1000, got.token, AttemptStatus.SUCCEEDED),
            now=clock.now(),
        )
    assert store.tasks.get(job_id, 0, 0).status is TaskStatus.RUNNING  # nothing changed

    # Once the attempt is lost, its own token is stale too (but for a late success, which
    # stands while nobody took the task: see the next test).
    clock.advance(LEASE_S + 1)
    store.workers.expire(now=clock.now(), lease_s=LEASE_S)

    with pytest.raises(StaleAttempt):
        finish(store, got, AttemptStatus.FAILED, clock)
    with pytest.raises(StaleAttempt):
        store.attempts.record_output(
            got.attempt_id, got.token, lines=[("stdout", "late")], progress=50
        )

    assert store.tasks.get(job_id, 0, 0).status is TaskStatus.QUEUED
    assert store.attempts.task_log(job_id, 0, 0) == []
    assert_counters_match_rows(store)


def test_a_repeated_identical_finish_is_accepted_once_more_without_double_counting(
    store: Store, clock: FakeClock
) -> None:
    job_id = store.jobs.create(job_spec(frames="1-2", retries=3), now=clock.now())
    worker = add_worker(store, "w1", clock)
    ok, bad = take(store, worker, clock), take(store, worker, clock)

    assert finish(store, ok, AttemptStatus.SUCCEEDED, clock, duration_s=4.0) == job_id
    assert finish(store, ok, AttemptStatus.SUCCEEDED, clock, duration_s=4.0) is None
    assert finish(store, bad, AttemptStatus.FAILED, clock, exit_code=1) == job_id
    assert finish(store, bad, AttemptStatus.FAILED, clock, exit_code=1) is None

    job = store.jobs.get(job_id)
    assert job.counts == Counts(total=2, succeeded=1, queued=1)
    assert job.blocks[0].mean_runtime_s == pytest.approx(4.0)
    assert store.tasks.get(job_id, 0, bad.task_index).failures == 1
    # A different report about an ended attempt is not a repeat: it is stale.
    with pytest.raises(StaleAttempt):
        finish(store, ok, AttemptStatus.FAILED, clock)
    assert_counters_match_rows(store)


def test_output_is_kept_in_order_with_progress(store: Store, clock: FakeClock) -> None:
    job_id = store.jobs.create(job_spec(frames="1"), now=clock.now())
    worker = add_worker(store, "w1", clock)
    got = take(store, worker, clock)

    store.attempts.record_output(
        got.attempt_id, got.token, lines=[("stdout", "a"), ("stderr", "b")], progress=10
    )
    store.attempts.record_output(got.attempt_id, got.token, lines=[("stdout", "c")], progress=60)

    assert store.tasks.get(job_id, 0, 0).progress == pytest.approx(60)
    lines = store.attempts.task_log(job_id, 0, 0)
    assert [(s, t) for _, _, s, t in lines] == [("stdout", "a"), ("stderr", "b"), ("stdout", "c")]
    assert {a for _, a, _, _ in lines} == {got.attempt_id}
    assert [t for _, _, _, t in store.attempts.task_log(job_id, 0, 0, after_id=lines[0][0])] == [
        "b",
        "c",
    ]


# -- people's edits: requeue, retry, skip -------------------------------------------------------


def test_requeue_tasks_forgives_failures_and_redispatches(store: Store, clock: FakeClock) -> None:
    job_id = store.jobs.create(job_spec(frames="1-3", retries=0), now=clock.now())
    worker = add_worker(store, "w1", clock)
    a, b, c = claim_all(store, worker, clock)
    finish(store, a, AttemptStatus.FAILED, clock, exit_code=1)
    finish(store, b, AttemptStatus.SUCCEEDED, clock)
    finish(store, c, AttemptStatus.FAILED, clock, exit_code=1)
    store.jobs.mark_finished(job_id, clock.now())
    assert store.jobs.get(job_id).status is JobStatus.FAILED

    moved = store.jobs.requeue_tasks(job_id, [TaskStatus.FAILED], now=clock.now())

    assert moved == 2
    job = store.jobs.get(job_id)
    assert job.status is JobStatus.QUEUED
    assert job.finished_at is None
    assert job.counts == Counts(total=3, queued=2, succeeded=1)
    assert store.tasks.get(job_id, 0, a.task_index).failures == 0
    assert_counters_match_rows(store)
    again = claim_all(store, worker, clock)
    assert sorted(x.task_index for x in again) == [a.task_index, c.task_index]
    for x in again:
        finish(store, x, AttemptStatus.SUCCEEDED, clock)
    assert store.jobs.get(job_id).status is JobStatus.SUCCEEDED
    assert_counters_match_rows(store)


def test_skipping_a_waiting_task_makes_the_cursor_pass_it(store: Store, clock: FakeClock) -> None:
    job_id = store.jobs.create(job_spec(frames="1-3"), now=clock.now())
    worker = add_worker(store, "w1", clock)

    old = store.tasks.set_status(job_id, 0, 1, TaskStatus.SKIPPED, now=clock.now())

    assert old is TaskStatus.WAITING
    assert task_row_count(store) == 1
    assert_counters_match_rows(store)
    claimed = claim_all(store, worker, clock)
    assert [x.task_index for x in claimed] == [0, 2]
    for x in claimed:
        finish(store, x, AttemptStatus.SUCCEEDED, clock)
    job = store.jobs.get(job_id)
    assert job.counts == Counts(total=3, succeeded=2, skipped=1)
    assert job.status is JobStatus.SUCCEEDED


def test_retry_and_skip_of_single_tasks(store: Store, clock: FakeClock) -> None:
    job_id = store.jobs.create(job_spec(frames="1-2"), now=clock.now())
    worker = add_worker(store, "w1", clock)
    store.tasks.set_status(job_id, 0, 1, TaskStatus.SKIPPED, now=clock.now())
    (done,) = claim_all(store, worker, clock)
    finish(store, done, AttemptStatus.SUCCEEDED, clock)
    assert store.jobs.get(job_id).status is JobStatus.SUCCEEDED

    assert store.tasks.set_status(job_id, 0, 0, TaskStatus.QUEUED, now=clock.now()) is (
        TaskStatus.SUCCEEDED
    )
    assert store.tasks.set_status(job_id, 0, 1, TaskStatus.QUEUED, now=clock.now()) is (
        TaskStatus.SKIPPED
    )

    assert store.jobs.get(job_id).counts == Counts(total=2, queued=2)
    assert_counters_match_rows(store)
    claimed = claim_all(store, worker, clock)
    assert sorted(x.task_index for x in claimed) == [0, 1]

    # A running task must be stopped first; an unknown one does not exist.
    got = claimed[0]
    with pytest.raises(Conflict):
        store.tasks.set_status(job_id, 0, got.task_index, TaskStatus.SKIPPED, now=clock.now())
    with pytest.raises(NotFound):
        store.tasks.set_status(job_id, 0, 2, TaskStatus.SKIPPED, now=clock.now())
    with pytest.raises(NotFound):
        store.tasks.set_status(job_id, 1, 0, TaskStatus.SKIPPED, now=clock.now())
    with pytest.raises(NotFound):
        store.tasks.get(job_id, 0, 2)
    assert_counters_match_rows(store)


def test_retrying_a_waiting_task_keeps_it_dispatchable(store: Store, clock: FakeClock) -> None:
    job_id = store.jobs.create(job_spec(frames="1-3"), now=clock.now())
    worker = add_worker(store, "w1", clock)

    store.tasks.set_status(job_id, 0, 1, TaskStatus.QUEUED, now=clock.now())

    assert_counters_match_rows(store)
    assert sorted(x.task_index for x in claim_all(store, worker, clock)) == [0, 1, 2]


# -- pause and cancel reach running attempts ----------------------------------------------------


def _to_stop(store: Store, worker: int) -> list[int]:
    """The worker's running attempts asked to stop, as its next poll or report is told."""
    return [h.id for h in store.snapshot.worker_held(worker) if h.cancel_reason is not None]


def test_pause_stops_running_attempts_and_requeues_them(store: Store, clock: FakeClock) -> None:
    job_id = store.jobs.create(job_spec(frames="1-2", retries=0), now=clock.now())
    worker = add_worker(store, "w1", clock)
    a, b = claim_all(store, worker, clock)

    store.jobs.set_flags(job_id, paused=True)
    assert store.jobs.request_stop_running(job_id, "paused") == 2
    assert store.jobs.request_stop_running(job_id, "paused") == 0  # already asked

    assert sorted(_to_stop(store, worker)) == sorted([a.attempt_id, b.attempt_id])
    assert store.jobs.get(job_id).status is JobStatus.RUNNING  # until the worker has stopped them
    # A killed process may be reported as canceled or failed: neither counts against the task.
    finish(store, a, AttemptStatus.CANCELED, clock)
    finish(store, b, AttemptStatus.FAILED, clock, exit_code=-15)

    job = store.jobs.get(job_id)
    assert job.status is JobStatus.PAUSED
    assert job.counts == Counts(total=2, queued=2)
    assert store.tasks.get(job_id, 0, a.task_index).failures == 0
    assert store.tasks.get(job_id, 0, b.task_index).failures == 0
    assert _to_stop(store, worker) == []
    assert claim(store, worker, clock) is None
    assert_counters_match_rows(store)

    store.jobs.set_flags(job_id, paused=False)
    assert sorted(x.task_index for x in claim_all(store, worker, clock)) == [0, 1]


def test_cancel_ends_running_attempts_as_canceled(store: Store, clock: FakeClock) -> None:
    job_id = store.jobs.create(job_spec(frames="1-3"), now=clock.now())
    worker, silent = add_worker(store, "w1", clock), add_worker(store, "silent", clock)
    got = take(store, worker, clock)
    vanished = take(store, silent, clock)

    store.jobs.set_flags(job_id, canceled=True)
    store.jobs.request_stop_running(job_id, "canceled")
    assert store.jobs.get(job_id).status is JobStatus.CANCELED
    assert _to_stop(store, worker) == [got.attempt_id]
    finish(store, got, AttemptStatus.CANCELED, clock)
    # A task lost from a canceled job is canceled, not requeued.
    clock.advance(LEASE_S + 1)
    store.workers.touch_many({worker: clock.now()})
    assert store.workers.expire(now=clock.now(), lease_s=LEASE_S) == [silent]

    job = store.jobs.get(job_id)
    assert job.status is JobStatus.CANCELED
    assert job.counts == Counts(total=3, canceled=2)
    assert store.attempts.of_task(job_id, 0, got.task_index)[0].status is AttemptStatus.CANCELED
    assert store.tasks.get(job_id, 0, vanished.task_index).status is TaskStatus.CANCELED
    assert claim(store, worker, clock) is None
    assert_counters_match_rows(store)


# -- derived job status -------------------------------------------------------------------------


def test_job_status_follows_its_tasks(store: Store, clock: FakeClock) -> None:
    job_id = store.jobs.create(job_spec(frames="1-2", retries=0), now=clock.now())
    worker = add_worker(store, "w1", clock)
    assert store.jobs.get(job_id).status is JobStatus.QUEUED

    a = take(store, worker, clock)
    assert store.jobs.get(job_id).status is JobStatus.RUNNING
    finish(store, a, AttemptStatus.FAILED, clock, exit_code=1)
    # One task failed but another may still run: not failed yet.
    assert store.jobs.get(job_id).status is JobStatus.QUEUED
    b = take(store, worker, clock)
    finish(store, b, AttemptStatus.SUCCEEDED, clock)
    assert store.jobs.get(job_id).status is JobStatus.FAILED

    store.tasks.set_status(job_id, 0, a.task_index, TaskStatus.SKIPPED, now=clock.now())
    assert store.jobs.get(job_id).status is JobStatus.SUCCEEDED


def test_a_job_waits_on_its_after_jobs(store: Store, clock: FakeClock) -> None:
    with pytest.raises(NotFound) as info:
        store.jobs.create(job_spec(after=(424242,)), now=clock.now())
    assert info.value.field == "after"
    assert store.jobs.page() == []
    first = store.jobs.create(job_spec("first", frames="1"), now=clock.now())
    second = store.jobs.create(job_spec("second", frames="1", after=(first,)), now=clock.now())
    worker = add_worker(store, "w1", clock)

    job = store.jobs.get(second)
    assert job.status is JobStatus.WAITING
    assert job.status_reason == f"waiting on job {first}"
    assert second in store.snapshot.read(now=clock.now(), errors_since=0).job_waiting

    got = take(store, worker, clock)
    assert got.job_id == first
    assert claim(store, worker, clock) is None  # the second job waits
    finish(store, got, AttemptStatus.SUCCEEDED, clock)

    job = store.jobs.get(second)
    assert (job.status, job.status_reason) == (JobStatus.QUEUED, None)
    got = take(store, worker, clock)
    assert got.job_id == second


def test_a_job_after_a_failed_or_canceled_job_says_why_it_waits(
    store: Store, clock: FakeClock
) -> None:
    failing = store.jobs.create(job_spec("failing", frames="1", retries=0), now=clock.now())
    canceled = store.jobs.create(job_spec("canceled", frames="1"), now=clock.now())
    after_failed = store.jobs.create(job_spec("a", frames="1", after=(failing,)), now=clock.now())
    after_canceled = store.jobs.create(
        job_spec("b", frames="1", after=(canceled,)), now=clock.now()
    )
    worker = add_worker(store, "w1", clock)
    store.jobs.set_flags(canceled, canceled=True)
    finish(store, take(store, worker, clock), AttemptStatus.FAILED, clock, exit_code=1)

    for job_id, dep, word in [
        (after_failed, failing, "failed"),
        (after_canceled, canceled, "canceled"),
    ]:
        job = store.jobs.get(job_id)
        assert job.status is JobStatus.WAITING
        assert job.status_reason == f"waiting on job {dep}, which {word}"
    assert claim(store, worker, clock) is None


def staged_spec(*, frames: str = "1-4") -> JobSpec:
    """render (frames, retries 0); comp waits on it frame by frame; mux waits on comp whole;
    notes waits on nothing."""
    return JobSpec(
        name="staged",
        owner="alice",
        priority=50,
        kind="command",
        blocks=(
            block("render", frames, 1, retries=0),
            block("comp", frames, 1, after_frames=(0,)),
            block("mux", "1-2", 1, after=(1,)),
            block("notes", "1", 1),
        ),
        payload={"commands": [["echo", "{start}"]]},
    )


def statuses(store: Store, job_id: int, block_index: int) -> list[TaskStatus]:
    return [t.status for t in store.tasks.page(job_id, block_index=block_index)[1]]


def run_all(store: Store, worker: int, clock: FakeClock, *, failing: set[tuple[int, int]]) -> None:
    """Claim and finish what can run: (block, task) in `failing` fails, the rest succeeds; then
    settle the job as the controller does after finishes."""
    while (got := claim(store, worker, clock)) is not None:
        failed = (got.block_index, got.task_index) in failing
        finish(store, got, AttemptStatus.FAILED if failed else AttemptStatus.SUCCEEDED, clock)
        store.tasks.mark_never_run(got.job_id, now=clock.now())


def test_tasks_waiting_on_a_failed_task_never_run_and_the_job_fails(
    store: Store, clock: FakeClock
) -> None:
    """GIVEN render frame 2 fails for good, THEN comp frame 2 (frame by frame) and all of mux
    (whole, on comp) are marked never run, the rest runs, and the job ends failed saying why."""
    job_id = store.jobs.create(staged_spec(), now=clock.now())
    worker = add_worker(store, "w1", clock)

    run_all(store, worker, clock, failing={(0, 1)})

    S = TaskStatus
    assert statuses(store, job_id, 0) == [S.SUCCEEDED, S.FAILED, S.SUCCEEDED, S.SUCCEEDED]
    assert statuses(store, job_id, 1) == [S.SUCCEEDED, S.CANCELED, S.SUCCEEDED, S.SUCCEEDED]
    assert statuses(store, job_id, 2) == [S.CANCELED, S.CANCELED]
    assert statuses(store, job_id, 3) == [S.SUCCEEDED]
    job = store.jobs.get(job_id)
    assert job.status is JobStatus.FAILED
    assert job.status_reason == (
        "1 task of block render failed; 1 task of block comp never ran; "
        "2 tasks of block mux never ran"
    )
    assert job.counts == Counts(total=11, succeeded=7, failed=1, canceled=3)
    assert not store.snapshot.job_standing(job_id)[1]
    assert store.tasks.mark_never_run(job_id, now=clock.now()) == 0  # settled: nothing moves
    assert all(b.runnable == 0 for b in store.snapshot.read(now=0, errors_since=0).blocks)
    assert_counters_match_rows(store)


def test_a_retry_of_the_failed_task_lets_what_waited_on_it_run(
    store: Store, clock: FakeClock
) -> None:
    """GIVEN the job failed as above, WHEN render frame 2 is retried, THEN comp frame 2 and mux
    wait again (no row, none dispatched before render frame 2 is done), and the job succeeds."""
    job_id = store.jobs.create(staged_spec(), now=clock.now())
    worker = add_worker(store, "w1", clock)
    run_all(store, worker, clock, failing={(0, 1)})
    store.jobs.mark_finished(job_id, clock.now())

    store.tasks.set_status(job_id, 0, 1, TaskStatus.QUEUED, now=clock.now())
    assert store.tasks.mark_never_run(job_id, now=clock.now(), restore=True) == 3

    S = TaskStatus
    assert statuses(store, job_id, 1) == [S.SUCCEEDED, S.WAITING, S.SUCCEEDED, S.SUCCEEDED]
    assert statuses(store, job_id, 2) == [S.WAITING, S.WAITING]
    job = store.jobs.get(job_id)
    assert (job.status, job.finished_at) == (JobStatus.QUEUED, None)
    assert_counters_match_rows(store)
    first = take(store, worker, clock)
    assert (first.block_index, first.task_index) == (0, 1)
    (comp,) = [c for c in support.candidates(store) if c.block.index == 1]
    outcome = store.dispatch.claim(comp, worker_id=worker, now=clock.now())
    assert outcome.assignment is None  # comp frame 2 waits for render frame 2
    finish(store, first, AttemptStatus.SUCCEEDED, clock)
    run_all(store, worker, clock, failing=set())
    assert store.jobs.get(job_id).status is JobStatus.SUCCEEDED
    assert_counters_match_rows(store)


def test_a_job_retry_or_a_skip_brings_back_what_never_ran(store: Store, clock: FakeClock) -> None:
    job_id = store.jobs.create(staged_spec(), now=clock.now())
    worker = add_worker(store, "w1", clock)
    run_all(store, worker, clock, failing={(0, 1)})

    store.jobs.requeue_tasks(job_id, (TaskStatus.FAILED, TaskStatus.CANCELED), now=clock.now())
    assert store.jobs.get(job_id).counts == Counts(total=11, succeeded=7, queued=1)
    assert statuses(store, job_id, 2) == [TaskStatus.WAITING, TaskStatus.WAITING]
    run_all(store, worker, clock, failing={(0, 1)})  # fails again: marked again
    assert store.jobs.get(job_id).counts == Counts(total=11, succeeded=7, failed=1, canceled=3)

    store.tasks.set_status(job_id, 0, 1, TaskStatus.SKIPPED, now=clock.now())
    store.tasks.mark_never_run(job_id, now=clock.now(), restore=True)
    run_all(store, worker, clock, failing=set())
    job = store.jobs.get(job_id)
    assert (job.status, job.counts) == (
        JobStatus.SUCCEEDED,
        Counts(total=11, succeeded=10, skipped=1),
    )
    assert_counters_match_rows(store)


def test_a_block_waiting_whole_on_a_failure_is_marked_at_once(
    store: Store, clock: FakeClock
) -> None:
    """Marking reads no task rows while nothing failed; a block waiting whole on a failure has
    its queued tasks marked too (requeued after they ran once), and one that already ran stays
    as it is. A block that is done despite its upstream failure holds nothing back."""
    spec = staged_spec(frames="1")
    spec = replace(spec, blocks=(*spec.blocks[:3], block("direct", "1-2", 1, after=(0,))))
    job_id = store.jobs.create(spec, now=clock.now())
    worker = add_worker(store, "w1", clock)
    assert store.tasks.mark_never_run(job_id, now=clock.now()) == 0
    run_all(store, worker, clock, failing=set())
    assert store.jobs.get(job_id).status is JobStatus.SUCCEEDED
    # Run render again, and a task of each waiting block is requeued meanwhile: render fails.
    store.tasks.set_status(job_id, 0, 0, TaskStatus.QUEUED, now=clock.now())
    store.tasks.set_status(job_id, 2, 0, TaskStatus.QUEUED, now=clock.now())
    store.tasks.set_status(job_id, 3, 0, TaskStatus.QUEUED, now=clock.now())
    got = take(store, worker, clock)
    assert (got.block_index, got.task_index) == (0, 0)
    finish(store, got, AttemptStatus.FAILED, clock, exit_code=1)

    assert store.tasks.mark_never_run(job_id, now=clock.now()) == 1
    assert statuses(store, job_id, 3) == [TaskStatus.CANCELED, TaskStatus.SUCCEEDED]
    # comp frame 1 ran before render failed: comp is done, and mux may run again.
    assert statuses(store, job_id, 1) == [TaskStatus.SUCCEEDED]
    assert statuses(store, job_id, 2) == [TaskStatus.QUEUED, TaskStatus.SUCCEEDED]
    assert store.jobs.get(job_id).status is JobStatus.QUEUED
    run_all(store, worker, clock, failing=set())
    job = store.jobs.get(job_id)
    assert (job.status, job.counts.canceled, job.counts.failed) == (JobStatus.FAILED, 1, 1)
    assert_counters_match_rows(store)


def test_a_canceled_job_is_left_alone(store: Store, clock: FakeClock) -> None:
    job_id = store.jobs.create(staged_spec(), now=clock.now())
    worker = add_worker(store, "w1", clock)
    got = take(store, worker, clock)
    finish(store, got, AttemptStatus.FAILED, clock, exit_code=1)
    store.jobs.set_flags(job_id, canceled=True)
    assert store.tasks.mark_never_run(job_id, now=clock.now()) == 0
    assert statuses(store, job_id, 2) == [TaskStatus.WAITING, TaskStatus.WAITING]


def test_a_job_waiting_on_a_deleted_job_fails_saying_so(store: Store, clock: FakeClock) -> None:
    first = store.jobs.create(job_spec("first", frames="1"), now=clock.now())
    second = store.jobs.create(job_spec("second", frames="1", after=(first,)), now=clock.now())
    third = store.jobs.create(job_spec("third", frames="1", after=(second,)), now=clock.now())
    worker = add_worker(store, "w1", clock)
    assert store.jobs.waiting_on(first) == [second]

    store.jobs.delete(first)

    job = store.jobs.get(second)
    assert (job.status, job.status_reason) == (
        JobStatus.FAILED,
        f"job {first}, which this job waits on, was deleted",
    )
    after = store.jobs.get(third)
    assert (after.status, after.status_reason) == (
        JobStatus.WAITING,
        f"waiting on job {second}, which failed",
    )
    waiting = store.snapshot.read(now=clock.now(), errors_since=0).job_waiting
    assert waiting[second] == f"job {first}, which this job waits on, was deleted"
    assert claim(store, worker, clock) is None  # neither runs
    # A new job never takes the deleted job's id.
    assert store.jobs.create(job_spec("new", frames="1"), now=clock.now()) > third


def test_deleting_a_job_removes_its_rows(store: Store, clock: FakeClock) -> None:
    job_id = store.jobs.create(job_spec(frames="1-2"), now=clock.now())
    worker = add_worker(store, "w1", clock)
    got = take(store, worker, clock)
    store.attempts.record_output(got.attempt_id, got.token, lines=[("stdout", "x")], progress=None)

    store.jobs.delete(job_id)

    assert task_row_count(store) == 0
    with store.engine.connect() as conn:
        assert conn.scalar(sa.select(sa.func.count()).select_from(attempts)) == 0
    with pytest.raises(NotFound):
        store.jobs.get(job_id)
    with pytest.raises(NotFound):
        store.jobs.delete(job_id)


# -- one transaction for many calls (a poll) ----------------------------------------------------


def test_calls_inside_a_transaction_commit_together(store: Store, clock: FakeClock) -> None:
    job_id = store.jobs.create(job_spec(frames="1-3"), now=clock.now())
    worker_id = add_worker(store, "w1", clock)
    first = take(store, worker_id, clock)
    with store.transaction():
        store.attempts.finish_many([finish_report(first)], now=clock.now())
        second = take(store, worker_id, clock)
        assert [h.id for h in store.snapshot.worker_held(worker_id)] == [
            second.attempt_id
        ]  # own writes
    assert store.jobs.get(job_id).counts.succeeded == 1
    assert [h.id for h in store.snapshot.worker_held(worker_id)] == [second.attempt_id]


def test_a_failure_inside_a_transaction_writes_nothing(store: Store, clock: FakeClock) -> None:
    job_id = store.jobs.create(job_spec(frames="1-3"), now=clock.now())
    worker_id = add_worker(store, "w1", clock)
    first = take(store, worker_id, clock)

    def poll_failing_midway() -> None:
        with store.transaction():
            store.attempts.finish_many([finish_report(first)], now=clock.now())
            take(store, worker_id, clock)
            raise RuntimeError("the poll failed after its finishes and its claim")

    with pytest.raises(RuntimeError):
        poll_failing_midway()
    counts = store.jobs.get(job_id).counts
    assert (counts.succeeded, counts.running, counts.waiting) == (0, 1, 2)
    assert [h.id for h in store.snapshot.worker_held(worker_id)] == [first.attempt_id]
    # Nothing is left half-done: the same finish is accepted afterwards.
    assert store.attempts.finish_many([finish_report(first)], now=clock.now()) == [job_id]


def test_a_transaction_belongs_to_its_asyncio_task(store: Store, clock: FakeClock) -> None:
    """Requests served on one event loop (one thread) never share a transaction: a task's
    store call made while another task's transaction is open commits on its own."""

    worker_id = add_worker(store, "w1", clock)

    async def main() -> None:
        opened, written = asyncio.Event(), asyncio.Event()

        async def poll_that_fails() -> None:
            with store.transaction():
                opened.set()
                await written.wait()
                raise RuntimeError("rolled back")

        async def other_request() -> None:
            await opened.wait()
            store.scheduling.set_nimby(
                worker_id, Nimby.PAUSED
            )  # a write that joins an open transaction
            written.set()

        results = await asyncio.gather(poll_that_fails(), other_request(), return_exceptions=True)
        assert isinstance(results[0], RuntimeError)

    asyncio.run(main())
    assert store.workers.get(worker_id).nimby == "paused"


def finish_report(a: Assignment) -> FinishReport:
    return FinishReport(
        attempt_id=a.attempt_id,
        token=a.token,
        status=AttemptStatus.SUCCEEDED,
        exit_code=0,
        peak_rss_bytes=None,
        duration_s=0.01,
        message=None,
    )
