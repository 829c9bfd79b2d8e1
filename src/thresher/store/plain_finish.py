"""Plain successes of a worker's report, or of the polls run together, written together
(`Attempts.finish_many`).

A plain success is the common finish: right token, attempt running, no stop asked, job not
canceled, no limits to give back, not under the minimum run time. They are read with one
statement (with the reporting workers' other running attempts) and written with one UPDATE
of the attempts (the CPU time the worker measured included) and one of the tasks (on
PostgreSQL one statement for both), and their
block counters with one UPDATE per block (on PostgreSQL gathered for the transaction's end,
`store.tally`).

On PostgreSQL the read leaves out the block's row: a lookup of the hot row walks every
version a held snapshot keeps; what the finish needs of the block never changes after
submission (`_BlockFixed`) and is read once per block and kept.
"""

from __future__ import annotations

import dataclasses
import json
import secrets
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa

from thresher.core.error_hosts import too_short
from thresher.core.states import AttemptStatus, TaskStatus
from thresher.store import local_tally, tally
from thresher.store.base import _task_update
from thresher.store.chunking import note_finished_chunks
from thresher.store.prepared import Prepared
from thresher.store.records import FinishReport
from thresher.store.tables import attempts, blocks, jobs, tasks

ENDING_COLUMNS = (
    attempts.c.task_id,
    attempts.c.worker_id,
    attempts.c.job_id,
    attempts.c.cancel_reason,
    tasks.c.block_id,
    tasks.c.failures,
    blocks.c.retries,
    blocks.c.min_runtime_s,
    blocks.c.chunk,
    blocks.c.limits,
    jobs.c.canceled,
)
ENDING_FROM = (
    attempts.join(tasks, tasks.c.id == attempts.c.task_id)
    .join(blocks, blocks.c.id == tasks.c.block_id)
    .join(jobs, jobs.c.id == blocks.c.job_id)
)
# The held attempts' columns (`store.snapshot.HELD_ATTEMPTS`), read with the finishes.
_HELD_COLUMNS = (
    attempts.c.lane,
    attempts.c.capacity,
    attempts.c.created_at,
    jobs.c.owner,
    jobs.c.priority,
)


def _with_held(columns: Sequence[Any], from_: Any, among: Callable[[Any, str], Any]) -> Prepared:
    """The finishes' attempts (`among(column, "ids")`: the column is one of the `ids` given)
    and, in the same statement, the running attempts of the reporting workers (the `workers`
    given): what their polls' reconciliations read next (`Snapshots.held_after_reports`), a
    statement and on PostgreSQL a round trip less per poll, one statement for a group of
    polls run together. One scan of `attempts` by its two indexes (the planner's bitmap OR),
    one join tree: cheap to plan, as PostgreSQL does for each run while it keeps a custom plan
    (a union of two joins with a semi-join took longer to plan than to run). Of the block it
    reads only columns that never change after submission."""
    return Prepared(
        sa.select(*columns, *_HELD_COLUMNS)
        .select_from(from_)
        .where(
            sa.or_(
                among(attempts.c.id, "ids"),
                sa.and_(
                    among(attempts.c.worker_id, "workers"),
                    attempts.c.status == AttemptStatus.RUNNING.value,
                ),
            )
        ),
        tally_safe=True,
    )


def _in_array(column: Any, name: str) -> Any:
    """PostgreSQL: the column is one of the values of parameter `name` (one array: one
    statement text for any number, compiled once)."""
    return column == sa.any_(sa.cast(sa.bindparam(name), sa.ARRAY(sa.BigInteger)))


def _in_json(column: Any, name: str) -> Any:
    """SQLite: the column is one of the values of parameter `name` (a JSON array: one
    statement text for any number, compiled once, where an expanding `IN` is rendered per
    count)."""
    values = sa.func.json_each(sa.bindparam(name, type_=sa.Text)).table_valued("value")
    return column.in_(sa.select(values.c.value))


# SQLite: with the block's fixed columns.
_ENDING_HELD = _with_held(
    (attempts.c.id, attempts.c.token, attempts.c.status, *ENDING_COLUMNS), ENDING_FROM, _in_json
)
# PostgreSQL: without the block's row (see above), the task's block by its primary key for
# each row (a join let the planner hash the whole tasks table when it misjudged the rows: a
# scan that grows with the farm).
_PLAIN_HELD = _with_held(
    (
        attempts.c.id,
        attempts.c.token,
        attempts.c.status,
        attempts.c.task_id,
        attempts.c.worker_id,
        attempts.c.job_id,
        attempts.c.cancel_reason,
        sa.select(tasks.c.block_id)
        .where(tasks.c.id == attempts.c.task_id)
        .scalar_subquery()
        .label("block_id"),
        jobs.c.canceled,
    ),
    attempts.join(jobs, jobs.c.id == attempts.c.job_id),
    _in_array,
)
_BLOCKS_FIXED = (
    sa.select(blocks.c.id, blocks.c.min_runtime_s, blocks.c.chunk, blocks.c.limits)
    .where(blocks.c.id.in_(sa.bindparam("ids", expanding=True)))
    .execution_options(tally_safe=True)
)
_SUCCEED_ATTEMPT = (
    attempts.update()
    .where(attempts.c.id == sa.bindparam("attempt_id"))
    .values(
        status=AttemptStatus.SUCCEEDED.value,
        ended_at=sa.bindparam("v_ended_at"),
        exit_code=sa.bindparam("v_exit_code"),
        peak_rss_bytes=sa.bindparam("v_peak_rss_bytes"),
        duration_s=sa.bindparam("v_duration_s"),
        message=sa.bindparam("v_message"),
        cpu_s=sa.bindparam("v_cpu_s"),
    )
)
_SUCCEED_BLOCK = (
    blocks.update()
    .where(blocks.c.id == sa.bindparam("block_id"))
    .values(
        n_running=blocks.c.n_running - sa.bindparam("n"),
        n_succeeded=blocks.c.n_succeeded + sa.bindparam("n"),
        runtime_sum=blocks.c.runtime_sum + sa.bindparam("runtime"),
        runtime_n=blocks.c.runtime_n + sa.bindparam("timed"),
    )
)
_SUCCEED_ATTEMPT_P = Prepared(_SUCCEED_ATTEMPT)
_SUCCEED_BLOCK_P = Prepared(_SUCCEED_BLOCK)
_SUCCEED_TASK_P = Prepared(_task_update(frozenset({"status", "updated_at"})))


# PostgreSQL: every plain success of a report in one statement, the attempts and their tasks,
# the reports' values as arrays unnested (one execution, not one per finish).
_V = (
    sa.func.unnest(
        sa.cast(sa.bindparam("ids"), sa.ARRAY(sa.BigInteger)),
        sa.cast(sa.bindparam("exit_codes"), sa.ARRAY(sa.Integer)),
        sa.cast(sa.bindparam("peak_rss"), sa.ARRAY(sa.BigInteger)),
        sa.cast(sa.bindparam("durations"), sa.ARRAY(sa.Float)),
        sa.cast(sa.bindparam("messages"), sa.ARRAY(sa.Text)),
        sa.cast(sa.bindparam("cpu"), sa.ARRAY(sa.Float)),
    )
    .table_valued(
        sa.column("id", sa.BigInteger),
        sa.column("exit_code", sa.Integer),
        sa.column("peak_rss_bytes", sa.BigInteger),
        sa.column("duration_s", sa.Float),
        sa.column("message", sa.Text),
        sa.column("cpu_s", sa.Float),
    )
    .render_derived(name="v")
)
_ENDED_ALL = (
    attempts.update()
    .where(attempts.c.id == _V.c.id)
    .values(
        status=AttemptStatus.SUCCEEDED.value,
        ended_at=sa.bindparam("now"),
        exit_code=_V.c.exit_code,
        peak_rss_bytes=_V.c.peak_rss_bytes,
        duration_s=_V.c.duration_s,
        message=_V.c.message,
        cpu_s=_V.c.cpu_s,
    )
    .returning(attempts.c.task_id)
    .cte("ended")
)
_SUCCEED_ALL_P = Prepared(
    tasks.update()
    .where(tasks.c.id == _ENDED_ALL.c.task_id)
    .values(status=TaskStatus.SUCCEEDED.value, updated_at=sa.bindparam("now"))
    .add_cte(_ENDED_ALL)
)


#: Blocks whose fixed fields are kept (then forgotten all at once).
_FIXED_KEPT = 100_000


@dataclasses.dataclass(frozen=True)
class _BlockFixed:
    """What a finish reads of its block that never changes after submission."""

    min_runtime_s: float | None
    chunk: int
    limits: Any


@dataclasses.dataclass(frozen=True)
class _Ending:
    """A finish's attempt as the plain path reads it on PostgreSQL, with its block's fixed
    fields (the fields `note_finished_chunks` and `_finish_plain` use)."""

    id: int
    token: str
    status: str
    task_id: int
    worker_id: int
    job_id: int
    cancel_reason: str | None
    block_id: int
    canceled: bool
    min_runtime_s: float | None
    chunk: int
    limits: Any


def know_block(fixed: dict[int, Any], block_id: int, row: Mapping[str, Any]) -> None:
    """A block's fixed fields as its submission wrote them (`row`: whether it has limits, not
    their values, is what a finish looks at), kept in `fixed` (`Database.block_fixed`): its
    finishes need not read them."""
    if len(fixed) >= _FIXED_KEPT:
        fixed.clear()
    fixed[block_id] = _BlockFixed(row["min_runtime_s"], row["chunk"], row["limits"])


class PlainSuccesses:
    """Finds a report's plain successes and writes them; reads the blocks' fixed fields into
    `fixed` (`Database.block_fixed`, shared with the submissions that write them)."""

    def __init__(self, fixed: dict[int, Any]) -> None:
        self._fixed = fixed

    def select(
        self, conn: sa.Connection, reports: Sequence[FinishReport], workers: Sequence[int] = ()
    ) -> tuple[list[tuple[FinishReport, Any]], dict[int, list[Any]] | None]:
        """The reports that are plain successes of running attempts: right token, no stop
        asked, job not canceled, no limits to give back, not under the minimum run time.
        With them, the other running attempts of the `workers` named (rows with
        `HELD_ATTEMPTS`' columns, oldest first, by worker id; read by the same statement);
        None when none is a success."""
        seen = Counter(r.attempt_id for r in reports)
        wanted = {
            r.attempt_id: r
            for r in reports
            if r.status is AttemptStatus.SUCCEEDED and seen[r.attempt_id] == 1
        }
        if not wanted:
            return [], None
        pg = tally.enabled(conn)
        named = list(dict.fromkeys(workers))
        if pg:
            read = _PLAIN_HELD.all(conn, {"ids": list(wanted), "workers": named})
        else:
            values = {"ids": json.dumps(list(wanted)), "workers": json.dumps(named)}
            read = _ENDING_HELD.all(conn, values)
        held: dict[int, list[Any]] = {w: [] for w in named}
        rows = [r for r in read if r.id in wanted]
        for r in sorted((r for r in read if r.id not in wanted), key=lambda r: r.id):
            held[r.worker_id].append(r)
        if pg:
            rows = self._with_fixed(conn, rows)
        plain = []
        for row in rows:
            report = wanted[row.id]
            if (
                secrets.compare_digest(row.token, report.token)
                and row.status == AttemptStatus.RUNNING.value
                and row.cancel_reason is None
                and not row.canceled
                and not row.limits
                and too_short(report.duration_s, row.min_runtime_s) is None
            ):
                plain.append((report, row))
        return plain, held

    def _with_fixed(self, conn: sa.Connection, rows: Sequence[Any]) -> list[_Ending]:
        """The finishes' attempts with their blocks' fixed fields, without reading a block's
        row more than once per block (PostgreSQL)."""
        fixed = self._fixed
        unknown = {r.block_id for r in rows} - fixed.keys()
        if unknown:
            if len(fixed) + len(unknown) > _FIXED_KEPT:
                fixed.clear()
            for b in conn.execute(_BLOCKS_FIXED, {"ids": sorted(unknown)}):
                fixed[b.id] = _BlockFixed(b.min_runtime_s, b.chunk, b.limits)
        out = []
        for r in rows:
            f = fixed[r.block_id]
            out.append(
                _Ending(
                    r.id,
                    r.token,
                    r.status,
                    r.task_id,
                    r.worker_id,
                    r.job_id,
                    r.cancel_reason,
                    r.block_id,
                    r.canceled,
                    f.min_runtime_s,
                    f.chunk,
                    f.limits,
                )
            )
        return out

    def write(self, conn: sa.Connection, plain: list[tuple[FinishReport, Any]], now: float) -> None:
        """Write plain successes, as `Attempts.end_attempt` would one by one."""
        gather = tally.enabled(conn)
        if gather:
            reports = [report for report, _ in plain]
            _SUCCEED_ALL_P.run(
                conn,
                {
                    "now": now,
                    "ids": [r.attempt_id for r in reports],
                    "exit_codes": [r.exit_code for r in reports],
                    "peak_rss": [r.peak_rss_bytes for r in reports],
                    "durations": [r.duration_s for r in reports],
                    "messages": [r.message for r in reports],
                    "cpu": [r.cpu_s for r in reports],
                },
            )
        else:
            self._write_each(conn, plain, now)
        self._count(conn, plain, gather=gather)
        note_finished_chunks(conn, ((row, report.duration_s) for report, row in plain))

    @staticmethod
    def _write_each(conn: sa.Connection, plain: list[tuple[FinishReport, Any]], now: float) -> None:
        """The attempts' UPDATE and the tasks' (SQLite: executed once per finish)."""
        ended = [
            {
                "attempt_id": report.attempt_id,
                "v_ended_at": now,
                "v_exit_code": report.exit_code,
                "v_peak_rss_bytes": report.peak_rss_bytes,
                "v_duration_s": report.duration_s,
                "v_message": report.message,
                "v_cpu_s": report.cpu_s,
            }
            for report, _ in plain
        ]
        _SUCCEED_ATTEMPT_P.run(conn, ended)
        _SUCCEED_TASK_P.run(
            conn,
            [
                {
                    "task_id": row.task_id,
                    "v_status": TaskStatus.SUCCEEDED.value,
                    "v_updated_at": now,
                }
                for _, row in plain
            ],
        )

    @staticmethod
    def _count(conn: sa.Connection, plain: list[tuple[FinishReport, Any]], *, gather: bool) -> None:
        """The blocks' counters: one UPDATE per block (PostgreSQL: gathered, `store.tally`)."""
        local = not gather and local_tally.enabled(conn)
        per_block: dict[int, list[float | None]] = {}
        for report, row in plain:
            per_block.setdefault(row.block_id, []).append(report.duration_s)
        for block_id, durations in per_block.items():
            timed = [d for d in durations if d is not None]
            if local or gather:  # written at the transaction's end (`local_tally`, `tally`)
                g = local_tally.of(conn, block_id) if local else tally.of(conn, block_id)
                g.running -= len(durations)
                g.succeeded += len(durations)
                g.runtime_sum += sum(timed)
                g.runtime_n += len(timed)
                continue
            _SUCCEED_BLOCK_P.run(
                conn,
                {
                    "block_id": block_id,
                    "n": len(durations),
                    "runtime": sum(timed),
                    "timed": len(timed),
                },
            )
