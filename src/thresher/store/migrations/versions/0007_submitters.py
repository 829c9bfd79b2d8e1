"""submitters: queue environments and the Deadline Cloud job extras

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

#: Row ids: 64-bit on PostgreSQL, SQLite's INTEGER PRIMARY KEY (64-bit) there; see tables.py.
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "queue_environments",
        sa.Column("id", ID, nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("template_type", sa.String(length=4), nullable=False),
        sa.Column("template", sa.Text(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_queue_environments")),
        sa.UniqueConstraint("name", name=op.f("uq_queue_environments_name")),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "job_extras",
        sa.Column("job_id", ID, nullable=False),
        sa.Column("max_failed_tasks", sa.Integer(), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("updated_at", sa.Float(), nullable=True),
        sa.Column("updated_by", sa.String(length=200), nullable=True),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name=op.f("fk_job_extras_job_id_jobs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("job_id", name=op.f("pk_job_extras")),
    )


def downgrade() -> None:
    op.drop_table("job_extras")
    op.drop_table("queue_environments")
