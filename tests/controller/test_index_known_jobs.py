"""A job submitted here joins the dispatch index from its record as written, not read back,
leaving what a rebuild reads (SQLite and PostgreSQL), whatever decides eligibility; a job
waiting on others is still read (whether it waits is the store's to say)."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import pytest
from tests.controller.test_dispatch_index import _farm, _seen, _spec
from tests.store.support import block

from thresher.controller.dispatch import DispatchIndex
from thresher.controller.notifications import job_event_row
from thresher.controller.settings import ControllerSettings
from thresher.core.events import EventKind
from thresher.store.store import Store
from thresher.testing import FakeClock


def test_known_jobs_join_the_index_as_a_rebuild_reads_them_without_a_read(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = FakeClock()
    settings = ControllerSettings(data_dir=tmp_path)
    first = _farm(store, clock)
    index = DispatchIndex(store, clock, settings)
    built_before = index.current()
    read: list[Sequence[int]] = []
    job_blocks = store.snapshot.job_blocks

    def counted(ids: Sequence[int]) -> object:
        read.append(list(ids))
        return job_blocks(ids)

    monkeypatch.setattr(store.snapshot, "job_blocks", counted)
    specs = [
        _spec("pooled", filters="pool:~sim"),
        _spec("limited", block("main", "1-3", 1, limits=("lic",)), owner="bob", max_running=1),
        _spec(
            "steps",
            block("a", "1-2", 1),
            block("b", "1-2", 1, after=(0,), host_filters="os:linux"),
            block("c", "1-2", 1, after_frames=(0,), priority_frames="2", preview_every=2),
        ),
        _spec("after", after=(first,)),  # read: it waits on another job
        _spec("paused", paused=True, filters="pool:+sim", max_running_per_host=1, preempt=True),
        _spec("empty", replace(block("main", "1", 1), task_count=0)),
    ]
    waiting = None
    for spec in specs:
        clock.advance(0.01)
        now = clock.now()
        event = functools.partial(job_event_row, kind=EventKind.JOB_SUBMITTED, now=now)
        job = store.jobs.add(spec, now=now, event=event)
        if spec.after:
            waiting = job.id
        index.know_job(job)
        index.add_jobs([job.id])
    state = index.current()
    assert state is built_before  # taken in, not rebuilt
    assert read == [[waiting]]
    rebuilt = DispatchIndex(store, clock, settings)
    assert _seen(index, state) == _seen(rebuilt, rebuilt.current())


def test_a_known_job_rolled_back_is_forgotten(store: Store, tmp_path: Path) -> None:
    clock = FakeClock()
    index = DispatchIndex(store, clock, ControllerSettings(data_dir=tmp_path))
    index.current()
    job = store.jobs.add(_spec("one"), now=clock.now())
    index.know_job(job)
    index.rolled_back()  # its transaction did not commit: the index is rebuilt from the store
    assert index._known == {}
    assert len(index.current().blocks) == 1  # (this store did commit it)
