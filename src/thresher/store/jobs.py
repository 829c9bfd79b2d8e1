"""Jobs and their blocks; statuses derived from the block counters; the tasks that can
never run (they wait on a task failed for good) marked as such."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import Any

import sqlalchemy as sa

from thresher.core.deps import JobDeps, job_deps
from thresher.core.errors import NotFound
from thresher.core.model import (
    BlockRecord,
    BlockSpec,
    Counts,
    JobRecord,
    JobSpec,
    derive_job_status,
    failure_reason,
)
from thresher.core.states import AttemptStatus, JobStatus, TaskStatus
from thresher.store import ranges, tally
from thresher.store.base import Database, Repository, _counts
from thresher.store.job_statements import (
    INSERT_BLOCKS,
    JOB_AS,
    SETTLED,
    STAMP,
    STAMP_AND_EMIT,
    insert_job_and_event,
    insert_job_event_block,
    insert_row,
)
from thresher.store.plain_finish import know_block
from thresher.store.tables import attempts, blocks, events, jobs, log_lines, tasks
from thresher.store.tables_dispatch import block_deltas
from thresher.store.tasks import move_many, unmark

_BLOCK_FIELDS = tuple(f.name for f in dataclasses.fields(BlockSpec))
_JOB_FIELDS = tuple(f.name for f in dataclasses.fields(JobSpec) if f.name != "blocks")
_BLOCK_STATE = {
    "cursor": 0,
    "n_queued": 0,
    "n_running": 0,
    "n_succeeded": 0,
    "n_failed": 0,
    "n_skipped": 0,
    "n_canceled": 0,
    "runtime_sum": 0.0,
    "runtime_n": 0,
}


def _column(value: Any) -> Any:
    """A spec's value as its column holds it (JSON columns hold lists and objects)."""
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, Mapping):
        return dict(value)
    return value


def _field(value: Any) -> Any:
    """A column's value as a spec holds it (frozen: lists become tuples)."""
    return tuple(value) if isinstance(value, list) else value


def block_spec_of(row: Any) -> BlockSpec:
    """The spec of a block row: every field of `BlockSpec` is a column of the same name."""
    return BlockSpec(**{name: _field(getattr(row, name)) for name in _BLOCK_FIELDS})


def job_spec_of(row: Any, blocks: tuple[BlockSpec, ...]) -> JobSpec:
    """The spec of a job row: every field of `JobSpec` but its blocks is a column."""
    return JobSpec(blocks=blocks, **{name: _field(getattr(row, name)) for name in _JOB_FIELDS})


class _Row:
    """A row written, read like a result row (attributes by column name)."""

    def __init__(self, values: Mapping[str, Any]) -> None:
        self.__dict__.update(values)


def _read_back(table: sa.Table, row: Mapping[str, Any]) -> dict[str, Any]:
    """The values of a row written as reading it back gives them: JSON columns through JSON
    (tuples become lists, keys strings). The row names every column `_job_record` reads."""
    out = dict(row)
    for name in _JSON_COLUMNS[table.name]:
        if out.get(name) is not None:
            out[name] = json.loads(json.dumps(out[name]))
    return out


_JSON_COLUMNS = {
    t.name: tuple(c.name for c in t.columns if isinstance(c.type, sa.JSON)) for t in (jobs, blocks)
}


def dependency_state(db: Database, conn: sa.Connection, after: Iterable[int]) -> JobDeps:
    """How the jobs in `after` hold a job back (`core.deps.job_deps`): read in `conn`."""
    ids = list(after)
    if not ids:
        return JobDeps()
    dep_jobs = conn.execute(
        sa.select(jobs.c.id, jobs.c.paused, jobs.c.canceled, jobs.c.after).where(jobs.c.id.in_(ids))
    ).all()
    dep_blocks = db.block_records(conn, [r.id for r in dep_jobs])
    # A job they wait on that was deleted makes them fail: one level down is all it takes.
    theirs = {i for r in dep_jobs for i in r.after or ()}
    existing = set(conn.scalars(sa.select(jobs.c.id).where(jobs.c.id.in_(theirs))))
    statuses = {
        r.id: derive_job_status(
            counts=sum((_counts(b) for b in dep_blocks.get(r.id, [])), Counts()),
            paused=r.paused,
            canceled=r.canceled,
            deps_pending=False,
            deps_broken=any(i not in existing for i in r.after or ()),
        )
        for r in dep_jobs
    }
    return job_deps(ids, statuses)


class Jobs(Repository):
    def create(self, spec: JobSpec, *, now: float) -> int:
        """Insert a compiled job and its blocks. No task rows: tasks are computed from the
        blocks. The spec was checked when it was compiled; the store only keeps it."""
        return self.add(spec, now=now).id

    def add(
        self,
        spec: JobSpec,
        *,
        now: float,
        event: Callable[[JobRecord], Mapping[str, Any]] | None = None,
    ) -> JobRecord:
        """`create`, returning the job's record as `get` would read it, built from the rows
        written (their JSON values as they read back) rather than read again. `event`: the
        row of the event telling of it (`store.events.event_row`), from its record, written
        with the job's row (one statement on PostgreSQL)."""
        with self.db.begin() as conn:
            if spec.after:
                found = conn.scalars(sa.select(jobs.c.id).where(jobs.c.id.in_(spec.after))).all()
                missing = sorted(set(spec.after) - set(found))
                if missing:
                    raise NotFound(f"job {missing[0]} does not exist", field="after")
            job_row = {
                "canceled": False,
                "created_at": now,
                "finished_at": None,
                **{name: _column(getattr(spec, name)) for name in _JOB_FIELDS},
            }
            block_rows = [
                {
                    "idx": index,
                    **_BLOCK_STATE,
                    **{name: _column(getattr(block, name)) for name in _BLOCK_FIELDS},
                }
                for index, block in enumerate(spec.blocks)
            ]
            # The record before its rows have ids (its status and counts are the event's).
            unnumbered = self._job_record(
                conn,
                _Row({"id": 0, **_read_back(jobs, job_row)}),
                [_Row({"id": 0, "job_id": 0, **_read_back(blocks, r)}) for r in block_rows],
            )
            event_row = event(unnumbered) if event is not None else None
            job_id, ids = self._write(conn, job_row, block_rows, event_row)
            if tally.enabled(conn):  # PostgreSQL: the claims and finishes to come read less
                for block_id, row in zip(ids, block_rows, strict=True):
                    tally.inserted(conn, block_id, row["task_count"])
                    know_block(self.db.block_fixed, block_id, row)
            numbered = tuple(
                dataclasses.replace(b, id=i, job_id=job_id)
                for b, i in zip(unnumbered.blocks, ids, strict=True)
            )
            return dataclasses.replace(unnumbered, id=job_id, blocks=numbered)

    @staticmethod
    def _write(
        conn: sa.Connection,
        job_row: dict[str, Any],
        block_rows: list[dict[str, Any]],
        event: Mapping[str, Any] | None,
    ) -> tuple[int, list[int]]:
        """The job's row, its event and its blocks' rows written: (its id, its blocks' ids in
        order). One statement on PostgreSQL for a job of one block (the common case), two for
        a bigger one; on SQLite (no round trips there) one per row."""
        on_pg = conn.dialect.name == "postgresql"
        events_of = {f"e_{k}": v for k, v in (event or {}).items() if k != "job_id"}
        values = {f"j_{k}": v for k, v in job_row.items()}
        if event is not None and on_pg and len(block_rows) == 1:
            given = {k: v for k, v in block_rows[0].items() if k not in _BLOCK_STATE}
            statement = insert_job_event_block(job_row, given, _BLOCK_STATE)
            values.update({f"b_{k}": v for k, v in given.items()})
            got = statement.first(conn, {**values, **events_of})
            return int(got.job_id), [int(got.id)]
        if event is not None and on_pg:
            got = insert_job_and_event(job_row).first(conn, {**values, **events_of})
            job_id = int(got.job_id)
        else:
            job_id = int(insert_row(jobs, job_row, returning_id=True).first(conn, job_row).id)
            if event is not None:
                row = {**event, "job_id": job_id}
                insert_row(events, row).run(conn, row)
        for row in block_rows:
            row["job_id"] = job_id
        if on_pg and len(block_rows) > 1:
            return job_id, list(conn.scalars(INSERT_BLOCKS, block_rows).all())
        return job_id, [
            int(insert_row(blocks, row, returning_id=True).first(conn, row).id)
            for row in block_rows
        ]

    def payload(self, job_id: int) -> Mapping[str, Any]:
        """The job's payload alone (NotFound if there is no such job)."""
        with self.db.connect() as conn:
            value = conn.scalar(sa.select(jobs.c.payload).where(jobs.c.id == job_id))
        if value is None:
            raise NotFound(f"job {job_id} does not exist", field="job_id")
        return dict(value)

    def _job_record(self, conn: sa.Connection, row: Any, block_rows: list[Any]) -> JobRecord:
        block_recs = tuple(
            BlockRecord(
                id=b.id,
                job_id=b.job_id,
                index=b.idx,
                spec=block_spec_of(b),
                cursor=b.cursor,
                counts=_counts(b),
                mean_runtime_s=(b.runtime_sum / b.runtime_n) if b.runtime_n else None,
            )
            for b in block_rows
        )
        counts = sum((b.counts for b in block_recs), Counts())
        deps = JobDeps()
        if row.after and counts.done != counts.total:
            deps = dependency_state(self.db, conn, row.after)
        status = derive_job_status(
            counts=counts,
            paused=row.paused,
            canceled=row.canceled,
            deps_pending=deps.waiting is not None,
            deps_broken=deps.broken is not None,
        )
        reason = None
        if status is JobStatus.WAITING:
            reason = deps.waiting
        elif status is JobStatus.FAILED:
            reason = deps.broken or failure_reason([(b.spec.name, b.counts) for b in block_recs])
        return JobRecord(
            id=row.id,
            spec=job_spec_of(row, tuple(b.spec for b in block_recs)),
            canceled=row.canceled,
            created_at=row.created_at,
            finished_at=row.finished_at,
            counts=counts,
            status=status,
            status_reason=reason,
            blocks=block_recs,
        )

    def missing(self, ids: Iterable[int]) -> list[int]:
        """Which of these job ids do not exist, sorted."""
        wanted = set(ids)
        if not wanted:
            return []
        with self.db.connect() as conn:
            found = set(conn.scalars(sa.select(jobs.c.id).where(jobs.c.id.in_(wanted))))
        return sorted(wanted - found)

    def get(self, job_id: int) -> JobRecord:
        with self.db.connect() as conn:
            row = conn.execute(sa.select(jobs).where(jobs.c.id == job_id)).first()
            if row is None:
                raise NotFound(f"job {job_id} does not exist", field="job_id")
            return self._job_record(
                conn, row, self.db.block_records(conn, [job_id]).get(job_id, [])
            )

    def page(
        self,
        *,
        owner: str | None = None,
        owners: Collection[str] | None = None,
        statuses: Iterable[JobStatus] = (),
        limit: int = 100,
        offset: int = 0,
    ) -> list[JobRecord]:
        """Newest first; `owners` (None: anyone) bounds what the caller may see. Status is
        derived, so a status filter is applied after the counts."""
        wanted = set(statuses)
        query = sa.select(jobs).order_by(jobs.c.id.desc())
        if owner:
            query = query.where(jobs.c.owner == owner)
        if owners is not None:
            query = query.where(jobs.c.owner.in_(sorted(owners)))
        out: list[JobRecord] = []
        skipped = 0
        with self.db.connect() as conn:
            page = 500
            start = 0
            while len(out) < limit:
                rows = conn.execute(query.limit(page).offset(start)).all()
                if not rows:
                    break
                start += page
                by_job = self.db.block_records(conn, [r.id for r in rows])
                for row in rows:
                    record = self._job_record(conn, row, by_job.get(row.id, []))
                    if wanted and record.status not in wanted:
                        continue
                    if skipped < offset:
                        skipped += 1
                        continue
                    out.append(record)
                    if len(out) >= limit:
                        break
        return out

    def set_flags(
        self, job_id: int, *, paused: bool | None = None, canceled: bool | None = None
    ) -> None:
        values: dict[str, Any] = {}
        if paused is not None:
            values["paused"] = paused
        if canceled is not None:
            values["canceled"] = canceled
        with self.db.begin() as conn:
            if (
                conn.execute(jobs.update().where(jobs.c.id == job_id).values(**values)).rowcount
                != 1
            ):
                raise NotFound(f"job {job_id} does not exist", field="job_id")

    def set_priority(self, job_id: int, priority: int) -> None:
        with self.db.begin() as conn:
            result = conn.execute(
                jobs.update().where(jobs.c.id == job_id).values(priority=priority)
            )
            if result.rowcount != 1:
                raise NotFound(f"job {job_id} does not exist", field="job_id")

    def request_stop_running(self, job_id: int, reason: str) -> int:
        """Mark the job's running attempts to be stopped at their worker's next poll."""
        with self.db.begin() as conn:
            return int(
                conn.execute(
                    attempts.update()
                    .where(
                        attempts.c.job_id == job_id,
                        attempts.c.status == AttemptStatus.RUNNING.value,
                        attempts.c.cancel_reason.is_(None),
                    )
                    .values(cancel_reason=reason)
                ).rowcount
            )

    def withdraw_stop_requests(self, job_id: int, reason: str) -> int:
        """Running attempts asked to stop for `reason` (a pause, a cancel) may go on after all;
        a worker that already stopped one reports it, and the task is requeued."""
        with self.db.begin() as conn:
            return int(
                conn.execute(
                    attempts.update()
                    .where(
                        attempts.c.job_id == job_id,
                        attempts.c.status == AttemptStatus.RUNNING.value,
                        attempts.c.cancel_reason == reason,
                    )
                    .values(cancel_reason=None)
                ).rowcount
            )

    def requeue_tasks(self, job_id: int, statuses: Iterable[TaskStatus], *, now: float) -> int:
        """Put the job's tasks in `statuses` back in the queue, with their failures forgiven (a
        task marked as never run that never had an attempt goes back to waiting)."""
        moved = 0
        with self.db.begin() as conn:
            rows = conn.execute(
                sa.select(tasks.c.block_id, tasks.c.idx, tasks.c.status, tasks.c.attempts).where(
                    tasks.c.job_id == job_id, tasks.c.status.in_([s.value for s in statuses])
                )
            ).all()
            groups: dict[tuple[int, str], list[int]] = {}
            fresh: dict[int, set[int]] = {}
            for row in rows:
                groups.setdefault((row.block_id, row.status), []).append(row.idx)
                if row.status == TaskStatus.CANCELED.value and not row.attempts:
                    fresh.setdefault(row.block_id, set()).add(row.idx)
            for (block_id, status), indices in groups.items():
                if TaskStatus(status) is TaskStatus.CANCELED:
                    moved += unmark(
                        self.db, conn, block_id, indices, fresh.get(block_id, set()), now
                    )
                    continue
                moved += move_many(
                    conn, block_id, indices, TaskStatus(status), TaskStatus.QUEUED, now
                )
            conn.execute(
                tasks.update()
                .where(tasks.c.job_id == job_id, tasks.c.status == TaskStatus.QUEUED.value)
                .values(failures=0)
            )
            conn.execute(jobs.update().where(jobs.c.id == job_id).values(finished_at=None))
        return moved

    def waiting_on(self, job_id: int) -> list[int]:
        """The unfinished jobs that wait on job `job_id` (`after`), oldest first."""
        return self.waiting_on_any([job_id])

    def waiting_on_any(self, job_ids: Iterable[int]) -> list[int]:
        """The unfinished jobs that wait on any of `job_ids`, oldest first: one read, however
        many jobs ended."""
        ended = set(job_ids)
        with self.db.connect() as conn:
            rows = conn.execute(
                sa.select(jobs.c.id, jobs.c.after)
                .where(jobs.c.finished_at.is_(None))
                .order_by(jobs.c.id)
            ).all()
        return [r.id for r in rows if r.id not in ended and ended.intersection(r.after or ())]

    def delete(self, job_id: int) -> None:
        with self.db.begin() as conn:
            attempt_ids = sa.select(attempts.c.id).where(attempts.c.job_id == job_id)
            conn.execute(log_lines.delete().where(log_lines.c.attempt_id.in_(attempt_ids)))
            conn.execute(attempts.delete().where(attempts.c.job_id == job_id))
            conn.execute(tasks.delete().where(tasks.c.job_id == job_id))
            block_ids = list(conn.scalars(sa.select(blocks.c.id).where(blocks.c.job_id == job_id)))
            conn.execute(block_deltas.delete().where(block_deltas.c.block_id.in_(block_ids)))
            conn.execute(blocks.delete().where(blocks.c.job_id == job_id))
            if conn.execute(jobs.delete().where(jobs.c.id == job_id)).rowcount != 1:
                raise NotFound(f"job {job_id} does not exist", field="job_id")
        self.db.forget_layouts()
        ranges.forget(self.db.engine, block_ids)  # positions this process held of them

    def settled(self, job_id: int) -> JobRecord | None:
        """The job's record, unless it is certainly not final: not canceled, and some of its
        tasks still running or left to run (None then, and for a job that does not exist).
        One statement, the check and the read together: a job's end costs no read of its own,
        and a finish that leaves the job unfinished only the check."""
        with self.db.connect() as conn:
            rows = SETTLED.all(conn, {"job_id": job_id})
            if not rows:
                return None
            first = rows[0]._asdict()
            job_row = _Row({k[len(JOB_AS) :]: v for k, v in first.items() if k.startswith(JOB_AS)})
            return self._job_record(conn, job_row, [r for r in rows if r.id is not None])

    def mark_finished(
        self,
        job_id: int,
        now: float,
        *,
        event: Mapping[str, Any] | None = None,
        block_ids: Iterable[int] = (),
    ) -> bool:
        """Stamp the job's finish time, and where it was stamped now, write `event` (a row of
        `store.events.event_row`: the job's end told); False if it was stamped already (and no
        event written). One statement on PostgreSQL, two on SQLite. The positions this
        process holds of the job's blocks (`block_ids`, PostgreSQL's ranges) are let go: a
        canceled job's would stay in memory for good, and a retry finds them again below the
        cursor (`cursor._gaps`)."""
        ranges.forget(self.db.engine, block_ids)
        stamp = {"stamp_job": job_id, "stamp_at": now}
        with self.db.begin() as conn:
            if event is not None and conn.dialect.name == "postgresql":
                values = {f"e_{k}": v for k, v in event.items() if k != "job_id"}
                return STAMP_AND_EMIT.first(conn, {**stamp, **values}) is not None
            if STAMP.run(conn, stamp) == 0:
                return False
            if event is not None:
                insert_row(events, event).run(conn, event)
            return True
