"""Attempts: output, finishes fenced by token, and what a task does next."""

from __future__ import annotations

import dataclasses
import functools
import itertools
import secrets
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from thresher.core.error_hosts import too_short
from thresher.core.errors import StaleAttempt
from thresher.core.model import (
    AttemptRecord,
)
from thresher.core.states import (
    AttemptStatus,
    TaskStatus,
    check_attempt_move,
    task_after_attempt,
)
from thresher.store import tally
from thresher.store.base import Database, Repository, _task_update
from thresher.store.chunking import note_finished_chunks
from thresher.store.error_hosts import broken_definition, record_host_error
from thresher.store.late import accept_late_success
from thresher.store.limits import release_holds
from thresher.store.plain_finish import ENDING_COLUMNS, ENDING_FROM, PlainSuccesses
from thresher.store.prepared import Prepared
from thresher.store.records import (
    FinishReport,
)
from thresher.store.snapshot import forget_held, remember_held
from thresher.store.tables import attempts, blocks, log_lines, tasks, workers
from thresher.store.task_output import (
    MAX_LOG_BYTES_PER_TASK,
    MAX_OUTPUT_PATH,
    LogBudget,
    log_page,
    storable,
)

#: Output files kept per attempt (an engine reports each file it writes).
MAX_OUTPUTS = 10_000


# Statements of the finish path, built once (building one costs more than running it).
_ATTEMPT = Prepared(sa.select(attempts).where(attempts.c.id == sa.bindparam("attempt_id")))
_ENDING = (
    sa.select(*ENDING_COLUMNS)
    .select_from(ENDING_FROM)
    .where(attempts.c.id == sa.bindparam("attempt_id"))
)
_ADD_RUNTIME = (
    blocks.update()
    .where(blocks.c.id == sa.bindparam("block_id"))
    .values(
        runtime_sum=blocks.c.runtime_sum + sa.bindparam("duration"),
        runtime_n=blocks.c.runtime_n + 1,
    )
)


#: The number of the attempt's last numbered line stored (the index walked backwards).
_LAST_LINE_NO = Prepared(
    sa.select(log_lines.c.line_no)
    .where(log_lines.c.attempt_id == sa.bindparam("attempt_id"), log_lines.c.line_no.is_not(None))
    .order_by(log_lines.c.id.desc())
    .limit(1)
)
_INSERT_LINE = Prepared(
    log_lines.insert().values(
        {
            name: sa.bindparam(name, type_=log_lines.c[name].type)
            for name in ("attempt_id", "stream", "text", "line_no")
        }
    )
)

_RECORD_CPU = Prepared(
    attempts.update().where(attempts.c.id == sa.bindparam("a_id")).values(cpu_s=sa.bindparam("cpu"))
)


def _storable_report(report: FinishReport) -> FinishReport:
    """The report with its message as every database can store it."""
    if report.message is None:
        return report
    message = storable(report.message)
    return report if message == report.message else dataclasses.replace(report, message=message)


@functools.lru_cache(maxsize=64)
def _attempt_update(columns: frozenset[str]) -> sa.Update:
    return (
        attempts.update()
        .where(attempts.c.id == sa.bindparam("attempt_id"))
        .values({c: sa.bindparam(f"v_{c}") for c in sorted(columns)})
    )


# A running attempt's output: on the transaction's cursor (a report carries it, often).
_SET_OUTPUTS = Prepared(_attempt_update(frozenset({"outputs"})))
_ATTEMPT_PROGRESS = Prepared(_attempt_update(frozenset({"progress"})))
_TASK_PROGRESS = Prepared(_task_update(frozenset({"progress"})))
_STATUS_MESSAGE = Prepared(_attempt_update(frozenset({"status_message"})))


class Attempts(Repository):
    def __init__(self, db: Database) -> None:
        super().__init__(db)
        self._log_budget = LogBudget()
        self._plain = PlainSuccesses(db.block_fixed)
        tally.install(db.engine)

    def _live_attempt(self, conn: sa.Connection, attempt_id: int, token: str) -> Any:
        row = _ATTEMPT.first(conn, {"attempt_id": attempt_id})
        _check_token(row, attempt_id, token)
        return row

    def record_output(
        self,
        attempt_id: int,
        token: str,
        *,
        lines: Sequence[tuple[str, str]],
        progress: float | None,
        outputs: Sequence[str] = (),
        status_message: str | None = None,
        max_log_bytes: int = MAX_LOG_BYTES_PER_TASK,
        first_line: int | None = None,
        repeat: bool = False,
    ) -> None:
        """Append log lines, progress and written files (engine jobs) of a running attempt.
        Stale token: StaleAttempt. Text is made storable (NULs replaced), and past
        `max_log_bytes` of the task's lines one marker line counts what is dropped
        (`store.task_output`). The lines are numbered from `first_line` (the worker's count);
        a `repeat` batch stores only those numbered past the attempt's last stored line."""
        with self.db.begin() as conn:
            if lines and not self._log_budget.counts(attempt_id):
                # The task's first lines here: what it holds is read with the attempt.
                row = self._log_budget.attempt_and_tally(conn, attempt_id)
                _check_token(row, attempt_id, token)
            else:
                row = self._live_attempt(conn, attempt_id, token)
            # Lines that arrive after the end (buffered by a worker) are still kept; a fenced-off
            # attempt that was lost or preempted gets 409 so its process dies.
            if row.status in (AttemptStatus.LOST.value, AttemptStatus.PREEMPTED.value):
                raise StaleAttempt(f"attempt {attempt_id} was {row.status}", field="token")
            if lines and repeat and first_line is not None:
                last = _LAST_LINE_NO.first(conn, {"attempt_id": attempt_id})
                stored = None if last is None else last.line_no
                if stored is not None and stored >= first_line:
                    lines = lines[stored + 1 - first_line :]
                    first_line = stored + 1
            if lines:
                self._store_lines(conn, row, lines, cap=max_log_bytes, first_line=first_line)
            if outputs:
                known = list(row.outputs or [])
                paths = (storable(p[:MAX_OUTPUT_PATH]) for p in outputs)
                known += [p for p in paths if p not in known][: MAX_OUTPUTS - len(known)]
                _SET_OUTPUTS.run(conn, {"attempt_id": attempt_id, "v_outputs": known})
            if progress is not None and row.status == AttemptStatus.RUNNING.value:
                _ATTEMPT_PROGRESS.run(conn, {"attempt_id": attempt_id, "v_progress": progress})
                _TASK_PROGRESS.run(conn, {"task_id": row.task_id, "v_progress": progress})
            if status_message is not None and row.status == AttemptStatus.RUNNING.value:
                message = storable(status_message)
                _STATUS_MESSAGE.run(conn, {"attempt_id": attempt_id, "v_status_message": message})

    def _store_lines(
        self,
        conn: sa.Connection,
        row: Any,
        lines: Sequence[tuple[str, str]],
        *,
        cap: int,
        first_line: int | None,
    ) -> None:
        admitted = self._log_budget.admit(conn, row.task_id, lines, cap=cap)
        if admitted.lines:
            # The lines kept are the batch's first ones (once one is dropped, all after it are).
            numbers = itertools.count(first_line) if first_line is not None else None
            rows = [
                {
                    "attempt_id": row.id,
                    "stream": s,
                    "text": t,
                    "line_no": None if numbers is None else next(numbers),
                }
                for s, t in admitted.lines
            ]
            _INSERT_LINE.run(conn, rows[0] if len(rows) == 1 else rows)
        if admitted.marker is None:
            return
        if admitted.marker_id is not None:
            conn.execute(
                log_lines.update()
                .where(log_lines.c.id == admitted.marker_id)
                .values(text=admitted.marker)
            )
            return
        marker_id = conn.scalar(
            log_lines.insert()
            .values(attempt_id=row.id, stream="system", text=admitted.marker)
            .returning(log_lines.c.id)
        )
        self._log_budget.marker_written(row.task_id, int(marker_id))

    def finish(self, report: FinishReport, *, now: float) -> int | None:
        """Record how an attempt ended and move its task on. Returns the job id when the job
        may have changed status. A repeated identical report is accepted once more (the worker
        may not have seen our first answer); any other report on an ended attempt is stale."""
        with self.db.begin() as conn:
            return self._finish_in(conn, _storable_report(report), now)

    def finish_many(
        self,
        reports: Sequence[FinishReport],
        *,
        now: float,
        workers: Sequence[int] = (),
    ) -> list[int | StaleAttempt | None]:
        """Several finishes (one worker's report, or the reports of polls run together) in one
        transaction: for each, what `finish_attempt` would return, or the StaleAttempt it
        would raise; the CPU times they report are written with them (those of stale reports
        are not).

        Plain successes (the common case: one per poll, more with short tasks held ahead) are
        written together (`store.plain_finish`: one read, the attempts and tasks, one UPDATE
        per block for the counters, on PostgreSQL at the transaction's end). Anything else
        goes through `finish_attempt`'s path. The read brings the running attempts of the
        `workers` named (the reporting polls' workers): their reconciliations take them
        (`Snapshots.held_after_reports`)."""
        results: dict[int, int | StaleAttempt | None] = {}
        if not reports:
            return []
        reports = [_storable_report(r) for r in reports]
        cpu: list[dict[str, Any]] = []  # the CPU times the others reported
        with self.db.begin() as conn:
            forget_held(conn)  # only the latest finish's read stands
            plain, held = self._plain.select(conn, reports, workers)
            if plain:
                self._plain.write(conn, plain, now)
                results.update({report.attempt_id: row.job_id for report, row in plain})
                if held is not None and len(plain) == len(reports):
                    # The finishes changed nothing else of their workers' attempts: what they
                    # read of them is what the polls' reconciliations would read next.
                    remember_held(conn, held)
            for report in reports:
                if report.attempt_id in results:
                    continue
                try:
                    results[report.attempt_id] = self._finish_in(conn, report, now)
                except StaleAttempt as exc:  # raised before this report wrote anything
                    results[report.attempt_id] = exc
                    continue
                if report.cpu_s is not None:  # a plain success wrote it with its attempt
                    cpu.append({"a_id": report.attempt_id, "cpu": report.cpu_s})
            if cpu:
                _RECORD_CPU.run(conn, cpu)
        return [results[report.attempt_id] for report in reports]

    def _finish_in(self, conn: sa.Connection, report: FinishReport, now: float) -> int | None:
        row = self._live_attempt(conn, report.attempt_id, report.token)
        if row.status != AttemptStatus.RUNNING.value:
            if row.status == report.status.value or row.cancel_reason is not None:
                return None
            if accept_late_success(self.db, conn, row, report, now):
                return int(row.job_id)
            raise StaleAttempt(f"attempt {report.attempt_id} was {row.status}", field="token")
        self.end_attempt(
            conn,
            report.attempt_id,
            report.status,
            now,
            exit_code=report.exit_code,
            peak_rss_bytes=report.peak_rss_bytes,
            duration_s=report.duration_s,
            message=report.message,
            before_start=report.before_start,
        )
        return int(row.job_id)

    def end_attempt(
        self,
        conn: sa.Connection,
        attempt_id: int,
        status: AttemptStatus,
        now: float,
        **values: Any,
    ) -> None:
        """End a running attempt and decide what its task does next, in one transaction."""
        check_attempt_move(AttemptStatus.RUNNING, status)
        row = conn.execute(_ENDING, {"attempt_id": attempt_id}).one()
        if status is AttemptStatus.SUCCEEDED:
            short = too_short(values.get("duration_s"), row.min_runtime_s)
            if short is not None:
                status, values["message"] = AttemptStatus.FAILED, short
        if row.cancel_reason is not None and status is not AttemptStatus.SUCCEEDED:
            status = (
                AttemptStatus.PREEMPTED
                if row.cancel_reason == "preempted"
                else AttemptStatus.CANCELED
            )
        broken = status is AttemptStatus.FAILED and broken_definition(conn, row, values)
        ended = {"status": status.value, "ended_at": now, **values}
        conn.execute(
            _attempt_update(frozenset(ended)),
            {"attempt_id": attempt_id, **{f"v_{k}": v for k, v in ended.items()}},
        )
        if row.limits:
            release_holds(conn, attempt_id)
        if status in (AttemptStatus.FAILED, AttemptStatus.TIMED_OUT):
            record_host_error(
                conn, worker_id=row.worker_id, job_id=row.job_id, block_id=row.block_id, now=now
            )
        if status is AttemptStatus.SUCCEEDED and values.get("duration_s") is not None:
            conn.execute(_ADD_RUNTIME, {"block_id": row.block_id, "duration": values["duration_s"]})
        new, counted = task_after_attempt(
            status,
            failures=row.failures,
            retries=0 if broken else row.retries,
            job_canceled=row.canceled,
            cancel_reason=row.cancel_reason,
        )
        extra = {"failures": row.failures + 1, "failed_worker_id": row.worker_id} if counted else {}
        self.db.move_task(conn, row.task_id, row.block_id, TaskStatus.RUNNING, new, now, **extra)
        if status is AttemptStatus.SUCCEEDED:  # adaptive chunks
            note_finished_chunks(conn, [(row, values.get("duration_s"))])

    def stop_task(self, job_id: int, block_index: int, index: int, reason: str) -> bool:
        """Ask the worker running this task to stop it (for skip or retry of a running task)."""
        with self.db.begin() as conn:
            block = self.db.block_row(conn, job_id, block_index)
            task_id = conn.scalar(
                sa.select(tasks.c.id).where(tasks.c.block_id == block.id, tasks.c.idx == index)
            )
            if task_id is None:
                return False
            return (
                conn.execute(
                    attempts.update()
                    .where(
                        attempts.c.task_id == task_id,
                        attempts.c.status == AttemptStatus.RUNNING.value,
                    )
                    .values(cancel_reason=reason)
                ).rowcount
                > 0
            )

    @staticmethod
    def _attempt_query() -> sa.Select[Any]:
        return (
            sa.select(
                attempts,
                tasks.c.idx.label("task_index"),
                blocks.c.idx.label("block_index"),
                workers.c.name.label("worker_name"),
            )
            .select_from(
                attempts.join(tasks, tasks.c.id == attempts.c.task_id)
                .join(blocks, blocks.c.id == tasks.c.block_id)
                .join(workers, workers.c.id == attempts.c.worker_id)
            )
            .order_by(attempts.c.id)
        )

    @staticmethod
    def _attempt_record(r: Any) -> AttemptRecord:
        return AttemptRecord(
            id=r.id,
            job_id=r.job_id,
            block_index=r.block_index,
            task_index=r.task_index,
            worker_id=r.worker_id,
            worker=r.worker_name,
            status=AttemptStatus(r.status),
            cancel_reason=r.cancel_reason,
            created_at=r.created_at,
            ended_at=r.ended_at,
            exit_code=r.exit_code,
            peak_rss_bytes=r.peak_rss_bytes,
            duration_s=r.duration_s,
            message=r.message,
            progress=r.progress,
            engine_revision=r.engine_revision,
            outputs=tuple(r.outputs or ()),
            status_message=r.status_message,
            cpu_s=r.cpu_s,
        )

    def of_task(self, job_id: int, block_index: int, index: int) -> list[AttemptRecord]:
        with self.db.connect() as conn:
            block = self.db.block_row(conn, job_id, block_index)
            rows = conn.execute(
                self._attempt_query().where(tasks.c.block_id == block.id, tasks.c.idx == index)
            ).all()
        return [self._attempt_record(r) for r in rows]

    def of_job(self, job_id: int) -> list[AttemptRecord]:
        with self.db.connect() as conn:
            rows = conn.execute(self._attempt_query().where(attempts.c.job_id == job_id)).all()
        return [self._attempt_record(r) for r in rows]

    def task_log(
        self, job_id: int, block_index: int, index: int, *, after_id: int = 0, limit: int = 10_000
    ) -> list[tuple[int, int, str, str]]:
        """(line id, attempt id, stream, text) of every attempt of the task, oldest first."""
        with self.db.connect() as conn:
            block = self.db.block_row(conn, job_id, block_index)
            return log_page(conn, block.id, index, after_id=after_id, limit=limit)[0]

    def log_page(
        self,
        job_id: int,
        block_index: int,
        index: int,
        *,
        after_id: int = 0,
        limit: int = 10_000,
        max_bytes: int = 1 << 30,
    ) -> tuple[list[tuple[int, int, str, str]], bool]:
        """A page of the task's log (see `task_output.log_page`), and whether more follow."""
        with self.db.connect() as conn:
            block = self.db.block_row(conn, job_id, block_index)
            return log_page(
                conn, block.id, index, after_id=after_id, limit=limit, max_bytes=max_bytes
            )


def _check_token(row: Any, attempt_id: int, token: str) -> None:
    """StaleAttempt unless `row` is the attempt and `token` its token."""
    if row is None or not secrets.compare_digest(row.token, token):
        raise StaleAttempt(f"attempt {attempt_id} is not current", field="token")
