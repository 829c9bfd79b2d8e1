"""A rolled-back transaction gives back the positions its claims took (PostgreSQL: `store.tally`,
`store.ranges`), even when what it gathered was written before its end (a statement that reads
the block flushes the tally): the next claims hand them out again, each once and in order, and
none waits for the sweep at the block's end (`cursor._gaps`). Positions of a range the rolled-back
transaction reserved are not held afterwards: its cursor went back, the next claim reserves them
again. SQLite has its own version of the first case (`test_local_tally.py`)."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from tests.store.support import add_worker, candidates
from tests.store.test_store import assert_counters_match_rows, finish_report, job_spec, take
from thresher.core.model import Assignment
from thresher.store import ranges
from thresher.store.store import Store
from thresher.store.tables import blocks
from thresher.testing import FakeClock


@pytest.fixture(autouse=True)
def _postgresql_only(store: Store) -> None:
    if store.dialect != "postgresql":
        pytest.skip("PostgreSQL's reserved ranges (SQLite: test_local_tally.py)")


def _claim(store: Store, worker_id: int, clock: FakeClock) -> list[Assignment]:
    for cand in candidates(store, now=clock.now()):
        got = store.dispatch.claim(cand, worker_id=worker_id, now=clock.now(), count=1)
        if got.assignments:
            return got.assignments
    return []


def _all_the_rest(store: Store, worker_id: int, clock: FakeClock) -> list[int]:
    """Every position still to hand out, in the order claimed (no sweep: the clock stands)."""
    out: list[int] = []
    while got := _claim(store, worker_id, clock):
        out += [a.task_index for a in got]
    return out


def _cursor(store: Store) -> int:
    with store.engine.connect() as conn:
        return int(conn.scalar(sa.select(blocks.c.cursor)) or 0)


def test_a_rollback_after_the_tally_was_written_gives_back_every_position_in_order(
    store: Store, clock: FakeClock
) -> None:
    store.jobs.create(job_spec(frames="1-100"), now=clock.now())
    worker = add_worker(store, "w1", clock, lanes=1)
    done = take(store, worker, clock)  # position 0; the process holds the rest of its range
    assert done.task_index == 0

    def poll_that_fails() -> None:
        with store.transaction():
            store.attempts.finish_many([finish_report(done)], now=clock.now())
            assert take(store, worker, clock).task_index == 1
            assert take(store, worker, clock).task_index == 2
            raise RuntimeError("the poll failed after its claims")

    with pytest.raises(RuntimeError):
        poll_that_fails()

    worker_2 = add_worker(store, "w2", clock, lanes=100)
    assert _all_the_rest(store, worker_2, clock) == list(range(1, 100))
    assert_counters_match_rows(store)


def test_a_rollback_after_a_range_was_written_holds_none_of_it(
    store: Store, clock: FakeClock
) -> None:
    store.jobs.create(job_spec(frames="1-100"), now=clock.now())
    worker = add_worker(store, "w1", clock, lanes=100)
    block_id = candidates(store, now=clock.now())[0].block.block_id

    def poll_that_fails() -> None:
        with store.transaction() as conn:
            assert take(store, worker, clock).task_index == 0  # reserves a range
            conn.execute(sa.select(blocks.c.n_running)).one()  # writes the cursor past it
            assert ranges.held(store.engine, block_id) > 0
            assert take(store, worker, clock).task_index == 1
            raise RuntimeError("the poll failed after its claims")

    with pytest.raises(RuntimeError):
        poll_that_fails()

    assert _cursor(store) == 0  # the cursor's write went with the rollback
    assert ranges.held(store.engine, block_id) == 0  # and so did the range
    assert _all_the_rest(store, worker, clock) == list(range(100))
    assert_counters_match_rows(store)


def test_a_rollback_between_two_flushes_gives_back_what_each_part_took(
    store: Store, clock: FakeClock
) -> None:
    store.jobs.create(job_spec(frames="1-100"), now=clock.now())
    worker = add_worker(store, "w1", clock, lanes=100)
    assert take(store, worker, clock).task_index == 0  # the process holds the range's rest

    def poll_that_fails() -> None:
        with store.transaction() as conn:
            for expected in (1, 2, 3):
                assert take(store, worker, clock).task_index == expected
                conn.execute(sa.select(blocks.c.n_running)).one()  # the tally written
            raise RuntimeError("the poll failed after its claims")

    with pytest.raises(RuntimeError):
        poll_that_fails()

    assert _all_the_rest(store, worker, clock) == list(range(1, 100))
    assert_counters_match_rows(store)
