"""The SQL statements a block of a test runs on an engine: those SQLAlchemy executes and those
run as `Prepared` (on the DBAPI cursor, unseen by SQLAlchemy's events), in order."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa

from thresher.store import prepared


@contextmanager
def statements_run(engine: sa.Engine) -> Iterator[list[str]]:
    """The statements run on `engine` inside the block, whitespace collapsed."""
    seen: list[str] = []

    def executed(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(" ".join(statement.split()))

    def run(conn: sa.Connection, statement: str) -> None:
        if conn.engine is engine:
            seen.append(" ".join(statement.split()))

    sa.event.listen(engine, "before_cursor_execute", executed)
    prepared.WATCHERS.append(run)
    try:
        yield seen
    finally:
        prepared.WATCHERS.remove(run)
        sa.event.remove(engine, "before_cursor_execute", executed)
