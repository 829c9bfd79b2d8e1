"""Controller settings, read once at start by the CLI and handed to `create_app`."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class SmtpSettings:
    host: str | None = None  # None: e-mail subscriptions wait (and retry) until one is set
    port: int = 25
    sender: str = "thresher@localhost"
    starttls: bool = False
    user: str | None = None
    password: str | None = None


@dataclass(frozen=True)
class ControllerSettings:
    data_dir: Path
    database_url: str | None = None  # None: SQLite in data_dir
    heartbeat_s: float = 5.0
    lease_s: float = 15.0
    poll_hold_s: float = 20.0
    sweep_every_s: float = 1.0
    retry_elsewhere_s: float = 30.0  # how long a failed task waits for another host first
    # Error hosts and sick hosts: the defaults a block may override.
    errors_to_avoid: int = 3  # a host failing a block this often is avoided by it...
    forgive_s: float = 5 * 3600.0  # ...until this long after its last error there
    sick_jobs: int = 3  # a host failing this many different jobs...
    sick_window_s: float = 3600.0  # ...within this window is sick until cleared
    sick_owners: int = 2  # ...and only when those jobs belong to at least this many owners
    # The dispatch index is rebuilt from the database after a change, at most this often...
    index_min_age_s: float = 0.1
    # ...and at least this often, to see what other controllers (one PostgreSQL) changed.
    index_max_age_s: float = 2.0
    # Bounds a farm sets (each refusal is a 4xx naming the field; see docs/api.md, "Limits").
    max_request_bytes: int = 16 * 2**20  # a request body over this is refused: 413
    # ...a worker's poll or report carries what its tasks printed while the controller was away
    max_agent_request_bytes: int = 256 * 2**20
    max_blocks_per_job: int = 1000  # blocks of one job (OpenJD: steps of one template)
    max_log_bytes_per_task: int = 64 * 2**20  # log bytes stored per task, past it one marker line
    # Security (docs/security.md): the key sealing access-key secrets (None: <data_dir>/secret.key),
    # how long a one-time enrolment code lasts, the longest life a token may be given (0: no cap),
    # how long an engine's validation may run in its own process.
    secret_key_file: Path | None = None
    enrol_code_ttl_s: float = 24 * 3600.0
    max_token_life_s: float = 0.0
    engine_check_timeout_s: float = 10.0
    # TLS: the controller serves https with this certificate chain and key (PEM), else http.
    tls_certfile: Path | None = None
    tls_keyfile: Path | None = None
    # A worker reporting less free space where its tasks run is `worker.disk_low` (an event).
    disk_low_bytes: int = 2 * 2**30
    # E-mail notifications: the SMTP server that sends them (see docs/cloud.md).
    smtp: SmtpSettings = field(default_factory=SmtpSettings)
