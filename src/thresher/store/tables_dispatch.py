"""Dispatch's tables (migration 0009): the block counters' journal (PostgreSQL).

A claim or a finish on PostgreSQL adds what it changed in a block's counters as a row here, in
its own transaction, instead of writing a new version of the block's row; the rows are folded
into the block's row about every five seconds and before a read of the counters (`store.tally`). A
held snapshot then keeps dead journal rows (small, never walked as one chain) rather than a
chain of versions of one hot row. SQLite has no row versions to keep and never writes here.
"""

from __future__ import annotations

import sqlalchemy as sa

from thresher.store.tables import ID, metadata

# No foreign key: checking one would look the block's row up (and lock it) at every insert.
# A job's deletion removes its blocks' rows here (`Jobs.delete`), in the same transaction.
block_deltas = sa.Table(
    "block_deltas",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("block_id", ID, nullable=False),
    sa.Column("n_queued", sa.Integer, nullable=False),
    sa.Column("n_running", sa.Integer, nullable=False),
    sa.Column("n_succeeded", sa.Integer, nullable=False),
    sa.Column("runtime_sum", sa.Float, nullable=False),
    sa.Column("runtime_n", sa.Integer, nullable=False),
    sqlite_autoincrement=True,
)
