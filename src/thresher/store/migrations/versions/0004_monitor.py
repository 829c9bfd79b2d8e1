"""monitor: workers' resource samples, attempts' CPU time

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

#: Row ids: 64-bit on PostgreSQL, SQLite's INTEGER PRIMARY KEY (64-bit) there; see tables.py.
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "worker_samples",
        sa.Column("id", ID, nullable=False),
        sa.Column("worker_id", ID, nullable=False),
        sa.Column("step_s", sa.Integer(), nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.Column("sample", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_worker_samples")),
        sqlite_autoincrement=True,
    )
    op.create_index(
        "ix_worker_samples_worker_step_at",
        "worker_samples",
        ["worker_id", "step_s", "at"],
        unique=False,
    )
    op.add_column("attempts", sa.Column("cpu_s", sa.Float(), nullable=True))


def downgrade() -> None:
    op.drop_column("attempts", "cpu_s")
    op.drop_index("ix_worker_samples_worker_step_at", table_name="worker_samples")
    op.drop_table("worker_samples")
