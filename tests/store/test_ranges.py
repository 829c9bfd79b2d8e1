"""A block's positions reserved by ranges (PostgreSQL, `store.ranges`): a controller moves the
cursor past a range once and hands its positions out from memory. What one never handed out
(killed between the reservation and the hand-out, stopped) must be handed out by another,
several controllers must never share a task, and the block's row must not get a new version
per claim or finish. On SQLite (no ranges) the same claims must come out the same."""

from __future__ import annotations

import threading
from typing import Any

import sqlalchemy as sa

from tests.store.support import add_worker, candidates
from tests.store.test_store import assert_counters_match_rows, job_spec
from thresher.core.errors import Contended
from thresher.core.model import Assignment, Counts
from thresher.core.states import AttemptStatus
from thresher.store import ranges, tally
from thresher.store.store import FinishReport, Store
from thresher.store.tables import blocks
from thresher.testing import FakeClock


def _claim(store: Store, worker_id: int, clock: FakeClock, count: int = 1) -> list[Assignment]:
    for cand in candidates(store, now=clock.now()):
        got = store.dispatch.claim(cand, worker_id=worker_id, now=clock.now(), count=count)
        if got.assignments:
            return got.assignments
    return []


def _succeeded(a: Assignment) -> FinishReport:
    return FinishReport(a.attempt_id, a.token, AttemptStatus.SUCCEEDED, duration_s=0.5)


def _cursor(store: Store) -> int:
    with store.engine.connect() as conn:
        return int(conn.scalar(sa.select(blocks.c.cursor)) or 0)


def test_positions_a_killed_controller_reserved_are_handed_out_by_the_next(
    store: Store, db_url: str, clock: FakeClock
) -> None:
    job_id = store.jobs.create(job_spec(frames="1-200", retries=0), now=clock.now())
    first = Store.open(db_url)  # the controller killed after its first claim
    try:
        worker = add_worker(first, "w-first", clock)
        got = _claim(first, worker, clock)
        assert [a.task_index for a in got] == [0]
        if store.dialect == "postgresql":  # it reserved more than it handed out
            block_id = candidates(first, now=clock.now())[0].block.block_id
            assert ranges.held(first.engine, block_id) > 0
            assert _cursor(store) == 1 + ranges.held(first.engine, block_id)
        ranges.forget(first.engine)  # killed -9: what it held in memory is gone
    finally:
        first.close()
    worker = add_worker(store, "w-next", clock)
    handed = [*got]
    while more := _claim(store, worker, clock, count=3):
        handed += more
        store.attempts.finish_many([_succeeded(a) for a in more], now=clock.now())
    assert sorted(a.task_index for a in handed) == list(range(200))  # none lost, none twice
    store.attempts.finish_many([_succeeded(got[0])], now=clock.now())
    assert store.jobs.get(job_id).counts == Counts(total=200, succeeded=200)
    assert_counters_match_rows(store)


def test_controllers_sharing_a_database_never_share_a_task(
    store: Store, db_url: str, clock: FakeClock
) -> None:
    job_id = store.jobs.create(job_spec(frames="1-400", retries=0), now=clock.now())
    controllers = [store, Store.open(db_url), Store.open(db_url)]
    claimed: list[Assignment] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    together = threading.Barrier(len(controllers))

    def serve(c: Store, worker: int) -> None:
        together.wait()
        try:
            held: list[Assignment] = []
            while True:
                try:
                    with c.transaction():
                        c.attempts.finish_many([_succeeded(a) for a in held], now=clock.now())
                        got = _claim(c, worker, clock, count=2)
                except Contended:
                    continue
                held = got
                with lock:
                    claimed.extend(got)
                if not got:
                    return
        except BaseException as exc:
            errors.append(exc)

    try:
        workers = [add_worker(c, f"w{i}", clock) for i, c in enumerate(controllers)]
        threads = [
            threading.Thread(target=serve, args=(c, w))
            for c, w in zip(controllers, workers, strict=True)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
    finally:
        for c in controllers[1:]:
            c.close()
    assert errors == []
    assert sorted(a.task_index for a in claimed) == list(range(400))
    assert store.jobs.get(job_id).counts == Counts(total=400, succeeded=400)
    assert_counters_match_rows(store)


def test_claims_and_finishes_write_the_block_row_once_per_range(
    store: Store, clock: FakeClock, monkeypatch: Any
) -> None:
    """PostgreSQL: a claim reserves a range (one version of the block's row for up to
    `ranges.RANGE_MAX` claims); a finish adds its counts to the journal, folded into the row
    about once a second. (On SQLite every claim and finish writes the row: nothing to see.)"""
    store.jobs.create(job_spec(frames="1-4000", retries=0), now=clock.now())
    worker = add_worker(store, "w", clock)
    if store.dialect != "postgresql":
        assert len(_claim(store, worker, clock)) == 1
        return
    writes: list[str] = []
    run = tally._run

    def counting(conn: sa.Connection, sql: str, params: dict[str, Any], **kw: Any) -> Any:
        if sql.startswith("UPDATE blocks"):
            writes.append(sql)
        return run(conn, sql, params, **kw)

    monkeypatch.setattr(tally, "_run", counting)
    cands = candidates(store, now=clock.now())
    held: list[Assignment] = []
    for _ in range(200):  # 200 polls, one transaction each: finish what it holds, claim one
        with store.transaction():
            store.attempts.finish_many([_succeeded(a) for a in held], now=clock.now())
            held = store.dispatch.claim(cands[0], worker_id=worker, now=clock.now()).assignments
    # One range (4000 // 8 = 500 positions) and the folds of a few seconds at most.
    assert len(writes) <= 6, writes
    assert_counters_match_rows(store)  # a read folds the journal first
    assert _cursor(store) == 500
