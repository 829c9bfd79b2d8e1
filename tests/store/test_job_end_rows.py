"""A job's rows and its end as the store writes them, on SQLite and PostgreSQL: a submitted
job's event written with its row, the end read in one statement only once nothing of the job
runs or waits (`Jobs.settled`), and its finish stamped with its event once, never twice."""

from __future__ import annotations

from typing import Any

import pytest

from tests.store.support import add_worker, block, claim
from thresher.core.events import EventKind
from thresher.core.model import Counts, JobRecord, JobSpec
from thresher.core.states import AttemptStatus, JobStatus
from thresher.store import job_statements, tables
from thresher.store.events import event_row
from thresher.store.prepared import Prepared
from thresher.store.store import FinishReport, Store
from thresher.testing import FakeClock


def spec(frames: str = "1-2", *, blocks: int = 1) -> JobSpec:
    return JobSpec(
        name="job",
        owner="u",
        priority=50,
        kind="command",
        blocks=tuple(block(f"b{i}", frames, 1) for i in range(blocks)),
    )


def kinds_of(store: Store, job_id: int) -> list[str]:
    return [e.kind for e in store.events.recent(job_id=job_id)]


def test_a_job_is_added_with_its_event_naming_its_id(store: Store, clock: FakeClock) -> None:
    """GIVEN a submission with an event made from its record, WHEN it is added, THEN the
    event names the job's id and status, and the record is the one `get` reads."""
    told: list[JobStatus] = []

    def event(job: JobRecord) -> dict[str, object]:
        assert job.id == 0  # not written yet: no id
        told.append(job.status)
        return event_row(EventKind.JOB_SUBMITTED, now=clock.now(), owner="u", data={"n": 1})

    # one statement on PostgreSQL for one block; the blocks apart for more
    added = [store.jobs.add(spec(blocks=n), now=clock.now(), event=event) for n in (1, 3)]

    assert told == [JobStatus.QUEUED] * 2
    for job, n in zip(added, (1, 3), strict=True):
        assert job == store.jobs.get(job.id)
        assert kinds_of(store, job.id) == [EventKind.JOB_SUBMITTED.value]
        assert [(b.job_id, b.index) for b in job.blocks] == [(job.id, i) for i in range(n)]
        assert len({b.id for b in job.blocks}) == n


def test_the_end_is_read_only_once_nothing_of_the_job_runs_or_waits(
    store: Store, clock: FakeClock
) -> None:
    """GIVEN a job of two tasks, THEN `settled` is None while one runs or waits, and the
    job's final record once both are done; a job that does not exist is None too."""
    job_id = store.jobs.create(spec(), now=clock.now())
    worker = add_worker(store, "w1", clock)
    assert store.jobs.settled(job_id) is None  # waiting
    done = []
    for _ in range(2):
        got = claim(store, worker, now=clock.now())
        assert got is not None
        assert store.jobs.settled(job_id) is None  # running
        store.attempts.finish(
            FinishReport(got.attempt_id, got.token, AttemptStatus.SUCCEEDED), now=clock.now()
        )
        done.append(store.jobs.settled(job_id))
    assert done[0] is None  # one left to run
    assert done[1] == store.jobs.get(job_id)
    assert done[1].status is JobStatus.SUCCEEDED
    assert store.jobs.settled(job_id + 1000) is None


def test_a_canceled_job_is_read_while_its_tasks_still_run(store: Store, clock: FakeClock) -> None:
    job_id = store.jobs.create(spec(), now=clock.now())
    assert claim(store, add_worker(store, "w1", clock), now=clock.now()) is not None
    store.jobs.set_flags(job_id, canceled=True)
    settled = store.jobs.settled(job_id)
    assert settled is not None
    assert settled.status is JobStatus.CANCELED


def test_the_finish_is_stamped_with_its_event_once(store: Store, clock: FakeClock) -> None:
    """GIVEN a job, WHEN its finish is stamped twice with an event, THEN the first stamps it
    and writes the event, the second does neither."""
    job_id = store.jobs.create(spec(), now=clock.now())
    row = event_row(EventKind.JOB_CANCELED, now=clock.now(), job_id=job_id, owner="u")
    assert store.jobs.mark_finished(job_id, clock.now(), event=row)
    clock.advance(5)
    assert not store.jobs.mark_finished(job_id, clock.now(), event=row)
    assert kinds_of(store, job_id) == [EventKind.JOB_CANCELED.value]
    assert store.jobs.get(job_id).finished_at == clock.now() - 5
    other = store.jobs.create(spec(), now=clock.now())
    assert store.jobs.mark_finished(other, clock.now())  # without an event: none written
    assert kinds_of(store, other) == []


def test_the_job_statements_are_built_once_per_shape() -> None:
    """The statements of a job's rows and its end are built once per set of columns and run
    as `Prepared` (compiled once per database): compiling the job's insert on every
    submission once cost the held poll's claim 8 ms on PostgreSQL."""
    columns = ["name", "owner", "created_at"]
    builders = [
        lambda: job_statements.insert_job_event_block(columns, ["idx", "name", "task_count"]),
        lambda: job_statements.insert_job_and_event(columns),
        lambda: job_statements.insert_row(tables.jobs, columns, returning_id=True),
    ]
    for build in builders:
        first = build()
        assert isinstance(first, Prepared)
        assert build() is first
    assert job_statements.insert_row(tables.jobs, columns) is not builders[2]()
    assert isinstance(job_statements.STAMP_AND_EMIT, Prepared)
    assert isinstance(job_statements.SETTLED, Prepared)


def test_a_submissions_statement_is_one_psycopg_keeps_converted(
    store: Store, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL: a job of one block is written by one statement, whose counters are written
    into its text: with them as parameters it had 53, and psycopg, which keeps the converted
    text of statements of at most 50 parameters, converted it again at every submission (1.4
    to 2 ms more each here). Its rows are as before."""
    if store.dialect != "postgresql":
        pytest.skip("psycopg's statements: PostgreSQL")
    import psycopg._queries as queries

    converted_again: list[bytes] = []
    uncached = queries._query2pg_nocache

    def spied(query: bytes, encoding: str) -> Any:
        converted_again.append(query)
        return uncached(query, encoding)

    monkeypatch.setattr(queries, "_query2pg_nocache", spied)
    event = event_row(EventKind.JOB_SUBMITTED, now=clock.now(), owner="u")
    job = store.jobs.add(spec("1-3"), now=clock.now(), event=lambda j: event)
    assert converted_again == []
    (written,) = store.jobs.get(job.id).blocks
    assert (written.cursor, written.counts, written.mean_runtime_s) == (0, Counts(total=3), None)
    assert kinds_of(store, job.id) == [EventKind.JOB_SUBMITTED.value]
