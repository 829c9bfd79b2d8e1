"""sites: sites, volumes and each job's sync per site

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "sites",
        sa.Column("name", sa.String(100), primary_key=True),
        sa.Column("description", sa.String(300), nullable=False),
        sa.Column("main", sa.Boolean, nullable=False),
        sa.Column("file_service_url", sa.String(500), nullable=True),
        sa.Column("file_service_token", sa.String(500), nullable=True),
        sa.Column("bandwidth_bps", sa.BigInteger, nullable=True),
        sa.Column("parallel_streams", sa.Integer, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
    )
    op.create_table(
        "volumes",
        sa.Column("name", sa.String(100), primary_key=True),
        sa.Column("description", sa.String(300), nullable=False),
        sa.Column("roots", sa.JSON, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
    )
    op.create_table(
        "job_sites",
        sa.Column("job_id", ID, primary_key=True),
        sa.Column("site", sa.String(100), primary_key=True),
        sa.Column("download", sa.Boolean, nullable=False),
        sa.Column("upload", sa.Boolean, nullable=False),
        sa.Column("speed_limit_bps", sa.BigInteger, nullable=True),
        sa.Column("parallel_files", sa.Integer, nullable=False),
        sa.Column("clear_output", sa.Boolean, nullable=False),
        sa.Column("sync_state", sa.String(20), nullable=False),
        sa.Column("bytes_done", sa.BigInteger, nullable=False),
        sa.Column("bytes_total", sa.BigInteger, nullable=False),
        sa.Column("message", sa.String(1000), nullable=True),
        sa.Column("claimed_by", sa.String(200), nullable=True),
        sa.Column("updated_at", sa.Float, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("job_sites")
    op.drop_table("volumes")
    op.drop_table("sites")
