"""The schema. Tasks get a row only once they leave `waiting` (DESIGN section 4)."""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

tokens = sa.Table(
    "tokens",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("role", sa.String(20), nullable=False),  # admin | user | enrol | worker
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("revoked", sa.Boolean, nullable=False, default=False),
)

workers = sa.Table(
    "workers",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(200), nullable=False, unique=True),
    sa.Column("token_id", sa.Integer, sa.ForeignKey("tokens.id"), nullable=True),
    sa.Column("hostname", sa.String(255), nullable=False),
    sa.Column("os", sa.String(40), nullable=False),
    sa.Column("cores", sa.Integer, nullable=False),
    sa.Column("ram_bytes", sa.BigInteger, nullable=False),
    sa.Column("site", sa.String(100), nullable=False),
    sa.Column("pools", sa.JSON, nullable=False),
    sa.Column("attributes", sa.JSON, nullable=False),
    sa.Column("lanes", sa.Integer, nullable=False),
    sa.Column("enabled", sa.Boolean, nullable=False),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("last_seen", sa.Float, nullable=False),
    sa.Column("registered_at", sa.Float, nullable=False),
)

jobs = sa.Table(
    "jobs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(300), nullable=False),
    sa.Column("owner", sa.String(200), nullable=False, index=True),
    sa.Column("priority", sa.Integer, nullable=False),
    sa.Column("kind", sa.String(20), nullable=False),  # command | engine | openjd
    sa.Column("paused", sa.Boolean, nullable=False),
    sa.Column("canceled", sa.Boolean, nullable=False),
    sa.Column("after", sa.JSON, nullable=False),  # list of job ids this job waits on
    sa.Column("env", sa.JSON, nullable=False),
    sa.Column("cwd", sa.String(1000), nullable=True),
    sa.Column("payload", sa.JSON, nullable=False),  # kind-specific: command template, engine...
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("finished_at", sa.Float, nullable=True),
)

blocks = sa.Table(
    "blocks",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("job_id", sa.Integer, sa.ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False),
    sa.Column("idx", sa.Integer, nullable=False),
    sa.Column("name", sa.String(300), nullable=False),
    sa.Column("frames", sa.Text, nullable=False),
    sa.Column("chunk", sa.Integer, nullable=False),
    sa.Column("priority_frames", sa.Text, nullable=True),
    sa.Column("task_count", sa.Integer, nullable=False),
    sa.Column("retries", sa.Integer, nullable=False),
    sa.Column("max_runtime_s", sa.Float, nullable=True),
    sa.Column("cursor", sa.Integer, nullable=False),  # next dispatch position (see TaskLayout)
    sa.Column("n_queued", sa.Integer, nullable=False),
    sa.Column("n_running", sa.Integer, nullable=False),
    sa.Column("n_succeeded", sa.Integer, nullable=False),
    sa.Column("n_failed", sa.Integer, nullable=False),
    sa.Column("n_skipped", sa.Integer, nullable=False),
    sa.Column("n_canceled", sa.Integer, nullable=False),
    sa.Column("runtime_sum", sa.Float, nullable=False),
    sa.Column("runtime_n", sa.Integer, nullable=False),
    sa.UniqueConstraint("job_id", "idx", name="uq_blocks_job_idx"),
)

tasks = sa.Table(
    "tasks",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column(
        "block_id", sa.Integer, sa.ForeignKey("blocks.id", ondelete="CASCADE"), nullable=False
    ),
    sa.Column("job_id", sa.Integer, nullable=False, index=True),
    sa.Column("idx", sa.Integer, nullable=False),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("failures", sa.Integer, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("last_worker_id", sa.Integer, nullable=True),
    sa.Column("failed_worker_id", sa.Integer, nullable=True),
    sa.Column("progress", sa.Float, nullable=True),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.UniqueConstraint("block_id", "idx", name="uq_tasks_block_idx"),
    sa.Index("ix_tasks_block_status", "block_id", "status"),
)

attempts = sa.Table(
    "attempts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("task_id", sa.Integer, sa.ForeignKey("tasks.id", ondelete="CASCADE"), nullable=False),
    sa.Column("job_id", sa.Integer, nullable=False, index=True),
    sa.Column("worker_id", sa.Integer, nullable=False),
    sa.Column("token", sa.String(40), nullable=False),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("cancel_reason", sa.String(20), nullable=True),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("ended_at", sa.Float, nullable=True),
    sa.Column("exit_code", sa.Integer, nullable=True),
    sa.Column("peak_rss_bytes", sa.BigInteger, nullable=True),
    sa.Column("duration_s", sa.Float, nullable=True),
    sa.Column("message", sa.Text, nullable=True),
    sa.Column("progress", sa.Float, nullable=True),
    sa.Index("ix_attempts_task", "task_id"),
    sa.Index("ix_attempts_worker_status", "worker_id", "status"),
)

log_lines = sa.Table(
    "log_lines",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column(
        "attempt_id", sa.Integer, sa.ForeignKey("attempts.id", ondelete="CASCADE"), nullable=False
    ),
    sa.Column("stream", sa.String(10), nullable=False),
    sa.Column("text", sa.Text, nullable=False),
    sa.Index("ix_log_lines_attempt", "attempt_id", "id"),
)
