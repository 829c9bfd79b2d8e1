"""A job deleted on one controller while another holds positions of its blocks (PostgreSQL's
reserved ranges, `store.ranges`), or claims from a candidate it read before the deletion: the
claim must not hand out a task of the deleted job, nor fail for good. On PostgreSQL the first
claim is rolled back as `Contended` (the farm thread runs the use case again) and forgets the
positions; the next hands out nothing from that block and the controller's other claims work.
On SQLite (no ranges) a claim from the stale candidate finds nothing."""

from __future__ import annotations

import pytest

from tests.store.support import add_worker, candidates
from tests.store.test_store import job_spec
from thresher.core.errors import Contended
from thresher.store import ranges
from thresher.store.store import Store
from thresher.testing import FakeClock


def test_a_claim_for_a_job_deleted_on_another_controller_hands_out_nothing(
    store: Store, db_url: str, clock: FakeClock
) -> None:
    doomed = store.jobs.create(job_spec(frames="1-100", retries=0), now=clock.now())
    other = Store.open(db_url)
    try:
        worker = add_worker(other, "w-other", clock)
        stale = candidates(other, now=clock.now())[0]
        got = other.dispatch.claim(stale, worker_id=worker, now=clock.now(), count=1)
        assert [a.task_index for a in got.assignments] == [0]
        store.jobs.delete(doomed)
        if other.dialect == "postgresql":
            assert ranges.held(other.engine, stale.block.block_id) > 0
            with pytest.raises(Contended):
                other.dispatch.claim(stale, worker_id=worker, now=clock.now(), count=1)
            assert ranges.held(other.engine, stale.block.block_id) == 0
        again = other.dispatch.claim(stale, worker_id=worker, now=clock.now(), count=1)
        assert again.assignments == []
        kept = store.jobs.create(job_spec(frames="1-3", retries=0), now=clock.now())
        fresh = candidates(other, now=clock.now())
        assert [c.block.job_id for c in fresh] == [kept]
        got = other.dispatch.claim(fresh[0], worker_id=worker, now=clock.now(), count=1)
        assert [a.task_index for a in got.assignments] == [0]
    finally:
        other.close()
