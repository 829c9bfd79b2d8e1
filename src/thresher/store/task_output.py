"""A task's output made safe to store: text every database can hold, and at most so many bytes
of it per task, past which one marker line says how much was dropped and why.

- A NUL byte cannot be part of a PostgreSQL text value (the insert fails, and the worker that
  sent it would retry that batch for ever), and a lone surrogate cannot be encoded as UTF-8:
  both become U+FFFD, in lines, status messages, output paths and finish messages alike.
- Each task stores at most `max_log_bytes` bytes (UTF-8) of log lines over all its attempts. The
  first line that does not fit, and every line after it, is dropped; the task's log then ends
  with one `system` line, MARKER, which counts the lines and bytes dropped so far and is
  rewritten as more are dropped. Output is never dropped without that line.

The bytes a task stored are counted in memory (`LogBudget`), read from the database the first
time this controller sees the task's output (in the statement that reads the attempt); a batch
whose transaction rolls back still counts, so the cap errs towards storing less, never more.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from thresher.store.prepared import Prepared
from thresher.store.tables import attempts, log_lines, tasks

REPLACEMENT = "\ufffd"
#: The default of `ControllerSettings.max_log_bytes_per_task`.
MAX_LOG_BYTES_PER_TASK = 64 * 2**20
#: A reported output path is cut to this many characters (Linux's PATH_MAX).
MAX_OUTPUT_PATH = 4096
MARKER = "[thresher] log limit reached"
_MARKER_COUNTS = re.compile(r"(\d+) lines \((\d+) bytes\) dropped")
#: Tasks whose byte counts are kept in memory; others are read again when they print.
_TALLIES_KEPT = 10_000


def storable(text: str) -> str:
    """`text` as every database can store it: NULs and lone surrogates become U+FFFD."""
    return _sized(text)[0]


def _sized(text: str) -> tuple[str, int]:
    """`text` made storable, and its size in UTF-8 bytes."""
    if "\x00" in text:
        text = text.replace("\x00", REPLACEMENT)
    try:
        return text, len(text.encode("utf-8"))
    except UnicodeEncodeError:
        text = text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
        return text, len(text.encode("utf-8"))


def marker_text(*, cap: int, lines: int, size: int) -> str:
    return (
        f"{MARKER}: this task stores at most {cap} bytes of output (controller setting "
        f"max_log_bytes_per_task); {lines} lines ({size} bytes) dropped so far"
    )


@dataclass
class _Tally:
    """What one task stored and dropped, as this controller counts it."""

    stored: int
    dropped_lines: int = 0
    dropped_bytes: int = 0
    marker_id: int | None = None


@dataclass(frozen=True)
class Admitted:
    """What of a batch to store: the lines that fit, and the marker's text when it must be
    written (`marker_id` None: insert it; else rewrite that row)."""

    lines: list[tuple[str, str]]
    marker: str | None
    marker_id: int | None


class LogBudget:
    """The bytes each task may still store (see the module's docstring)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tallies: OrderedDict[int, _Tally] = OrderedDict()
        self._task_of: dict[int, int] = {}  # attempt id -> its task's id, for those counted

    def counts(self, attempt_id: int) -> bool:
        """Whether the bytes of this attempt's task are counted here (else the attempt's
        read brings them: `attempt_and_tally`)."""
        with self._lock:
            task_id = self._task_of.get(attempt_id)
            return task_id is not None and task_id in self._tallies

    def attempt_and_tally(self, conn: sa.Connection, attempt_id: int) -> Any:
        """The attempt's row (None: no such attempt), read with what its task's lines hold,
        which are counted from then on: the first output of a task costs no statement of its
        own."""
        query = _ATTEMPT_AND_TALLY["postgresql" if conn.dialect.name == "postgresql" else "sqlite"]
        row = query.first(conn, {"attempt_id": attempt_id})
        if row is not None:
            tally = _tally_of(conn, row.t_stored, row.t_marker_id)
            self._keep(row.task_id, tally, attempt_id)
        return row

    def admit(
        self,
        conn: sa.Connection,
        task_id: int,
        lines: Sequence[tuple[str, str]],
        *,
        cap: int,
    ) -> Admitted:
        """The storable lines of a batch for `task_id` and, once some are dropped, the marker."""
        tally = self._tally(conn, task_id)
        kept: list[tuple[str, str]] = []
        with self._lock:
            for stream, raw in lines:
                text, size = _sized(raw)
                if tally.dropped_lines == 0 and tally.stored + size <= cap:
                    tally.stored += size
                    kept.append((stream, text))
                else:
                    tally.dropped_lines += 1
                    tally.dropped_bytes += size
            if len(kept) == len(lines):
                return Admitted(kept, None, None)
            text = marker_text(cap=cap, lines=tally.dropped_lines, size=tally.dropped_bytes)
            return Admitted(kept, text, tally.marker_id)

    def marker_written(self, task_id: int, marker_id: int) -> None:
        with self._lock:
            tally = self._tallies.get(task_id)
            if tally is not None:
                tally.marker_id = marker_id

    def _tally(self, conn: sa.Connection, task_id: int) -> _Tally:
        with self._lock:
            tally = self._tallies.get(task_id)
            if tally is not None:
                self._tallies.move_to_end(task_id)
                return tally
        return self._keep(task_id, _read_tally(conn, task_id))

    def _keep(self, task_id: int, tally: _Tally, attempt_id: int | None = None) -> _Tally:
        with self._lock:
            tally = self._tallies.setdefault(task_id, tally)
            while len(self._tallies) > _TALLIES_KEPT:
                self._tallies.popitem(last=False)
            if attempt_id is not None:
                if len(self._task_of) >= _TALLIES_KEPT:
                    self._task_of.clear()
                self._task_of[attempt_id] = task_id
        return tally


def _tally_query(dialect: str, task_id: Any) -> sa.Select[int, Any]:
    """The bytes the lines of task `task_id` (a value or a column) hold and the id of its
    marker line (None: none), in one."""
    if dialect == "postgresql":
        size: sa.ColumnElement[int] = sa.func.octet_length(log_lines.c.text)
    else:
        size = sa.func.length(sa.cast(log_lines.c.text, sa.LargeBinary))
    is_marker = sa.and_(
        log_lines.c.stream == "system", log_lines.c.text.startswith(MARKER, autoescape=True)
    )
    of_task = attempts.alias("of_task")
    return (
        sa.select(
            sa.func.coalesce(sa.func.sum(size), 0).label("t_stored"),
            sa.func.min(sa.case((is_marker, log_lines.c.id))).label("t_marker_id"),
        )
        .select_from(log_lines.join(of_task, of_task.c.id == log_lines.c.attempt_id))
        .where(of_task.c.task_id == task_id)
    )


def _attempt_and_tally(dialect: str) -> sa.Select[Any]:
    """An attempt's row with what its task's lines hold (`_tally_query`'s two columns, as
    subqueries of the attempt's row: SQLite has no LATERAL)."""
    tally = _tally_query(dialect, attempts.c.task_id)
    stored, marker = tally.selected_columns
    return sa.select(
        attempts,
        tally.with_only_columns(stored).scalar_subquery().label("t_stored"),
        tally.with_only_columns(marker).scalar_subquery().label("t_marker_id"),
    ).where(attempts.c.id == sa.bindparam("attempt_id"))


_DIALECTS = ("postgresql", "sqlite")
_TALLY = {name: _tally_query(name, sa.bindparam("task_id")) for name in _DIALECTS}
_ATTEMPT_AND_TALLY = {name: Prepared(_attempt_and_tally(name)) for name in _DIALECTS}


def _read_tally(conn: sa.Connection, task_id: int) -> _Tally:
    """What the database holds of the task's output: bytes stored, and its marker if any. One
    statement (the marker's text read only where there is one)."""
    query = _TALLY["postgresql" if conn.dialect.name == "postgresql" else "sqlite"]
    stored, marker_id = conn.execute(query, {"task_id": task_id}).one()
    return _tally_of(conn, stored, marker_id)


def _tally_of(conn: sa.Connection, stored: Any, marker_id: Any) -> _Tally:
    tally = _Tally(stored=int(stored or 0))
    if marker_id is not None:
        text = conn.scalar(sa.select(log_lines.c.text).where(log_lines.c.id == marker_id))
        counts = _MARKER_COUNTS.search(text or "")
        tally.marker_id = int(marker_id)
        tally.dropped_lines = int(counts.group(1)) if counts else 1
        tally.dropped_bytes = int(counts.group(2)) if counts else 0
    return tally


def log_page(
    conn: sa.Connection,
    block_id: int,
    index: int,
    *,
    after_id: int = 0,
    limit: int = 10_000,
    max_bytes: int = 1 << 30,
) -> tuple[list[tuple[int, int, str, str]], bool]:
    """Task `index` of block `block_id`: its lines after `after_id` as (line id, attempt id,
    stream, text), oldest first, at most `limit` lines and `max_bytes` of text (one line at
    least, so a reader paging on from the last id moves on); and whether more lines follow.
    Read in slices, so a huge log never sits in memory whole."""
    out: list[tuple[int, int, str, str]] = []
    size = 0
    while True:
        want = min(limit + 1 - len(out), _LOG_SLICE)  # one more: are there more?
        rows = conn.execute(
            _LOG_PAGE, {"block_id": block_id, "idx": index, "after": after_id, "n": want}
        ).all()
        for row in rows:
            size += len(row.text.encode("utf-8", "replace"))
            if len(out) == limit or (out and size > max_bytes):
                return out, True
            out.append((row.id, row.attempt_id, row.stream, row.text))
        if len(rows) < want:
            return out, False
        after_id = rows[-1].id


#: Log lines read per statement while paging a task's log.
_LOG_SLICE = 1000
_LOG_PAGE = (
    sa.select(log_lines.c.id, log_lines.c.attempt_id, log_lines.c.stream, log_lines.c.text)
    .select_from(
        log_lines.join(attempts, attempts.c.id == log_lines.c.attempt_id).join(
            tasks, tasks.c.id == attempts.c.task_id
        )
    )
    .where(
        tasks.c.block_id == sa.bindparam("block_id"),
        tasks.c.idx == sa.bindparam("idx"),
        log_lines.c.id > sa.bindparam("after"),
    )
    .order_by(log_lines.c.id)
    .limit(sa.bindparam("n"))
)
