"""A worker's settings (`AgentConfig`), and where it keeps the token an enrolment code bought."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from thresher.schemas import api
from thresher.worker.launch import ContainerSettings
from thresher.worker.poll_policy import PollPolicy

__all__ = ["AgentConfig", "keep_token"]


@dataclass(frozen=True)
class AgentConfig:
    """A worker's settings. `ahead_per_lane`, `hold_s`, `flush_every_s` and `report_after_s`
    are its polling rules (see `PollPolicy`)."""

    controller_url: str
    token: str
    facts: api.RegisterIn
    work_dir: Path
    ahead_per_lane: int = 1
    grace_s: float = 10.0
    hold_s: float = 20.0
    flush_every_s: float = 0.25
    report_after_s: float = 0.05
    # OpenJD jobs: the worker's path mapping rules (pathmapping-1.0 rules), and how long a lane
    # keeps an idle job's session open for that job's next task.
    path_mapping_rules: tuple[dict[str, str], ...] = ()
    openjd_idle_s: float = 5.0
    # A guardian process kills the tasks' process groups if this worker is killed outright
    # (see worker/guardian.py).
    guardian: bool = True
    # Jobs that name a container image run in it (see worker/launch.py).
    containers: ContainerSettings = field(default_factory=ContainerSettings)
    # Security: a one-time enrolment code (instead of an enrolment token), the CA file that
    # signed an https controller's certificate (None: the system's).
    enrol_code: str | None = None
    ca_file: str | None = None

    @property
    def token_file(self) -> Path:
        """Where the worker keeps its own token (0600) after enrolling with a code."""
        return self.work_dir / "worker-token"

    # Resource samples for the monitor (see worker/meters.py): how often one is read; 0: never.
    sample_every_s: float = 5.0

    @property
    def poll_policy(self) -> PollPolicy:
        return PollPolicy(
            ahead_per_lane=self.ahead_per_lane,
            hold_s=self.hold_s,
            flush_every_s=self.flush_every_s,
            report_after_s=self.report_after_s,
        )


def keep_token(path: Path, token: str) -> None:
    """Keep the token an enrolment code bought (0600), so a restart re-attaches with it."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(token + "\n")
