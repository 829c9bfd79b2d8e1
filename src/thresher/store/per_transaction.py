"""What a transaction gathers in memory per block (`store.tally` on PostgreSQL,
`store.local_tally` on SQLite), kept in its connection's `info` with the transaction it
belongs to: what a transaction that ended otherwise left there (its hooks not run) is never
taken for another's."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import sqlalchemy as sa

T = TypeVar("T")


def gathered(conn: sa.Connection, key: str) -> dict[int, Any] | None:
    """The open transaction's changes under `key`, or None."""
    kept = conn.info.get(key)
    if kept is None:
        return None
    if kept[0] is not conn.get_transaction():
        del conn.info[key]
        return None
    changes: dict[int, Any] = kept[1]
    return changes


def of_block(conn: sa.Connection, key: str, block_id: int, new: Callable[[], T]) -> T:
    """The open transaction's changes to a block under `key` (`new()` at first)."""
    changes = gathered(conn, key)
    if changes is None:
        changes = {}
        conn.info[key] = (conn.get_transaction(), changes)
    found: T | None = changes.get(block_id)
    if found is None:
        found = changes[block_id] = new()
    return found
