"""security: users and groups, token life cycle, one-time enrolment codes, the audit trail

The role `user` becomes `artist` (tokens issued before keep working).

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

#: Row ids: 64-bit on PostgreSQL, SQLite's INTEGER PRIMARY KEY (64-bit) there; see tables.py.
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tokens", schema=None) as batch_op:
        batch_op.add_column(sa.Column("label", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("created_by", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("expires_at", sa.Float(), nullable=True))
    op.execute("UPDATE tokens SET role = 'artist' WHERE role = 'user'")
    with op.batch_alter_table("access_keys", schema=None) as batch_op:
        batch_op.add_column(sa.Column("sealed_secret", sa.Text(), nullable=True))
    op.create_table(
        "users",
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("role", sa.String(length=20), nullable=False),
        sa.Column("groups", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_users")),
    )
    op.create_table(
        "enrol_codes",
        sa.Column("id", ID, nullable=False),
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.Column("used_at", sa.Float(), nullable=True),
        sa.Column("used_by", sa.String(length=200), nullable=True),
        sa.Column("revoked", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_enrol_codes")),
        sa.UniqueConstraint("code_hash", name=op.f("uq_enrol_codes_code_hash")),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "audit",
        sa.Column("id", ID, nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("role", sa.String(length=20), nullable=False),
        sa.Column("action", sa.String(length=200), nullable=False),
        sa.Column("object", sa.String(length=300), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit")),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("audit", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_audit_at"), ["at"], unique=False)
        batch_op.create_index(batch_op.f("ix_audit_actor"), ["actor"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("audit", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_actor"))
        batch_op.drop_index(batch_op.f("ix_audit_at"))
    op.drop_table("audit")
    op.drop_table("enrol_codes")
    op.drop_table("users")
    op.execute("UPDATE tokens SET role = 'user' WHERE role = 'artist'")
    with op.batch_alter_table("access_keys", schema=None) as batch_op:
        batch_op.drop_column("sealed_secret")
    with op.batch_alter_table("tokens", schema=None) as batch_op:
        batch_op.drop_column("expires_at")
        batch_op.drop_column("created_by")
        batch_op.drop_column("label")
