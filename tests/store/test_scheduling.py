"""Dispatch and scheduling settings in the store, on real SQLite and PostgreSQL: limits and caps
that hold under concurrent claims, lanes and capacity recorded on attempts, frame-by-frame
claims, the host-error log, NIMBY and lane settings, and the dispatch snapshot."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa

from tests.store import support
from thresher.core.errors import InvalidInput, NotFound
from thresher.core.lanes import Nimby
from thresher.core.model import BlockSpec, JobSpec
from thresher.core.states import AttemptStatus, TaskStatus
from thresher.store.store import ClaimCandidate, FinishReport, Refused, Store
from thresher.store.tables import limit_holds, tasks
from thresher.testing import FakeClock


def add_worker(store: Store, name: str, clock: FakeClock, *, hostname: str | None = None) -> int:
    return support.add_worker(store, name, clock, hostname=hostname, lanes=4)


def add_job(store: Store, clock: FakeClock, *blocks: BlockSpec, **job: Any) -> int:
    spec = JobSpec(
        name=job.pop("name", "job"),
        owner=job.pop("owner", "alice"),
        priority=50,
        kind="command",
        blocks=blocks or (support.block("main", "1-20", 1),),
        payload={"commands": [["true"]] * max(1, len(blocks))},
        **job,
    )
    return store.jobs.create(spec, now=clock.now())


def candidate(store: Store, job_id: int, block: int = 0) -> ClaimCandidate:
    """The claim candidate of a block, made from the dispatch snapshot as the controller does."""
    snap = store.snapshot.read(now=0.0, errors_since=0.0)
    found = next(b for b in snap.blocks if (b.job_id, b.index) == (job_id, block))
    user = snap.users.get(found.owner)
    return ClaimCandidate(found, user.max_running if user else None)


def all_at_once(count: int, action: Callable[[int], Any]) -> list[Any]:
    """Run action(i) for i in range(count) in threads released together; their results."""
    barrier = threading.Barrier(count)
    results: list[Any] = [None] * count
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            barrier.wait(timeout=30)
            results[i] = action(i)
        except BaseException as exc:  # handed to the test
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    if errors:
        raise errors[0]
    return results


def holds(store: Store) -> Counter[str]:
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(limit_holds.c.hostname)).all()
    return Counter(r.hostname for r in rows)


# -- limits and caps under concurrent claims ----------------------------------------------------


def test_concurrent_claims_never_exceed_a_limit(store: Store, clock: FakeClock) -> None:
    store.limits.set("nuke", max_total=3, max_per_host=2, max_hosts=None, now=clock.now())
    workers = [add_worker(store, f"w{i}", clock, hostname=f"host{i % 4}") for i in range(12)]
    job_id = add_job(store, clock, support.block("main", "1-100", 1, limits=("nuke",)))
    cand = candidate(store, job_id)

    for _ in range(3):
        outcomes = all_at_once(
            len(workers),
            lambda i: store.dispatch.claim(cand, worker_id=workers[i], now=clock.now(), lane=0),
        )
        won = [o.assignment for o in outcomes if o.assignment is not None]
        assert len(won) == 3
        assert {o.refused for o in outcomes if o.assignment is None} == {Refused.LIMIT}
        held = holds(store)
        assert sum(held.values()) == 3
        assert max(held.values()) <= 2
        for a in won:  # the round ends: every unit comes back
            store.attempts.finish(
                FinishReport(a.attempt_id, a.token, AttemptStatus.SUCCEEDED), now=clock.now()
            )
        assert holds(store) == Counter()


def test_max_hosts_holds_under_concurrent_claims(store: Store, clock: FakeClock) -> None:
    store.limits.set("katana", max_total=None, max_per_host=None, max_hosts=2, now=clock.now())
    workers = [add_worker(store, f"w{i}", clock) for i in range(8)]
    job_id = add_job(store, clock, support.block("main", "1-100", 1, limits=("katana",)))
    cand = candidate(store, job_id)

    outcomes = all_at_once(
        8, lambda i: store.dispatch.claim(cand, worker_id=workers[i], now=clock.now())
    )

    assert sum(1 for o in outcomes if o.assignment) == 2
    assert len(holds(store)) == 2


def test_a_lost_attempt_gives_its_units_back(store: Store, clock: FakeClock) -> None:
    store.limits.set("nuke", max_total=1, max_per_host=None, max_hosts=None, now=clock.now())
    w = add_worker(store, "w", clock)
    job_id = add_job(store, clock, support.block("main", "1-5", 1, limits=("nuke",)))
    assert store.dispatch.claim(candidate(store, job_id), worker_id=w, now=clock.now()).assignment

    clock.advance(100)
    store.workers.expire(now=clock.now(), lease_s=15)

    assert holds(store) == Counter()
    assert store.limits.all()[0].in_use == 0


def test_concurrent_claims_never_exceed_the_job_cap(store: Store, clock: FakeClock) -> None:
    workers = [add_worker(store, f"w{i}", clock) for i in range(8)]
    job_id = add_job(store, clock, max_running=3)
    cand = candidate(store, job_id)

    outcomes = all_at_once(
        8, lambda i: store.dispatch.claim(cand, worker_id=workers[i], now=clock.now())
    )

    assert sum(1 for o in outcomes if o.assignment) == 3
    assert {o.refused for o in outcomes if o.assignment is None} == {Refused.CAP}


def test_the_user_cap_counts_every_job_of_the_user(store: Store, clock: FakeClock) -> None:
    store.scheduling.set_user("alice", priority=0, max_running=2)
    w = add_worker(store, "w", clock)
    first, second = add_job(store, clock, name="a"), add_job(store, clock, name="b")
    by_job = {job: candidate(store, job) for job in (first, second)}
    assert by_job[first].user_max_running == 2

    assert store.dispatch.claim(by_job[first], worker_id=w, now=clock.now()).assignment
    assert store.dispatch.claim(by_job[second], worker_id=w, now=clock.now()).assignment
    refused = store.dispatch.claim(by_job[second], worker_id=w, now=clock.now())
    assert (refused.assignment, refused.refused) == (None, Refused.CAP)


def test_setting_a_limit_twice_changes_it(store: Store, clock: FakeClock) -> None:
    store.limits.set("x", max_total=1, max_per_host=None, max_hosts=None, now=clock.now())
    store.limits.set("x", max_total=5, max_per_host=2, max_hosts=None, now=clock.now())
    (limit,) = store.limits.all()
    assert (limit.name, limit.max_total, limit.max_per_host) == ("x", 5, 2)
    store.limits.delete("x")
    assert store.limits.all() == []
    with pytest.raises(NotFound):
        store.limits.delete("x")
    assert store.limits.missing(["x", "y"]) == ["x", "y"]


# -- lanes, capacity, frame by frame ------------------------------------------------------------


def test_a_claim_records_its_lane_and_capacity(store: Store, clock: FakeClock) -> None:
    w = add_worker(store, "w", clock)
    job_id = add_job(store, clock, support.block("main", "1-5", 1, capacity=250))

    got = store.dispatch.claim(candidate(store, job_id), worker_id=w, now=clock.now(), lane=3)

    assert got.assignment is not None
    assert got.assignment.lane == 3
    (held,) = store.snapshot.worker_held(w)
    assert (held.lane, held.capacity) == (3, 250)
    assert store.workers.get(w).capacity_used == 250


def test_frame_by_frame_claims_take_ready_tasks_out_of_order(
    store: Store, clock: FakeClock
) -> None:
    w = add_worker(store, "w", clock)
    job_id = add_job(
        store,
        clock,
        support.block("render", "1-6", 1),
        support.block("comp", "1-6", 2, after_frames=(0,)),
    )
    render = [
        store.dispatch.claim(candidate(store, job_id), worker_id=w, now=clock.now()) for _ in "abc"
    ]
    comp = candidate(store, job_id, 1)
    assert store.dispatch.claim(comp, worker_id=w, now=clock.now()).refused is Refused.NO_TASK

    for outcome in render[1:]:  # frames 2 and 3: comp task 1 (frames 3-4) still needs 4
        a = outcome.assignment
        assert a is not None
        store.attempts.finish(
            FinishReport(a.attempt_id, a.token, AttemptStatus.SUCCEEDED), now=clock.now()
        )
    assert store.dispatch.claim(comp, worker_id=w, now=clock.now()).refused is Refused.NO_TASK
    r4 = store.dispatch.claim(candidate(store, job_id), worker_id=w, now=clock.now()).assignment
    assert r4 is not None
    assert r4.frames == (4,)
    store.attempts.finish(
        FinishReport(r4.attempt_id, r4.token, AttemptStatus.SUCCEEDED), now=clock.now()
    )

    taken = store.dispatch.claim(comp, worker_id=w, now=clock.now()).assignment
    assert taken is not None
    assert (taken.task_index, taken.frames) == (1, (3, 4))
    first = render[0].assignment
    assert first is not None
    store.attempts.finish(
        FinishReport(first.attempt_id, first.token, AttemptStatus.SUCCEEDED), now=clock.now()
    )
    again = store.dispatch.claim(comp, worker_id=w, now=clock.now()).assignment
    assert again is not None
    assert again.task_index == 0
    with store.engine.connect() as conn:
        comp_rows = conn.scalars(
            sa.select(tasks.c.idx).where(tasks.c.job_id == job_id, tasks.c.status == "running")
        ).all()
    assert sorted(comp_rows) == [0, 1]
    nothing = store.dispatch.claim(comp, worker_id=w, now=clock.now())
    assert nothing.refused is Refused.NO_TASK  # task 2 (frames 5-6) waits for 5 and 6


# -- host errors, NIMBY, lanes, users -----------------------------------------------------------


def test_failures_and_short_successes_are_logged_against_the_host(
    store: Store, clock: FakeClock
) -> None:
    w = add_worker(store, "w", clock)
    job_id = add_job(store, clock, support.block("main", "1-5", 1, min_runtime_s=2.0))
    cand = candidate(store, job_id)
    outcomes = []
    for status, duration in (
        (AttemptStatus.FAILED, 9.0),
        (AttemptStatus.SUCCEEDED, 0.5),
        (AttemptStatus.SUCCEEDED, 3.0),
    ):
        a = store.dispatch.claim(cand, worker_id=w, now=clock.now()).assignment
        assert a is not None
        store.attempts.finish(
            FinishReport(a.attempt_id, a.token, status, duration_s=duration), now=clock.now()
        )
        outcomes.append(store.attempts.of_task(job_id, 0, a.task_index)[-1].status)
        clock.advance(1)

    assert outcomes == [AttemptStatus.FAILED, AttemptStatus.FAILED, AttemptStatus.SUCCEEDED]
    errors = store.error_hosts.errors(job_id=job_id)
    assert [(e.worker_id, e.at) for e in errors] == [(w, clock.now() - 3), (w, clock.now() - 2)]
    assert store.error_hosts.reset(job_id, block_index=0) == 2
    assert store.error_hosts.errors(job_id=job_id) == []


def test_lane_overrides_and_nimby_are_stored(store: Store, clock: FakeClock) -> None:
    w = add_worker(store, "w", clock)
    store.scheduling.set_lane_engines(w, 1, ["povray", "blender"])
    store.scheduling.set_lane_engines(w, 2, None)
    store.scheduling.set_nimby(w, Nimby.PAUSED)
    store.scheduling.set_nimby(w, Nimby.STOPPED, local=True)

    record = store.workers.get(w)
    assert dict(record.lane_engines) == {
        0: None,
        1: ("blender", "povray"),
        2: None,
        3: None,
    }
    assert dict(record.lane_overrides) == {1: ("blender", "povray"), 2: None}
    assert (record.nimby, record.local_nimby) == ("paused", "stopped")
    store.scheduling.set_lane_engines(w, 1, None, reset=True)
    assert 1 not in store.workers.get(w).lane_overrides
    with pytest.raises(InvalidInput):
        store.scheduling.set_lane_engines(w, 4, ["x"])


def test_users_and_the_owner_regex(store: Store, clock: FakeClock) -> None:
    a = add_job(store, clock, name="shot010_render", owner="alice")
    add_job(store, clock, name="shot010_render", owner="bob")
    store.scheduling.set_user("bob", priority=20, max_running=None)

    assert store.scheduling.jobs_matching("shot010*", owner="alice") == [a]
    assert len(store.scheduling.jobs_matching("shot010*", owner=None)) == 2
    assert [(u.name, u.priority) for u in store.scheduling.users()] == [("alice", 0), ("bob", 20)]


def test_the_dispatch_snapshot(store: Store, clock: FakeClock) -> None:
    store.limits.set("nuke", max_total=2, max_per_host=None, max_hosts=None, now=clock.now())
    w = add_worker(store, "w", clock)
    job_id = add_job(
        store,
        clock,
        support.block("main", "1-5", 1, limits=("nuke",), capacity=500, engine="blender"),
        filters="ram:>4GB",
        preempt=True,
    )
    store.dispatch.claim(
        candidate(store, job_id), worker_id=w, now=clock.now(), lane=0, hostname="w"
    )

    snap = store.snapshot.read(now=clock.now(), errors_since=0)

    (block,) = snap.blocks
    assert (block.filters, block.preempt, block.engine, block.capacity) == (
        "ram:>4GB",
        True,
        "blender",
        500,
    )
    assert (block.runnable, block.n_running) == (4, 1)
    assert dict(snap.running) == {(job_id, "alice"): 1}
    assert dict(snap.limits["nuke"].in_use_by_host) == {"w": 1}
    assert snap.workers[w].lanes == 4
    with store.engine.connect() as conn:
        statuses = conn.scalars(sa.select(tasks.c.status)).all()
    assert statuses == [TaskStatus.RUNNING.value]


def test_a_report_of_many_finishes_is_written_as_one_by_one_would(
    store: Store, clock: FakeClock
) -> None:
    w = add_worker(store, "w", clock)
    job_id = add_job(store, clock, support.block("main", "1-8", 1, retries=1))
    cand = candidate(store, job_id)
    got = store.dispatch.claim(cand, worker_id=w, now=clock.now(), count=6).assignments
    assert len(got) == 6
    ok = [FinishReport(a.attempt_id, a.token, AttemptStatus.SUCCEEDED, 0, None, 1.5) for a in got]
    reports = [
        *ok[:3],
        FinishReport(got[3].attempt_id, got[3].token, AttemptStatus.FAILED, 2),
        FinishReport(got[4].attempt_id, "forged", AttemptStatus.SUCCEEDED),
        ok[5],
        ok[0],  # the same report again (the worker missed our answer)
    ]

    results = store.attempts.finish_many(reports, now=clock.now())

    assert [type(r).__name__ for r in results] == [
        "int",
        "int",
        "int",
        "int",
        "StaleAttempt",
        "int",
        "int",
    ]
    record = store.jobs.get(job_id).blocks[0]
    assert (record.counts.succeeded, record.counts.queued, record.counts.running) == (4, 1, 1)
    assert record.mean_runtime_s == pytest.approx(1.5)
    statuses = [a.status for a in store.attempts.of_job(job_id)]
    assert statuses.count(AttemptStatus.SUCCEEDED) == 4
    assert statuses.count(AttemptStatus.FAILED) == 1
    assert statuses.count(AttemptStatus.RUNNING) == 1
