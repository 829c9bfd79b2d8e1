"""Values going into and out of the store."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from thresher.core.states import AttemptStatus


@dataclass(frozen=True)
class BlockSpec:
    name: str
    frames: str
    chunk: int
    priority_frames: str | None = None
    retries: int = 3
    max_runtime_s: float | None = None


@dataclass(frozen=True)
class JobSpec:
    name: str
    owner: str
    priority: int
    kind: str
    blocks: tuple[BlockSpec, ...]
    after: tuple[int, ...] = ()
    env: Mapping[str, str] | None = None
    cwd: str | None = None
    payload: Mapping[str, Any] | None = None
    paused: bool = False


@dataclass(frozen=True)
class WorkerFacts:
    name: str
    hostname: str
    os: str
    cores: int
    ram_bytes: int
    site: str
    pools: tuple[str, ...]
    attributes: Mapping[str, str]
    lanes: int


@dataclass(frozen=True)
class FinishReport:
    attempt_id: int
    token: str
    status: AttemptStatus
    exit_code: int | None = None
    peak_rss_bytes: int | None = None
    duration_s: float | None = None
    message: str | None = None


@dataclass(frozen=True)
class TokenRecord:
    id: int
    name: str
    role: str


@dataclass(frozen=True)
class ClaimCandidate:
    """A block that has work and whose job may run now (dependencies are checked by the caller)."""

    block_id: int
    job_id: int
    block_index: int
    priority: int
    created_at: float
    after: tuple[int, ...]
    frames: str
    chunk: int
    priority_frames: str | None
    cursor: int
    task_count: int
    n_queued: int
    mean_runtime_s: float | None
