"""Adaptive chunks in the store, on SQLite and PostgreSQL: finishes re-plan the chunks nobody holds,
every task handed out keeps its index and items, and the counters and task pages follow."""

from __future__ import annotations

import random
import threading
from collections import Counter

import sqlalchemy as sa

from tests.store import support
from tests.store.support import add_worker, block
from thresher.core.chunk_plan import ADAPTIVE_CHUNK, ChunkPlan, ItemGrid
from thresher.core.model import Assignment, Counts, JobSpec
from thresher.core.states import AttemptStatus, JobStatus, TaskStatus
from thresher.store.store import FinishReport, Store
from thresher.store.tables import blocks, tasks
from thresher.testing import FakeClock

ITEMS = 60


def adaptive_job(size: int = 2, *, target_s: float = 10.0, retries: int = 1) -> JobSpec:
    plan = ChunkPlan.start(ItemGrid.of_lengths(1, [ITEMS]), size, target_s=target_s)
    spec_block = block(
        name="render",
        frames=f"0-{ITEMS - 1}",
        chunk=ADAPTIVE_CHUNK,
        retries=retries,
        chunking=plan.to_json(),
    )
    return JobSpec(
        name="adaptive", owner="alice", priority=50, kind="openjd", blocks=(spec_block,), payload={}
    )


def claim(store: Store, worker_id: int, clock: FakeClock) -> Assignment | None:
    return support.claim(store, worker_id, now=clock.now())


def claim_all(store: Store, worker_id: int, clock: FakeClock) -> list[Assignment]:
    out = []
    while (got := claim(store, worker_id, clock)) is not None:
        out.append(got)
    return out


def succeed(store: Store, a: Assignment, clock: FakeClock, seconds_per_item: float) -> None:
    report = FinishReport(
        a.attempt_id,
        a.token,
        AttemptStatus.SUCCEEDED,
        exit_code=0,
        duration_s=seconds_per_item * len(a.frames),
    )
    store.attempts.finish(report, now=clock.now())


def listed_frames(store: Store, job_id: int) -> dict[int, tuple[int, ...]]:
    total, page = store.tasks.page(job_id, limit=1000)
    assert total == len(page) == store.jobs.get(job_id).counts.total
    return {t.index: t.frames for t in page}


def assert_counters_match_rows(store: Store) -> None:
    with store.engine.connect() as conn:
        rows = Counter(
            {
                (b, s): n
                for b, s, n in conn.execute(
                    sa.select(tasks.c.block_id, tasks.c.status, sa.func.count()).group_by(
                        tasks.c.block_id, tasks.c.status
                    )
                ).all()
            }
        )
        for b in conn.execute(sa.select(blocks)).all():
            for status in ("queued", "running", "succeeded", "failed", "skipped", "canceled"):
                assert getattr(b, f"n_{status}") == rows[(b.id, status)], (b.id, status)
            assert b.cursor <= b.task_count


def each_item_once(frames: list[tuple[int, ...]]) -> bool:
    return Counter(i for f in frames for i in f) == Counter(range(ITEMS))


def test_finished_chunks_resize_the_chunks_not_handed_out(store: Store, clock: FakeClock) -> None:
    """GIVEN an adaptive block of 60 items in chunks of 2, three tasks handed out
    WHEN the first finishes at 0.1 s an item (target 10 s: 100 an item, damped to 26)
    THEN the tasks not handed out become chunks of 26, the held ones keep their items, and the
    counts and pages follow; every item runs once."""
    job_id = store.jobs.create(adaptive_job(), now=clock.now())
    worker = add_worker(store, "w1", clock)
    assert store.jobs.get(job_id).counts == Counts(total=30)
    first = [claim(store, worker, clock) for _ in range(3)]
    assert [a.frames for a in first if a] == [(0, 1), (2, 3), (4, 5)]
    held = {t: f for t, f in listed_frames(store, job_id).items() if t < 3}

    assert first[0] is not None
    succeed(store, first[0], clock, 0.1)

    job = store.jobs.get(job_id)
    assert job.counts == Counts(total=6, running=2, succeeded=1)
    frames = listed_frames(store, job_id)
    assert {t: frames[t] for t in held} == held
    assert [len(frames[t]) for t in range(3, 6)] == [26, 26, 2]
    rest = claim_all(store, worker, clock)
    assert [len(a.frames) for a in rest] == [26, 26, 2]
    for a in [*first[1:], *rest]:
        assert a is not None
        succeed(store, a, clock, 0.1)

    job = store.jobs.get(job_id)
    assert job.status is JobStatus.SUCCEEDED
    assert job.counts == Counts(total=6, succeeded=6)
    assert each_item_once([a.frames for a in [*first, *rest] if a])
    assert each_item_once(list(listed_frames(store, job_id).values()))
    assert_counters_match_rows(store)


def test_a_report_of_several_successes_re_plans_too(store: Store, clock: FakeClock) -> None:
    job_id = store.jobs.create(adaptive_job(), now=clock.now())
    worker = add_worker(store, "w1", clock)
    a, b = claim(store, worker, clock), claim(store, worker, clock)
    assert a is not None
    assert b is not None

    store.attempts.finish_many(
        [
            FinishReport(x.attempt_id, x.token, AttemptStatus.SUCCEEDED, duration_s=0.4)
            for x in (a, b)
        ],
        now=clock.now(),
    )

    # 4 items in 0.8 s: 50 a chunk, damped: 0.75 * 2 + 0.25 * 50 = 14.
    rest = claim_all(store, worker, clock)
    assert [len(x.frames) for x in rest] == [14, 14, 14, 14]
    assert store.jobs.get(job_id).counts.total == 6
    assert each_item_once([a.frames, b.frames, *(x.frames for x in rest)])


def test_tasks_touched_before_dispatch_keep_their_items(store: Store, clock: FakeClock) -> None:
    """A task skipped while waiting has a row: the new plan starts past it, and the tasks
    between the cursor and it keep their items too."""
    job_id = store.jobs.create(adaptive_job(), now=clock.now())
    worker = add_worker(store, "w1", clock)
    a = claim(store, worker, clock)
    assert a is not None
    store.tasks.set_status(job_id, 0, 4, TaskStatus.SKIPPED, now=clock.now())

    succeed(store, a, clock, 0.1)

    frames = listed_frames(store, job_id)
    assert [frames[t] for t in range(1, 5)] == [(2, 3), (4, 5), (6, 7), (8, 9)]
    rest = claim_all(store, worker, clock)
    assert [x.task_index for x in rest][:3] == [1, 2, 3]
    assert [len(x.frames) for x in rest[3:]] == [26, 24]
    for x in rest:
        succeed(store, x, clock, 0.1)
    job = store.jobs.get(job_id)
    assert job.status is JobStatus.SUCCEEDED
    assert job.counts == Counts(total=len(rest) + 2, succeeded=len(rest) + 1, skipped=1)
    assert each_item_once([a.frames, frames[4], *(x.frames for x in rest)])
    assert_counters_match_rows(store)


def test_a_claim_from_a_snapshot_before_a_re_plan_gets_the_new_items(
    store: Store, clock: FakeClock
) -> None:
    """The controller claims from a snapshot that may predate a re-plan: the assignment's items
    are the block's plan as it is after the claim, never the snapshot's."""
    job_id = store.jobs.create(adaptive_job(), now=clock.now())
    worker = add_worker(store, "w1", clock)
    a = claim(store, worker, clock)
    assert a is not None
    (stale,) = support.candidates(store)

    succeed(store, a, clock, 0.1)
    got = store.dispatch.claim(stale, worker_id=worker, now=clock.now()).assignment

    assert got is not None
    assert (got.task_index, got.frames) == (1, tuple(range(2, 28)))
    assert listed_frames(store, job_id)[1] == got.frames


def test_a_retried_task_runs_its_own_items_again(store: Store, clock: FakeClock) -> None:
    job_id = store.jobs.create(adaptive_job(), now=clock.now())
    worker = add_worker(store, "w1", clock)
    a, b = claim(store, worker, clock), claim(store, worker, clock)
    assert a is not None
    assert b is not None
    store.attempts.finish(
        FinishReport(a.attempt_id, a.token, AttemptStatus.FAILED, exit_code=1, duration_s=0.1),
        now=clock.now(),
    )
    succeed(store, b, clock, 0.1)  # re-plans past task 1

    rest = claim_all(store, worker, clock)

    assert (rest[0].task_index, rest[0].frames) == (0, (0, 1))
    assert [len(x.frames) for x in rest[1:]] == [26, 26, 4]
    assert each_item_once([b.frames, *(x.frames for x in rest)])
    assert store.jobs.get(job_id).counts.total == 5


def test_concurrent_claims_and_finishes_run_every_item_once(store: Store, clock: FakeClock) -> None:
    """Lanes claim and finish at once while their finishes keep re-planning the block."""
    job_id = store.jobs.create(adaptive_job(1, target_s=1.0), now=clock.now())
    workers = [add_worker(store, f"w{i}", clock) for i in range(4)]
    ran: list[tuple[int, tuple[int, ...]]] = []
    lock = threading.Lock()
    errors: list[BaseException] = []

    def lane(worker_id: int, seed: int) -> None:
        rnd = random.Random(seed)
        try:
            while (got := claim(store, worker_id, clock)) is not None:
                with lock:
                    ran.append((got.task_index, got.frames))
                succeed(store, got, clock, rnd.choice([0.01, 0.05, 0.2]))
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=lane, args=(w, i)) for i, w in enumerate(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    assert each_item_once([frames for _, frames in ran])
    assert sorted(index for index, _ in ran) == list(range(len(ran)))
    job = store.jobs.get(job_id)
    assert job.status is JobStatus.SUCCEEDED
    assert job.counts == Counts(total=len(ran), succeeded=len(ran))
    assert listed_frames(store, job_id) == dict(ran)
    assert_counters_match_rows(store)
