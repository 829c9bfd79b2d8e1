"""A block's last success here takes it out of the dispatch index without a rebuild, leaving
what a rebuild would read (SQLite and PostgreSQL); where its end changes more (blocks or jobs
waiting on it, pools its job includes, host errors it makes count) the index is rebuilt."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.store.support import add_worker, block

from thresher.controller.dispatch import DispatchIndex
from thresher.controller.dispatch.index import IndexState
from thresher.controller.settings import ControllerSettings
from thresher.core.model import JobSpec
from thresher.core.states import AttemptStatus
from thresher.store.records import FinishReport
from thresher.store.store import Store
from thresher.testing import FakeClock


def _spec(name: str, *blocks: object, **fields: object) -> JobSpec:
    return JobSpec(
        name=name,
        owner="alice",
        priority=50,
        kind="command",
        blocks=tuple(blocks) or (block("main", "1", 1),),  # type: ignore[arg-type]
        payload={"commands": [["true"]]},
        **fields,  # type: ignore[arg-type]
    )


def _seen(state: IndexState) -> object:
    """What dispatch decides from, comparable between two indexes (counts at 0 left out)."""
    return (
        {i: (b.snap, b.view, b.cand, b.exhausted) for i, b in state.blocks.items()},
        +state.running_by_job,
        +state.running_by_user,
        state.limits,
        +state.pool_includers,
        state.online,
        state.expires_at,
        set(state.workers),
    )


class _Farm:
    """A store, a worker and one index, claiming and finishing as the controller does."""

    def __init__(self, store: Store, tmp_path: Path) -> None:
        self.store = store
        self.clock = FakeClock()
        self.settings = ControllerSettings(data_dir=tmp_path)
        self.worker_id = add_worker(store, "w1", self.clock)
        self.index = DispatchIndex(store, self.clock, self.settings)

    def submit(self, spec: JobSpec) -> int:
        job_id = self.store.jobs.create(spec, now=self.clock.now())
        self.index.add_jobs([job_id])
        return job_id

    def run_one(self, job_id: int, status: AttemptStatus = AttemptStatus.SUCCEEDED) -> bool:
        """Claim a task of the job's first block with one, finish it; `finished`'s answer."""
        state = self.index.current()
        found = [b for b in state.blocks.values() if b.snap.job_id == job_id and b.view.runnable]
        indexed = found[0]
        got = self.store.dispatch.claim(
            indexed.cand, worker_id=self.worker_id, now=self.clock.now(), lane=0
        ).assignments
        assert len(got) == 1
        self.index.note_claims(state, indexed, "w1", got)
        self.clock.advance(0.5)
        (a,) = got
        report = FinishReport(a.attempt_id, a.token, status, exit_code=0, duration_s=0.5)
        assert self.store.attempts.finish_many([report], now=self.clock.now()) == [job_id]
        return self.index.finished(a.attempt_id, status.value, 0.5)

    def rebuilt(self) -> IndexState:
        return DispatchIndex(self.store, self.clock, self.settings).current()


def test_a_one_task_jobs_success_takes_its_block_out_as_a_rebuild_would(
    store: Store, tmp_path: Path
) -> None:
    farm = _Farm(store, tmp_path)
    other = farm.submit(_spec("other", block("main", "1-3", 1)))
    built = farm.index.current()
    job_id = farm.submit(_spec("one"))
    assert farm.run_one(job_id)  # its job may be final: the caller looks
    state = farm.index.current()
    assert state is built  # not rebuilt
    assert {b.snap.job_id for b in state.blocks.values()} == {other}
    assert _seen(state) == _seen(farm.rebuilt())


def test_a_blocks_earlier_successes_keep_it_and_its_last_takes_it_out(
    store: Store, tmp_path: Path
) -> None:
    farm = _Farm(store, tmp_path)
    job_id = farm.submit(_spec("two", block("main", "1-2", 1)))
    built = farm.index.current()
    assert farm.run_one(job_id) is False  # a task still waits: the job is not final
    assert len(built.blocks) == 1
    assert farm.run_one(job_id)
    assert farm.index.current() is built
    assert built.blocks == {}
    assert _seen(built) == _seen(farm.rebuilt())


@pytest.mark.parametrize(
    "case",
    [
        "a block after it",
        "a job after it",
        "its job includes a pool",
        "a failure",
        "a success too short",
    ],
)
def test_a_blocks_end_that_changes_more_rebuilds_the_index(
    store: Store, tmp_path: Path, case: str
) -> None:
    farm = _Farm(store, tmp_path)
    status = AttemptStatus.SUCCEEDED
    if case == "a block after it":
        job_id = farm.submit(_spec("steps", block("a", "1", 1), block("b", "1", 1, after=(0,))))
    elif case == "its job includes a pool":
        job_id = farm.submit(_spec("pooled", filters="pool:~sim"))
    elif case == "a success too short":  # the store fails it: its task is queued again
        job_id = farm.submit(_spec("short", block("main", "1", 1, min_runtime_s=5.0)))
    else:
        job_id = farm.submit(_spec("first"))
        if case == "a job after it":
            farm.submit(_spec("then", after=(job_id,)))
        else:
            status = AttemptStatus.FAILED
    built = farm.index.current()
    assert farm.run_one(job_id, status)
    state = farm.index.current()
    assert state is not built
    assert _seen(state) == _seen(farm.rebuilt())


def test_a_success_on_a_block_with_host_errors_rebuilds_the_index(
    store: Store, tmp_path: Path
) -> None:
    """Its success makes another worker's error on it count towards that worker's sickness."""
    farm = _Farm(store, tmp_path)
    job_id = farm.submit(_spec("flaky", block("main", "1", 1, retries=2)))
    farm.run_one(job_id, AttemptStatus.FAILED)
    built = farm.index.current()
    assert built.error_blocks  # the failure was read by the rebuild
    farm.worker_id = add_worker(store, "w2", farm.clock)
    assert farm.run_one(job_id)
    assert farm.index.current() is not built
