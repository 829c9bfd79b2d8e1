"""Claims and finishes grouped in one transaction (as a group of polls runs), on both databases:
on PostgreSQL their block changes are gathered and written at the end (`store.tally`). The
counters and cursor must come out as the rows say, a read inside the transaction must see
them, a rollback must forget them, and concurrent groups must never share a task."""

from __future__ import annotations

import threading
from typing import Any

import pytest
import sqlalchemy as sa

from tests.store.support import add_worker, candidates
from tests.store.test_store import assert_counters_match_rows, job_spec
from thresher.core.errors import Contended
from thresher.core.model import Assignment, Counts
from thresher.core.states import AttemptStatus
from thresher.store import tally
from thresher.store.store import FinishReport, Store
from thresher.store.tables import blocks
from thresher.store.tables_dispatch import block_deltas
from thresher.testing import FakeClock


def _claim(
    store: Store, worker_id: int, now: float, count: int = 1, cands: list[Any] | None = None
) -> list[Assignment]:
    """Tasks of the first candidate that has any (`cands`: read before the transaction, as the
    controller's dispatch index is; else read now)."""
    for cand in candidates(store, now=now) if cands is None else cands:
        got = store.dispatch.claim(cand, worker_id=worker_id, now=now, count=count).assignments
        if got:
            return got
    return []


def _written_by_this_transaction(conn: sa.Connection, job_id: int) -> bool:
    """PostgreSQL: whether the open transaction wrote a version of the job's block row (read on
    the DBAPI connection: through SQLAlchemy, the gathered changes would be written first)."""
    dbapi_conn: Any = conn.connection.dbapi_connection
    cursor = dbapi_conn.cursor()
    try:
        cursor.execute(
            "SELECT xmin::text::bigint = txid_current() %% 4294967296 FROM blocks"
            " WHERE job_id = %s",
            (job_id,),
        )
        row: Any = cursor.fetchone()
        return bool(row[0])
    finally:
        cursor.close()


def _succeeded(a: Assignment) -> FinishReport:
    return FinishReport(a.attempt_id, a.token, AttemptStatus.SUCCEEDED, duration_s=0.5)


def test_a_group_of_claims_and_finishes_counts_as_the_rows_say(
    store: Store, clock: FakeClock
) -> None:
    job_id = store.jobs.create(job_spec(frames="1-40", retries=0), now=clock.now())
    workers = [add_worker(store, f"w{i}", clock) for i in range(4)]
    held: dict[int, list[Assignment]] = {w: [] for w in workers}
    for _ in range(5):  # five groups, each: every worker reports what it holds, claims more
        cands = candidates(store, now=clock.now())
        with store.transaction() as conn:
            for w in workers:
                store.attempts.finish_many([_succeeded(a) for a in held[w]], now=clock.now())
                held[w] = _claim(store, w, clock.now(), count=2, cands=cands)
            if store.dialect == "postgresql":  # nothing written to the block row yet
                assert not _written_by_this_transaction(conn, job_id)
            # Read inside the group: the changes gathered so far are seen.
            row = conn.execute(sa.select(blocks).where(blocks.c.job_id == job_id)).one()
            assert row.n_running == sum(len(h) for h in held.values())
            if store.dialect == "postgresql":  # written before that read
                assert _written_by_this_transaction(conn, job_id)
            assert store.snapshot.job_standing(job_id)[1]
    assert store.jobs.get(job_id).counts == Counts(total=40, running=8, succeeded=32)
    assert_counters_match_rows(store)
    with store.transaction():
        for w in workers:
            store.attempts.finish_many([_succeeded(a) for a in held[w]], now=clock.now())
        assert not store.snapshot.job_standing(job_id)[1]  # the job's last finishes are seen
    assert store.jobs.get(job_id).counts == Counts(total=40, succeeded=40)
    assert_counters_match_rows(store)
    with store.engine.connect() as conn:
        row = conn.execute(sa.select(blocks).where(blocks.c.job_id == job_id)).one()
    assert (row.cursor, row.runtime_n, row.runtime_sum) == (40, 40, 20.0)


def test_a_rolled_back_group_hands_its_tasks_out_again(store: Store, clock: FakeClock) -> None:
    store.jobs.create(job_spec(frames="1-10", retries=0), now=clock.now())
    worker = add_worker(store, "w", clock)
    first = _claim(store, worker, clock.now())
    taken: list[int] = []

    def failing_group() -> None:
        with store.transaction():
            store.attempts.finish_many([_succeeded(a) for a in first], now=clock.now())
            taken.extend(a.task_index for a in _claim(store, worker, clock.now(), count=3))
            raise RuntimeError("the group fails")

    with pytest.raises(RuntimeError):
        failing_group()
    assert taken == [1, 2, 3]
    again = _claim(store, worker, clock.now(), count=3)
    assert [a.task_index for a in again] == [1, 2, 3]  # the same positions, not lost
    assert_counters_match_rows(store)
    with store.engine.connect() as conn:
        assert conn.scalar(sa.select(blocks.c.cursor)) == 4


def test_concurrent_groups_never_share_a_task(store: Store, clock: FakeClock) -> None:
    job_id = store.jobs.create(job_spec(frames="1-150", retries=0), now=clock.now())
    workers = [add_worker(store, f"w{i}", clock) for i in range(6)]
    claimed: list[Assignment] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    together = threading.Barrier(3)

    def groups(mine: list[int]) -> None:
        together.wait()
        held: dict[int, list[Assignment]] = {w: [] for w in mine}
        try:
            while True:
                try:
                    with store.transaction():
                        got = {}
                        for w in mine:
                            store.attempts.finish_many(
                                [_succeeded(a) for a in held[w]], now=clock.now()
                            )
                            got[w] = _claim(store, w, clock.now(), count=2)
                except Contended:  # two groups locked two blocks in turn: run it again
                    continue
                held = got
                with lock:
                    claimed.extend(a for g in got.values() for a in g)
                if not any(got.values()):
                    return
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=groups, args=(workers[i::3],)) for i in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    assert sorted(a.task_index for a in claimed) == list(range(150))
    assert store.jobs.get(job_id).counts == Counts(total=150, succeeded=150)
    assert_counters_match_rows(store)


def test_a_wrong_hint_of_where_a_block_row_lies_is_passed_over(
    store: Store, clock: FakeClock
) -> None:
    """PostgreSQL keeps where it last wrote each block's row: a hint that points elsewhere (the
    other block's row, a version another controller replaced) finds nothing, and the block is
    looked up by id."""
    first = store.jobs.create(job_spec("a", frames="1-4", retries=0), now=clock.now())
    second = store.jobs.create(job_spec("b", frames="1-4", retries=0), now=clock.now())
    worker = add_worker(store, "w", clock)
    with store.engine.connect() as conn:
        ids = dict(conn.execute(sa.select(blocks.c.job_id, blocks.c.id)).all())
    held: list[Assignment] = []
    for _ in range(5):
        if store.dialect == "postgresql":
            with store.engine.connect() as conn:  # each block's hint: the other's row
                rows = conn.execute(sa.text("SELECT id, ctid::text FROM blocks")).all()
            where: dict[int, str] = {int(r[0]): str(r[1]) for r in rows}
            tally._WHERE.update({ids[first]: where[ids[second]], ids[second]: where[ids[first]]})
        cands = candidates(store, now=clock.now())
        with store.transaction():
            store.attempts.finish_many([_succeeded(a) for a in held], now=clock.now())
            held = [
                a
                for c in cands
                for a in store.dispatch.claim(
                    c, worker_id=worker, now=clock.now(), count=1
                ).assignments
            ]
    assert store.jobs.get(first).counts == Counts(total=4, succeeded=4)
    assert store.jobs.get(second).counts == Counts(total=4, succeeded=4)
    assert_counters_match_rows(store)


def test_a_fold_that_skipped_a_locked_block_folds_it_at_the_next_read(
    store: Store, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL: a read folds this process's journal first; when another transaction (say,
    another controller's claim) holds the block's row, the fold skips it, and the next read
    must fold it then, not count it as folded and read the block's counts short."""
    if store.dialect != "postgresql":
        pytest.skip("the journal and its fold are PostgreSQL's (SQLite gathers its own way)")
    job_id = store.jobs.create(job_spec(frames="1-4", retries=0), now=clock.now())
    worker = add_worker(store, "w", clock)
    (got,) = _claim(store, worker, clock.now())
    monkeypatch.setattr(tally, "_fold_due", lambda: False)  # no periodic fold at the commits
    with store.transaction():  # the finish's counts go to the journal at the commit
        store.attempts.finish_many([_succeeded(got)], now=clock.now())
    with store.engine.connect() as other:
        other.execute(  # another transaction holds the block's row
            sa.select(blocks.c.id).where(blocks.c.job_id == job_id).with_for_update(key_share=True)
        )
        with store.transaction() as conn:  # the fold skips it: its counts stay journaled
            row = conn.execute(sa.select(blocks).where(blocks.c.job_id == job_id)).one()
            assert row.n_succeeded == 0
        other.rollback()
    with store.transaction() as conn:
        row = conn.execute(sa.select(blocks).where(blocks.c.job_id == job_id)).one()
    assert (row.n_succeeded, row.n_running) == (1, 0)


def test_journal_rows_of_a_block_that_is_gone_do_not_count_as_skipped(
    store: Store, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL: a journal row left for a block that no longer exists is no block another
    transaction holds: the fold counts this process's journal as folded (else every read of
    the counters would fold again)."""
    if store.dialect != "postgresql":
        pytest.skip("the journal and its fold are PostgreSQL's (SQLite gathers its own way)")
    job_id = store.jobs.create(job_spec(frames="1-4", retries=0), now=clock.now())
    worker = add_worker(store, "w", clock)
    (got,) = _claim(store, worker, clock.now())
    monkeypatch.setattr(tally, "_fold_due", lambda: False)  # no periodic fold at the commits
    with store.transaction():
        store.attempts.finish_many([_succeeded(got)], now=clock.now())
    with store.engine.begin() as conn:  # a block gone, its journal row left
        conn.execute(
            block_deltas.insert().values(
                block_id=10**9, n_queued=0, n_running=1, n_succeeded=0, runtime_sum=0, runtime_n=0
            )
        )
    with store.transaction() as conn:
        row = conn.execute(sa.select(blocks).where(blocks.c.job_id == job_id)).one()
    assert (row.n_succeeded, row.n_running) == (1, 0)
    assert tally._folded == tally._journaled  # nothing skipped: no fold at the next read
