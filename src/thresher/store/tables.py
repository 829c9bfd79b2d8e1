"""The schema. Tasks get a row only once they leave `waiting` (DESIGN section 4)."""

from __future__ import annotations

import sqlalchemy as sa

#: Row ids: 64-bit on PostgreSQL (a busy farm passes 2^31 log lines); on SQLite an INTEGER
#: PRIMARY KEY, which is already 64-bit. Tables also ask SQLite for AUTOINCREMENT, so an id is
#: never given twice, not even after the newest row was deleted (a new job must never take a
#: deleted job's id, which some other job may still wait on).
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

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
    sa.Column("id", ID, primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("role", sa.String(20), nullable=False),  # admin | user | enrol | worker
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("revoked", sa.Boolean, nullable=False, default=False),
    sqlite_autoincrement=True,
)

workers = sa.Table(
    "workers",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("name", sa.String(200), nullable=False, unique=True),
    sa.Column("token_id", ID, sa.ForeignKey("tokens.id"), nullable=True),
    sa.Column("hostname", sa.String(255), nullable=False),
    sa.Column("os", sa.String(40), nullable=False),
    sa.Column("cores", sa.Integer, nullable=False),
    sa.Column("ram_bytes", sa.BigInteger, nullable=False),
    sa.Column("site", sa.String(100), nullable=False),
    sa.Column("pools", sa.JSON, nullable=False),
    # What the worker declared while an admin has set `pools` (NULL: `pools` is as declared).
    sa.Column("pools_declared", sa.JSON, nullable=True),
    sa.Column("attributes", sa.JSON, nullable=False),
    sa.Column("lanes", sa.Integer, nullable=False),
    sa.Column("enabled", sa.Boolean, nullable=False),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("last_seen", sa.Float, nullable=False),
    sa.Column("registered_at", sa.Float, nullable=False),
    # Scheduling: GPU count, capacity units (None: 1000 per lane), the engines each
    # lane runs as the worker declared them and as the controller overrides them, NIMBY states
    # set from the controller and reported by the worker's machine, when sickness was cleared.
    sa.Column("gpus", sa.Integer, nullable=False, default=0, server_default="0"),
    sa.Column("capacity", sa.Integer, nullable=True),
    sa.Column("lane_engines", sa.JSON, nullable=True),
    sa.Column("lane_overrides", sa.JSON, nullable=True),
    sa.Column("nimby", sa.String(20), nullable=True),
    sa.Column("local_nimby", sa.String(20), nullable=True),
    sa.Column("sick_cleared_at", sa.Float, nullable=True),
    sqlite_autoincrement=True,
)

jobs = sa.Table(
    "jobs",
    metadata,
    sa.Column("id", ID, primary_key=True),
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
    # Scheduling: filters, caps, preemption, and the name regex `after` came from.
    sa.Column("filters", sa.Text, nullable=False, default="", server_default=""),
    sa.Column("max_running", sa.Integer, nullable=True),
    sa.Column("max_running_per_host", sa.Integer, nullable=True),
    sa.Column("preempt", sa.Boolean, nullable=False, default=False, server_default=sa.false()),
    sa.Column("after_name", sa.String(300), nullable=True),
    sa.Column("after_global", sa.Boolean, nullable=False, default=False, server_default=sa.false()),
    sqlite_autoincrement=True,
)

blocks = sa.Table(
    "blocks",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("job_id", ID, sa.ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False),
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
    # Scheduling: what a lane must run (None: the job's kind), capacity per task,
    # limits each task holds, minimum run time, preview order, block and frame-by-frame
    # dependencies (block indices), error-host policy (None: the controller's).
    sa.Column("engine", sa.String(100), nullable=True),
    sa.Column("capacity", sa.Integer, nullable=False, default=1000, server_default="1000"),
    sa.Column("limits", sa.JSON, nullable=False, default=list),
    sa.Column("min_runtime_s", sa.Float, nullable=True),
    sa.Column("preview_every", sa.Integer, nullable=True),
    sa.Column("after", sa.JSON, nullable=False, default=list),
    sa.Column("after_frames", sa.JSON, nullable=False, default=list),
    sa.Column("errors_to_avoid", sa.Integer, nullable=True),
    sa.Column("forgive_s", sa.Float, nullable=True),
    # OpenJD: filters of this block alone (a step's hostRequirements), applied on top
    # of the job's `filters`.
    sa.Column("host_filters", sa.Text, nullable=False, default="", server_default=""),
    sa.Column("description", sa.Text, nullable=False, default="", server_default=""),
    # OpenJD adaptive chunking: for a block whose `chunk` is 0, its chunk plan
    # (`core.chunk_plan.ChunkPlan.to_json()`: item grid, sizes used so far, run times measured);
    # `frames` are then its item positions and `task_count` follows the plan.
    sa.Column("chunking", sa.JSON, nullable=True),
    sa.UniqueConstraint("job_id", "idx", name="uq_blocks_job_idx"),
    sqlite_autoincrement=True,
)

tasks = sa.Table(
    "tasks",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("block_id", ID, sa.ForeignKey("blocks.id", ondelete="CASCADE"), nullable=False),
    sa.Column("job_id", ID, nullable=False, index=True),
    sa.Column("idx", sa.Integer, nullable=False),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("failures", sa.Integer, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("last_worker_id", ID, nullable=True),
    sa.Column("failed_worker_id", ID, nullable=True),
    sa.Column("progress", sa.Float, nullable=True),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.UniqueConstraint("block_id", "idx", name="uq_tasks_block_idx"),
    sa.Index("ix_tasks_block_status", "block_id", "status"),
    sqlite_autoincrement=True,
)

attempts = sa.Table(
    "attempts",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("task_id", ID, sa.ForeignKey("tasks.id", ondelete="CASCADE"), nullable=False),
    sa.Column("job_id", ID, nullable=False, index=True),
    sa.Column("worker_id", ID, nullable=False),
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
    sa.Column("lane", sa.Integer, nullable=True),  # the worker's lane it was claimed for
    sa.Column("capacity", sa.Integer, nullable=True),  # capacity units it holds while it runs
    # Engines: the engine revision an engine task ran with (0: built in) and the
    # files its engine reported writing.
    sa.Column("engine_revision", sa.Integer, nullable=True),
    sa.Column("outputs", sa.JSON, nullable=True),
    # OpenJD: the last status message a task reported (`openjd_status:`).
    sa.Column("status_message", sa.Text, nullable=True),
    # The task's process never started (its executable or working directory missing, its engine
    # failing before it): on a second host too, the task's definition is broken (migration 0002).
    sa.Column("before_start", sa.Boolean, server_default=sa.false(), nullable=False),
    sa.Index("ix_attempts_task", "task_id"),
    sa.Index("ix_attempts_worker_status", "worker_id", "status"),
    sqlite_autoincrement=True,
)

log_lines = sa.Table(
    "log_lines",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("attempt_id", ID, sa.ForeignKey("attempts.id", ondelete="CASCADE"), nullable=False),
    sa.Column("stream", sa.String(10), nullable=False),
    sa.Column("text", sa.Text, nullable=False),
    # The line's number among its attempt's lines, as the worker counted them (None: a marker,
    # or a worker that does not count): a batch sent again stores only what is missing
    # (migration 0010).
    sa.Column("line_no", sa.BigInteger, nullable=True),
    sa.Index("ix_log_lines_attempt", "attempt_id", "id"),
    sqlite_autoincrement=True,
)

# -- scheduling -----------------------------------------------------------------------

limits = sa.Table(
    "limits",
    metadata,
    sa.Column("name", sa.String(100), primary_key=True),
    sa.Column("max_total", sa.Integer, nullable=True),
    sa.Column("max_per_host", sa.Integer, nullable=True),
    sa.Column("max_hosts", sa.Integer, nullable=True),
    sa.Column("updated_at", sa.Float, nullable=False),
)

# One row per unit of a limit held by a running attempt; deleted when the attempt ends.
limit_holds = sa.Table(
    "limit_holds",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("limit_name", sa.String(100), nullable=False),
    sa.Column("attempt_id", ID, sa.ForeignKey("attempts.id", ondelete="CASCADE"), nullable=False),
    sa.Column("hostname", sa.String(255), nullable=False),
    sa.Index("ix_limit_holds_limit", "limit_name", "hostname"),
    sa.Index("ix_limit_holds_attempt", "attempt_id"),
    sqlite_autoincrement=True,
)

# Failures that count against a host: a failed or timed-out attempt, or a too-short success.
host_errors = sa.Table(
    "host_errors",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("worker_id", ID, nullable=False),
    sa.Column("job_id", ID, nullable=False),
    sa.Column("block_id", ID, nullable=False),
    sa.Column("at", sa.Float, nullable=False),
    sa.Index("ix_host_errors_block", "block_id", "worker_id"),
    sa.Index("ix_host_errors_worker", "worker_id", "at"),
    sqlite_autoincrement=True,
)

user_settings = sa.Table(
    "user_settings",
    metadata,
    sa.Column("name", sa.String(200), primary_key=True),
    sa.Column("priority", sa.Integer, nullable=False),
    sa.Column("max_running", sa.Integer, nullable=True),
)

# -- engines --------------------------------------------------------------------------

# One row per engine name: which revision is current (0: the built-in one) and whether new jobs
# may use it.
engines = sa.Table(
    "engines",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("current_revision", sa.Integer, nullable=False),
    sa.Column("enabled", sa.Boolean, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
)

# Every published source, never changed once written; revision 0 holds this controller's
# built-in source. `settings` and `parameters` are the engine class's merged SETTINGS and
# PARAMETERS, read when it was published, so listings need not run engine code.
engine_revisions = sa.Table(
    "engine_revisions",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("name", sa.String(64), nullable=False),
    sa.Column("revision", sa.Integer, nullable=False),
    sa.Column("source", sa.Text, nullable=False),
    sa.Column("source_hash", sa.String(64), nullable=False),
    sa.Column("settings", sa.JSON, nullable=False),
    sa.Column("parameters", sa.JSON, nullable=False),
    sa.Column("published_by", sa.String(200), nullable=False),
    sa.Column("published_at", sa.Float, nullable=False),
    sa.UniqueConstraint("name", "revision", name="uq_engine_revisions_name_revision"),
    sqlite_autoincrement=True,
)

# -- OpenJD submitters ----------------------------------------------------------------

# AWS-style key pairs for the Deadline Cloud compatible routes: a request is signed (SigV4) with
# the secret, so the controller must be able to read it back (unlike a bearer token's hash).
# Each key acts as the token it was issued with.
access_keys = sa.Table(
    "access_keys",
    metadata,
    sa.Column("access_key_id", sa.String(40), primary_key=True),
    sa.Column("secret", sa.String(100), nullable=False),
    sa.Column("token_id", ID, sa.ForeignKey("tokens.id"), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
)

# Each later area adds its tables below its own heading (migrations 0002-0008 match these).
# -- reliability (0002) ---------------------------------------------------------------

# -- security (0003) ------------------------------------------------------------------

# A token's life cycle: what it is for (`label`), who made it and until when it works (NULL:
# no expiry). The base `role` column holds admin | wrangler | artist | viewer | enrol | worker.
tokens.append_column(sa.Column("label", sa.String(200), nullable=True))
tokens.append_column(sa.Column("created_by", sa.String(200), nullable=True))
tokens.append_column(sa.Column("expires_at", sa.Float, nullable=True))

# Access-key secrets sealed with a key kept outside the database (controller/sealing.py); the
# base `secret` column is left empty once a key's secret is sealed.
access_keys.append_column(sa.Column("sealed_secret", sa.Text, nullable=True))

# People: a name (what jobs are owned by and tokens are named), a role and groups (a job is
# visible to its owner's groups). A disabled user's tokens stop working.
users = sa.Table(
    "users",
    metadata,
    sa.Column("name", sa.String(200), primary_key=True),
    sa.Column("role", sa.String(20), nullable=False),
    sa.Column("groups", sa.JSON, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("disabled", sa.Boolean, nullable=False, default=False),
)

# One-time worker enrolment codes, stored hashed: used once (then `used_at`), expiring,
# revocable.
enrol_codes = sa.Table(
    "enrol_codes",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("code_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("created_by", sa.String(200), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("expires_at", sa.Float, nullable=False),
    sa.Column("used_at", sa.Float, nullable=True),
    sa.Column("used_by", sa.String(200), nullable=True),
    sa.Column("revoked", sa.Boolean, nullable=False, default=False),
    sqlite_autoincrement=True,
)

# Who did what to which object and when: one row per state-changing call.
audit = sa.Table(
    "audit",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("at", sa.Float, nullable=False, index=True),
    sa.Column("actor", sa.String(200), nullable=False, index=True),
    sa.Column("role", sa.String(20), nullable=False),
    sa.Column("action", sa.String(200), nullable=False),
    sa.Column("object", sa.String(300), nullable=False),
    sa.Column("status", sa.Integer, nullable=False),
    sqlite_autoincrement=True,
)

# -- monitor (0004) -------------------------------------------------------------------
# In tables_monitor.py (worker_samples), imported at the end of this module.

# -- operations (0005) ----------------------------------------------------------------

# -- sites (0006) ---------------------------------------------------------------------

# Places the farm spans: each worker names its site; a site may run a file service (its URL
# and the token its peers use are given by whoever set it up). `main`: where outputs go back.
sites = sa.Table(
    "sites",
    metadata,
    sa.Column("name", sa.String(100), primary_key=True),
    sa.Column("description", sa.String(300), nullable=False),
    sa.Column("main", sa.Boolean, nullable=False),
    sa.Column("file_service_url", sa.String(500), nullable=True),
    sa.Column("file_service_token", sa.String(500), nullable=True),  # its peers present it
    sa.Column("bandwidth_bps", sa.BigInteger, nullable=True),  # a cap on its transfers
    sa.Column("parallel_streams", sa.Integer, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
)

# Named storage roots (shares): `roots` is {site: {os: root path}}; paths are written
# share=NAME/rel/path and resolved on each worker to its site's root.
volumes = sa.Table(
    "volumes",
    metadata,
    sa.Column("name", sa.String(100), primary_key=True),
    sa.Column("description", sa.String(300), nullable=False),
    sa.Column("roots", sa.JSON, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
)

# A job's sync at one site: settings given at submit (editable later) and where it stands.
job_sites = sa.Table(
    "job_sites",
    metadata,
    sa.Column("job_id", ID, primary_key=True),
    sa.Column("site", sa.String(100), primary_key=True),
    sa.Column("download", sa.Boolean, nullable=False),
    sa.Column("upload", sa.Boolean, nullable=False),
    sa.Column("speed_limit_bps", sa.BigInteger, nullable=True),
    sa.Column("parallel_files", sa.Integer, nullable=False),
    sa.Column("clear_output", sa.Boolean, nullable=False),
    sa.Column("sync_state", sa.String(20), nullable=False),  # none|pending|running|done|failed
    sa.Column("bytes_done", sa.BigInteger, nullable=False),
    sa.Column("bytes_total", sa.BigInteger, nullable=False),
    sa.Column("message", sa.String(1000), nullable=True),
    sa.Column("claimed_by", sa.String(200), nullable=True),  # the worker running the sync
    sa.Column("updated_at", sa.Float, nullable=False),
)

# -- submitters (0007) ----------------------------------------------------------------

# Queue environments: OpenJD environment templates (a Conda or venv environment, say) the
# farm applies to every job the Deadline Cloud routes submit, entered in `priority` order
# (lowest first) before the job's own.
queue_environments = sa.Table(
    "queue_environments",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("name", sa.String(200), nullable=False, unique=True),
    sa.Column("priority", sa.Integer, nullable=False),
    sa.Column("template_type", sa.String(4), nullable=False),  # JSON | YAML
    sa.Column("template", sa.Text, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("created_by", sa.String(200), nullable=False),
    sa.Column("updated_at", sa.Float, nullable=True),
    sqlite_autoincrement=True,
)

# What a Deadline Cloud job says of itself beyond Thresher's job: its failed-task cap (the job
# is canceled once that many tasks failed for good) and its description.
job_extras = sa.Table(
    "job_extras",
    metadata,
    sa.Column("job_id", ID, sa.ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("max_failed_tasks", sa.Integer, nullable=True),
    sa.Column("description", sa.Text, nullable=True),
    sa.Column("updated_at", sa.Float, nullable=True),
    sa.Column("updated_by", sa.String(200), nullable=True),
)

# -- cloud (0008) ---------------------------------------------------------------------

# The areas' own table modules, imported last so their tables join `metadata`.
from thresher.store import tables_dispatch, tables_monitor  # noqa: E402, F401

# GPU lanes: lane -> the GPU device ids it owns ({"0": [0], "1": [1]}); NULL: no GPU lanes.
workers.append_column(sa.Column("lane_gpus", sa.JSON, nullable=True))

# Events and notifications. An event is written in the transaction of the change it tells of
# (the outbox), then fanned out to the matching subscriptions as deliveries, which a background
# sender delivers and retries.
events = sa.Table(
    "events",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("kind", sa.String(40), nullable=False),
    sa.Column("job_id", ID, nullable=True),
    sa.Column("owner", sa.String(200), nullable=True),
    sa.Column("worker", sa.String(200), nullable=True),
    sa.Column("data", sa.JSON, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("fanned_out", sa.Boolean, nullable=False, default=False, server_default=sa.false()),
    sa.Index("ix_events_fanned_out", "fanned_out"),
    sqlite_autoincrement=True,
)
subscriptions = sa.Table(
    "subscriptions",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("owner", sa.String(200), nullable=False),
    sa.Column("channel", sa.String(20), nullable=False),  # webhook | email
    sa.Column("target", sa.String(2000), nullable=False),  # URL or e-mail address
    sa.Column("kinds", sa.JSON, nullable=False),  # event kinds, or ["*"]
    sa.Column("job_id", ID, nullable=True),  # only this job's events
    sa.Column("all_users", sa.Boolean, nullable=False, default=False, server_default=sa.false()),
    sa.Column("min_failures", sa.Integer, nullable=False, default=1, server_default="1"),
    sa.Column("secret", sa.String(400), nullable=False),  # HMAC key, sealed; shown once
    sa.Column("created_at", sa.Float, nullable=False),
    sqlite_autoincrement=True,
)
deliveries = sa.Table(
    "deliveries",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("event_id", ID, sa.ForeignKey("events.id", ondelete="CASCADE"), nullable=False),
    sa.Column(
        "subscription_id",
        ID,
        sa.ForeignKey("subscriptions.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("status", sa.String(20), nullable=False),  # pending | delivered | failed
    sa.Column("tries", sa.Integer, nullable=False, default=0, server_default="0"),
    sa.Column("next_at", sa.Float, nullable=False),
    sa.Column("last_error", sa.Text, nullable=True),
    sa.Column("delivered_at", sa.Float, nullable=True),
    sa.UniqueConstraint("event_id", "subscription_id", name="uq_deliveries_event_subscription"),
    sa.Index("ix_deliveries_status_next_at", "status", "next_at"),
    sqlite_autoincrement=True,
)
