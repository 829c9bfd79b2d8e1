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
    # Scheduling (issue 3); see docs/scheduling.md.
    engine: str | None = None  # what a lane must run; None: the job's kind
    capacity: int = 1000
    limits: tuple[str, ...] = ()
    min_runtime_s: float | None = None
    preview_every: int | None = None
    after: tuple[int, ...] = ()  # block indices this block waits for, whole
    after_frames: tuple[int, ...] = ()  # block indices this block waits for, frame by frame
    errors_to_avoid: int | None = None  # None: the controller's default
    forgive_s: float | None = None
    # OpenJD (issue 5): filters of this block alone, on top of the job's (hostRequirements).
    host_filters: str = ""
    # OpenJD adaptive chunking (issue 5): the first chunk plan (`ChunkPlan.to_json()`), with
    # `chunk` ADAPTIVE_CHUNK and `frames` the item positions.
    chunking: Mapping[str, Any] | None = None


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
    # Scheduling (issue 3); see docs/scheduling.md.
    filters: str = ""
    max_running: int | None = None
    max_running_per_host: int | None = None
    preempt: bool = False
    after_name: str | None = None
    after_global: bool = False


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
    gpus: int = 0
    capacity: int | None = None  # None: 1000 per lane
    lane_engines: Mapping[int, tuple[str, ...]] | None = None  # lanes not named run anything


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
