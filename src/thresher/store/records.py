"""Values going into and out of the store."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from thresher.core.states import AttemptStatus


@dataclass(frozen=True)
class WorkerRegistration:
    """What a worker declares about itself when it registers."""

    name: str
    hostname: str
    os: str
    cores: int
    ram_bytes: int
    site: str
    pools: tuple[str, ...]
    attributes: Mapping[str, str]
    lanes: int
    gpus: int = 0
    capacity: int | None = None  # None: 1000 per lane
    lane_engines: Mapping[int, tuple[str, ...]] | None = None  # lanes not named run anything
    lane_gpus: Mapping[int, tuple[int, ...]] | None = None  # lane -> GPU device ids it owns


@dataclass(frozen=True)
class FinishReport:
    attempt_id: int
    token: str
    status: AttemptStatus
    exit_code: int | None = None
    peak_rss_bytes: int | None = None
    duration_s: float | None = None
    message: str | None = None
    before_start: bool = False  # the process never started (see FinishIn.before_start)
    cpu_s: float | None = None  # the task's CPU time, as the worker measured it


@dataclass(frozen=True)
class TokenRecord:
    id: int
    name: str
    role: str
    groups: tuple[str, ...] = ()  # the groups of the user the token is named after


@dataclass(frozen=True)
class TokenInfo:
    """A token as listed (never its secret)."""

    id: int
    name: str
    role: str
    label: str | None
    created_by: str | None
    created_at: float
    expires_at: float | None
    revoked: bool


@dataclass(frozen=True)
class UserAccount:
    """A person: a name, a role, groups."""

    name: str
    role: str
    groups: tuple[str, ...]
    created_at: float
    disabled: bool


@dataclass(frozen=True)
class AuditEntry:
    id: int
    at: float
    actor: str
    role: str
    action: str
    object: str
    status: int
