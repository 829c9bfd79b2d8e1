"""The dispatch index takes a submitted job in without a rebuild: what it adds is what a rebuild
reads (SQLite and PostgreSQL), whatever decides eligibility (pools, limits, dependencies,
filters, pauses, owners' settings); anything else still rebuilds it."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from tests.store.support import add_worker, block

from thresher.controller.dispatch import DispatchIndex
from thresher.controller.dispatch.index import IndexState
from thresher.controller.settings import ControllerSettings
from thresher.core.model import JobSpec
from thresher.store.store import Store
from thresher.testing import FakeClock


def _spec(name: str, *blocks: object, owner: str = "alice", **fields: object) -> JobSpec:
    return JobSpec(
        name=name,
        owner=owner,
        priority=50,
        kind="command",
        blocks=tuple(blocks) or (block("main", "1-4", 1),),  # type: ignore[arg-type]
        payload={"commands": [["true"]]},
        **fields,  # type: ignore[arg-type]
    )


def _seen(index: DispatchIndex, state: IndexState) -> object:
    """What dispatch decides from, comparable between two indexes."""
    return (
        {i: (b.snap, b.view, b.cand, b.exhausted) for i, b in state.blocks.items()},
        list(state.blocks),
        dict(state.running_by_job),
        dict(state.running_by_user),
        state.limits,
        +state.pool_includers,
        state.online,
        state.expires_at,
        set(state.workers),
        index.settled,
    )


def _farm(store: Store, clock: FakeClock) -> int:
    """A worker, a limit, an owner with settings and a first job including a pool: what the
    index is built over before jobs join it; the first job's id."""
    add_worker(store, "w1", clock)
    store.limits.set("lic", max_total=1, max_per_host=None, max_hosts=None, now=clock.now())
    store.scheduling.set_user("bob", priority=10, max_running=2)
    first = store.jobs.create(_spec("first", filters="pool:+render"), now=clock.now())
    return first


def test_submitted_jobs_join_the_index_as_a_rebuild_reads_them(
    store: Store, tmp_path: Path
) -> None:
    clock = FakeClock()
    settings = ControllerSettings(data_dir=tmp_path)
    first = _farm(store, clock)
    index = DispatchIndex(store, clock, settings)
    built_before = index.current()

    added = [
        # a job including a pool (`pool:~p` counts it), one with a limit and a capped owner
        _spec("pooled", filters="pool:~sim"),
        _spec("limited", block("main", "1-3", 1, limits=("lic",)), owner="bob", max_running=1),
        # blocks waiting on blocks of their job, whole and frame by frame
        _spec(
            "steps",
            block("a", "1-2", 1),
            block("b", "1-2", 1, after=(0,)),
            block("c", "1-2", 1, after_frames=(0,)),
        ),
        # waiting on another job; paused; no task at all
        _spec("after", after=(first,)),
        _spec("paused", paused=True, filters="pool:+sim"),
        _spec("empty", replace(block("main", "1", 1), task_count=0)),
    ]
    for spec in added:
        clock.advance(0.01)
        job_id = store.jobs.create(spec, now=clock.now())
        index.add_jobs([job_id])
        assert index.pending_in() == 0.0  # a held poll decides again at once
    state = index.current()
    assert state is built_before  # taken in, not rebuilt
    rebuilt = DispatchIndex(store, clock, settings)
    assert _seen(index, state) == _seen(rebuilt, rebuilt.current())
    assert index.pending_in() is None


def test_a_job_naming_a_limit_the_index_does_not_know_makes_it_rebuild(
    store: Store, tmp_path: Path
) -> None:
    clock = FakeClock()
    index = DispatchIndex(store, clock, ControllerSettings(data_dir=tmp_path))
    built = index.current()
    store.limits.set("new", max_total=2, max_per_host=None, max_hosts=None, now=clock.now())
    job_id = store.jobs.create(
        _spec("limited", block("main", "1", 1, limits=("new",))), now=clock.now()
    )
    index.add_jobs([job_id])
    state = index.current()
    assert state is not built
    assert "new" in state.limits
    assert len(state.blocks) == 1


def test_an_index_not_built_or_rebuilt_since_takes_the_job_in_by_its_build(
    store: Store, tmp_path: Path
) -> None:
    clock = FakeClock()
    index = DispatchIndex(store, clock, ControllerSettings(data_dir=tmp_path))
    job_id = store.jobs.create(_spec("one"), now=clock.now())
    index.add_jobs([job_id])  # nothing built yet: the first build reads it
    assert len(index.current().blocks) == 1
    second = store.jobs.create(_spec("two"), now=clock.now())
    index.add_jobs([second])
    index.invalidate()  # another change came after: one rebuild reads both
    state = index.current()
    assert len(state.blocks) == 2
    assert index.current() is state


def test_claims_counted_forward_change_copies_and_the_live_view_follows(
    store: Store, tmp_path: Path
) -> None:
    """A claim counted in the index replaces its block's view by a copy (as
    `dataclasses.replace` would make it: other holders keep theirs), and the farm view a
    ranking reads (`live_view`) follows the counts without being built again."""
    from thresher.controller.dispatch.views import changed

    clock = FakeClock()
    worker_id = add_worker(store, "w1", clock)
    job_id = store.jobs.create(_spec("a"), now=clock.now())
    index = DispatchIndex(store, clock, ControllerSettings(data_dir=tmp_path))
    state = index.current()
    live = state.live_view
    (block,) = state.blocks.values()
    before = block.view
    assert changed(before, runnable=1) == replace(before, runnable=1)
    with pytest.raises(TypeError):
        changed(before, no_such_field=1)
    claimed = store.dispatch.claim(block.cand, worker_id=worker_id, now=clock.now(), lane=0)
    index.note_claims(state, block, "w1", claimed.assignments)
    assert block.view == replace(before, runnable=before.runnable - 1)
    assert before.runnable == 4  # the old view is untouched
    assert state.live_view is live
    assert live.running_by_job[job_id] == 1 == state.farm_view().running_by_job[job_id]
    assert live.running_by_user["alice"] == 1
