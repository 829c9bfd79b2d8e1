"""The monitor's tables (migration 0004): workers' resource samples, kept with bounded size."""

from __future__ import annotations

import sqlalchemy as sa

from thresher.store.tables import ID, attempts, metadata

# One row per sample of a worker's resources: raw samples (`step_s` 0) for the last hour, then
# averages over a minute (60) for a day, then over ten minutes (600) for a month (see
# store/monitor.py). `sample` maps a meter's name to its value (CPU %, bytes, bytes/s...).
worker_samples = sa.Table(
    "worker_samples",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("worker_id", ID, nullable=False),
    sa.Column("step_s", sa.Integer, nullable=False),
    sa.Column("at", sa.Float, nullable=False),
    sa.Column("sample", sa.JSON, nullable=False),
    sa.Index("ix_worker_samples_worker_step_at", "worker_id", "step_s", "at"),
    sqlite_autoincrement=True,
)

# A task's CPU time (user + system, from its `wait4` rusage), as its worker reported it.
attempts.append_column(sa.Column("cpu_s", sa.Float, nullable=True))
