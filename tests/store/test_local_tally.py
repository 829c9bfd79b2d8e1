"""Claims and finishes of one transaction write their block's cursor and counters once, at
its end (SQLite: `store.local_tally`; PostgreSQL: `store.tally`): what the rows say after a
commit, a rollback, or a read in between is as if each had been written at once."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from tests.store.support import add_worker
from tests.store.test_store import assert_counters_match_rows, finish_report, job_spec, take
from thresher.store.store import Store
from thresher.store.tables import blocks
from thresher.testing import FakeClock


def _block(store: Store) -> tuple[int | None, int, int]:
    """The block row's cursor (SQLite's: PostgreSQL's moves by ranges), running, succeeded."""
    with store.engine.connect() as conn:
        row = conn.execute(sa.select(blocks.c.cursor, blocks.c.n_running, blocks.c.n_succeeded))
        cursor, running, succeeded = row.one()
    return (cursor if store.engine.dialect.name == "sqlite" else None), running, succeeded


def _cursor(store: Store, sqlite: int) -> int | None:
    return sqlite if store.engine.dialect.name == "sqlite" else None


def test_claims_and_finishes_of_a_transaction_are_written_at_its_commit(
    store: Store, clock: FakeClock
) -> None:
    job_id = store.jobs.create(job_spec(frames="1-20"), now=clock.now())
    workers = [add_worker(store, f"w{i}", clock, lanes=1) for i in range(4)]
    first = [take(store, w, clock) for w in workers]

    with store.transaction():  # four polls together: each finishes and claims again
        again = []
        for w, done in zip(workers, first, strict=True):
            store.attempts.finish_many([finish_report(done)], now=clock.now())
            again.append(take(store, w, clock))

    indexes = [a.task_index for a in first + again]
    assert sorted(indexes) == list(range(8))  # each position handed out once, in order
    assert _block(store) == (_cursor(store, 8), 4, 4)
    counts = store.jobs.get(job_id).counts
    assert (counts.running, counts.succeeded) == (4, 4)
    assert_counters_match_rows(store)


def test_a_rollback_leaves_the_cursor_and_counters_as_they_were(
    store: Store, clock: FakeClock
) -> None:
    store.jobs.create(job_spec(frames="1-20"), now=clock.now())
    worker = add_worker(store, "w1", clock, lanes=1)
    done = take(store, worker, clock)

    def poll_that_fails() -> None:
        with store.transaction():
            store.attempts.finish_many([finish_report(done)], now=clock.now())
            take(store, worker, clock)
            take(store, worker, clock)
            raise RuntimeError("the poll failed after its claims")

    with pytest.raises(RuntimeError):
        poll_that_fails()

    assert _block(store) == (_cursor(store, 1), 1, 0)
    if store.engine.dialect.name == "sqlite":  # PostgreSQL's come back by `store.ranges`
        again = {take(store, worker, clock).task_index for _ in range(2)}
        assert again == {1, 2}  # the positions are handed out again
    assert_counters_match_rows(store)


def test_a_read_of_the_block_in_the_transaction_sees_what_it_gathered(
    store: Store, clock: FakeClock
) -> None:
    job_id = store.jobs.create(job_spec(frames="1-20"), now=clock.now())
    worker = add_worker(store, "w1", clock, lanes=1)
    done = take(store, worker, clock)

    with store.transaction() as conn:
        store.attempts.finish_many([finish_report(done)], now=clock.now())
        second = take(store, worker, clock)
        seen = conn.execute(sa.select(blocks.c.n_running, blocks.c.n_succeeded)).one()
        counts = store.jobs.get(job_id).counts
        third = take(store, worker, clock)  # the cursor read again after the write

    assert tuple(seen) == (1, 1)
    assert (counts.running, counts.succeeded) == (1, 1)
    assert (second.task_index, third.task_index) == (1, 2)
    assert _block(store) == (_cursor(store, 3), 2, 1)
    assert_counters_match_rows(store)
