"""dispatch: the block counters' journal (block_deltas), folded into blocks (PostgreSQL)

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

#: Row ids: 64-bit on PostgreSQL, SQLite's INTEGER PRIMARY KEY (64-bit) there; see tables.py.
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "block_deltas",
        sa.Column("id", ID, nullable=False),
        sa.Column("block_id", ID, nullable=False),
        sa.Column("n_queued", sa.Integer(), nullable=False),
        sa.Column("n_running", sa.Integer(), nullable=False),
        sa.Column("n_succeeded", sa.Integer(), nullable=False),
        sa.Column("runtime_sum", sa.Float(), nullable=False),
        sa.Column("runtime_n", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sqlite_autoincrement=True,
    )


def downgrade() -> None:
    # Fold what is left into the blocks first: their counters stay right.
    op.execute(
        "UPDATE blocks SET n_queued = n_queued + d.q, n_running = n_running + d.r,"
        " n_succeeded = n_succeeded + d.s, runtime_sum = runtime_sum + d.rs,"
        " runtime_n = runtime_n + d.rn FROM (SELECT block_id, sum(n_queued) AS q,"
        " sum(n_running) AS r, sum(n_succeeded) AS s, sum(runtime_sum) AS rs,"
        " sum(runtime_n) AS rn FROM block_deltas GROUP BY block_id) AS d"
        " WHERE blocks.id = d.block_id"
        if op.get_context().dialect.name == "postgresql"
        else "SELECT 1"
    )
    op.drop_table("block_deltas")
