"""Controller settings, read once at start by the CLI and handed to `create_app`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ControllerSettings:
    data_dir: Path
    database_url: str | None = None  # None: SQLite in data_dir
    heartbeat_s: float = 5.0
    lease_s: float = 15.0
    poll_hold_s: float = 20.0
    sweep_every_s: float = 1.0
    retry_elsewhere_s: float = 30.0  # how long a failed task waits for another host first
