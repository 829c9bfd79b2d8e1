"""The statements that write a job's rows and its end (`store.jobs.Jobs`), built once, their
values as parameters: building literal values costs several times the statement itself. On
PostgreSQL, where each statement is a round trip to the server, a job's row and its event are
written by one statement, and so are a job's finish time and its event (data-modifying WITH).
Those of one row run as `Prepared` statements (on the transaction's cursor, without
SQLAlchemy's per-run work: a job's submission and end are on the farm thread's path)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import sqlalchemy as sa

from thresher.store.prepared import Prepared
from thresher.store.tables import blocks, events, jobs

# PostgreSQL: the blocks' ids in the order of their rows (one statement for many blocks).
INSERT_BLOCKS = blocks.insert().returning(blocks.c.id, sort_by_parameter_order=True)
EVENT_COLUMNS = ("kind", "job_id", "owner", "worker", "data", "created_at", "fanned_out")

_OTHER = blocks.alias("other")
_LEFT = _OTHER.c.task_count - (
    _OTHER.c.n_succeeded + _OTHER.c.n_skipped + _OTHER.c.n_failed + _OTHER.c.n_canceled
)
#: The job's columns, named apart from its blocks' in `SETTLED`'s rows.
JOB_AS = "j__"
# The job and its blocks (one row each; one row of NULL blocks for a job of none), unless it
# is certainly not final: not canceled, and a block of it still has tasks running or left to
# run (then no row: the usual answer while a job runs, as cheap as the check alone was).
SETTLED = Prepared(
    sa.select(*[c.label(JOB_AS + c.name) for c in jobs.c], *blocks.c)
    .select_from(jobs.outerjoin(blocks, blocks.c.job_id == jobs.c.id))
    .where(
        jobs.c.id == sa.bindparam("job_id"),
        sa.or_(
            jobs.c.canceled,
            ~sa.exists().where(
                _OTHER.c.job_id == sa.bindparam("job_id"),
                sa.or_(_OTHER.c.n_running > 0, _LEFT > 0),
            ),
        ),
    )
    .order_by(blocks.c.idx)
)

_STAMP = (
    jobs.update()
    .where(jobs.c.id == sa.bindparam("stamp_job"), jobs.c.finished_at.is_(None))
    .values(finished_at=sa.bindparam("stamp_at", type_=sa.Float))
)
STAMP = Prepared(_STAMP)


def _event_values(job_id: sa.ColumnElement[int]) -> sa.Select[tuple[object, ...]]:
    """The event's row, its job's id from `job_id` and the rest parameters `e_<column>`."""
    return sa.select(
        *[
            job_id if name == "job_id" else sa.bindparam(f"e_{name}", type_=events.c[name].type)
            for name in EVENT_COLUMNS
        ]
    )


def _stamp_and_emit() -> sa.Insert:
    """PostgreSQL: the finish time stamped and the event written by one statement (a
    data-modifying WITH); the event's row only where the stamp was made."""
    stamped = _STAMP.returning(jobs.c.id).cte("stamped")
    return (
        events.insert()
        .from_select(list(EVENT_COLUMNS), _event_values(stamped.c.id))
        .add_cte(stamped)
        .returning(events.c.id)
    )


STAMP_AND_EMIT = Prepared(_stamp_and_emit())


_ROWS: dict[tuple[str, tuple[str, ...]], Prepared] = {}


def insert_row(table: sa.Table, columns: Iterable[str], *, returning_id: bool = False) -> Prepared:
    """One row of `table` with these columns (parameters of their names; the others take their
    defaults), returning its id if asked. Built once per set of columns."""
    key = (f"{table.name} {returning_id}", tuple(columns))
    found = _ROWS.get(key)
    if found is None:
        statement = table.insert().values(
            {name: sa.bindparam(name, type_=table.c[name].type) for name in key[1]}
        )
        found = Prepared(statement.returning(table.c.id) if returning_id else statement)
        _ROWS[key] = found
    return found


_JOB_AND_EVENT: dict[tuple[str, ...], Prepared] = {}


def insert_job_and_event(columns: Iterable[str]) -> Prepared:
    """PostgreSQL: a job's row (parameters `j_<column>`) and its event written by one
    statement, which returns the job's id; one statement per set of columns, built once."""
    key = tuple(columns)
    found = _JOB_AND_EVENT.get(key)
    if found is None:
        row = {name: sa.bindparam(f"j_{name}", type_=jobs.c[name].type) for name in key}
        job = jobs.insert().values(row).returning(jobs.c.id).cte("job")
        statement = (
            events.insert()
            .from_select(list(EVENT_COLUMNS), _event_values(job.c.id))
            .add_cte(job)
            .returning(events.c.job_id)
        )
        found = _JOB_AND_EVENT[key] = Prepared(statement)
    return found


_JOB_EVENT_BLOCK: dict[tuple[tuple[str, ...], tuple[str, ...], tuple[object, ...]], Prepared] = {}


def insert_job_event_block(
    job_columns: Iterable[str],
    block_columns: Iterable[str],
    block_constants: Mapping[str, int | float] | None = None,
) -> Prepared:
    """PostgreSQL: a job of one block (the common case) written by one statement: its row
    (parameters `j_<column>`), its event (`e_<column>`) and its block (`b_<column>`, without
    `job_id`); returns the block's (job_id, id). Built once per shape. One block only: the
    block's row is given as one mapping of values, which SQLAlchemy caches compiled; a list of
    rows (a multi-row VALUES) has no cache key, and compiling this statement on every
    submission cost more than the two round trips it saves (the held poll's claim step of
    `bench/latency.py --pg` went from 6.8 to 15.2 ms, docs/performance.md, 2026-12-07).

    `block_constants`: block columns every submission gives the same value (its counters at
    0), written into the statement rather than sent: psycopg converts the text of a statement
    of more than 50 parameters again at every run (it caches only smaller ones), and this one
    had 53 (1.4-2 ms more per submission here)."""
    constants = dict(block_constants or {})
    key = (tuple(job_columns), tuple(block_columns), tuple(sorted(constants.items())))
    found = _JOB_EVENT_BLOCK.get(key)
    if found is None:
        row = {name: sa.bindparam(f"j_{name}", type_=jobs.c[name].type) for name in key[0]}
        job = jobs.insert().values(row).returning(jobs.c.id).cte("job")
        event = (
            events.insert()
            .from_select(list(EVENT_COLUMNS), _event_values(job.c.id))
            .returning(events.c.id)
            .cte("event")
        )
        block = {
            "job_id": sa.select(job.c.id).scalar_subquery(),
            **{name: sa.bindparam(f"b_{name}", type_=blocks.c[name].type) for name in key[1]},
            **{name: sa.literal_column(repr(value)) for name, value in constants.items()},
        }
        statement = (
            blocks.insert()
            .values(block)
            .add_cte(job)
            .add_cte(event)
            .returning(blocks.c.job_id, blocks.c.id)
        )
        found = _JOB_EVENT_BLOCK[key] = Prepared(statement)
    return found
