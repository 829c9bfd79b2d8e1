"""Domain values shared by the store, the controller and the CLI. All frozen."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from thresher.core.states import AttemptStatus, JobStatus, TaskStatus, WorkerStatus


@dataclass(frozen=True)
class Counts:
    """How many tasks are in each state; `waiting` is what has no row yet."""

    total: int = 0
    queued: int = 0
    running: int = 0
    succeeded: int = 0
    failed: int = 0
    skipped: int = 0
    canceled: int = 0

    @property
    def waiting(self) -> int:
        return self.total - (
            self.queued + self.running + self.succeeded + self.failed + self.skipped + self.canceled
        )

    @property
    def done(self) -> int:
        return self.succeeded + self.skipped

    @property
    def runnable(self) -> int:
        """Tasks that may still be dispatched."""
        return self.waiting + self.queued

    def __add__(self, other: Counts) -> Counts:
        return Counts(
            total=self.total + other.total,
            queued=self.queued + other.queued,
            running=self.running + other.running,
            succeeded=self.succeeded + other.succeeded,
            failed=self.failed + other.failed,
            skipped=self.skipped + other.skipped,
            canceled=self.canceled + other.canceled,
        )

    def as_dict(self) -> dict[str, int]:
        return {
            "total": self.total,
            "waiting": self.waiting,
            "queued": self.queued,
            "running": self.running,
            "succeeded": self.succeeded,
            "failed": self.failed,
            "skipped": self.skipped,
            "canceled": self.canceled,
        }


@dataclass(frozen=True)
class BlockRecord:
    id: int
    job_id: int
    index: int
    name: str
    frames: str
    chunk: int
    priority_frames: str | None
    retries: int
    max_runtime_s: float | None
    cursor: int
    counts: Counts
    mean_runtime_s: float | None


@dataclass(frozen=True)
class JobRecord:
    id: int
    name: str
    owner: str
    priority: int
    kind: str
    paused: bool
    canceled: bool
    after: tuple[int, ...]
    env: Mapping[str, str]
    cwd: str | None
    payload: Mapping[str, Any]
    created_at: float
    finished_at: float | None
    counts: Counts
    status: JobStatus
    status_reason: str | None = None
    blocks: tuple[BlockRecord, ...] = field(default=())


@dataclass(frozen=True)
class TaskRecord:
    job_id: int
    block_index: int
    index: int
    frames: tuple[int, ...]
    status: TaskStatus
    failures: int
    attempts: int
    last_worker: str | None
    progress: float | None
    updated_at: float | None


@dataclass(frozen=True)
class AttemptRecord:
    id: int
    job_id: int
    block_index: int
    task_index: int
    worker_id: int
    worker: str
    status: AttemptStatus
    cancel_reason: str | None
    created_at: float
    ended_at: float | None
    exit_code: int | None
    peak_rss_bytes: int | None
    duration_s: float | None
    message: str | None
    progress: float | None


@dataclass(frozen=True)
class WorkerRecord:
    id: int
    name: str
    hostname: str
    os: str
    cores: int
    ram_bytes: int
    site: str
    pools: tuple[str, ...]
    attributes: Mapping[str, str]
    lanes: int
    enabled: bool
    status: WorkerStatus
    last_seen: float
    running: int = 0


@dataclass(frozen=True)
class Assignment:
    """What a worker is told to run: one leased, fenced attempt of one task."""

    attempt_id: int
    token: str
    job_id: int
    block_index: int
    task_index: int
    frames: tuple[int, ...]
    kind: str
    payload: Mapping[str, Any]
    env: Mapping[str, str]
    cwd: str | None
    max_runtime_s: float | None


def derive_job_status(
    *, counts: Counts, paused: bool, canceled: bool, deps_pending: bool
) -> JobStatus:
    """A job's status from its task counts and flags (never stored)."""
    if canceled:
        return JobStatus.CANCELED
    if counts.total and counts.done == counts.total:
        return JobStatus.SUCCEEDED
    if counts.running:
        return JobStatus.RUNNING
    if paused:
        return JobStatus.PAUSED
    if counts.failed and not counts.runnable:
        return JobStatus.FAILED
    if deps_pending:
        return JobStatus.WAITING
    return JobStatus.QUEUED
