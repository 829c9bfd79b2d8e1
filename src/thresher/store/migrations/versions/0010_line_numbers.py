"""line numbers: each log line keeps the worker's number for it, so a batch of output sent
again after a report whose answer was lost is stored once

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("log_lines", schema=None) as batch_op:
        batch_op.add_column(sa.Column("line_no", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("log_lines", schema=None) as batch_op:
        batch_op.drop_column("line_no")
