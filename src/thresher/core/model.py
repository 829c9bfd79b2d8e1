"""Domain values shared by the store, the controller and the CLI. All frozen."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
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
class BlockSpec:
    """One stage of a job as submitted and compiled: what it runs and how it is cut and
    scheduled. The one shape of a block's definition: the compile step makes it, the store
    keeps it column for column, `BlockRecord` carries it, responses show it."""

    name: str
    frames: str  # frame set: 1-100, 5-250x5, 1-10,20, 1-100:10
    chunk: int  # frames per task; ADAPTIVE_CHUNK with a chunk plan
    task_count: int  # computed once, when the submission is compiled
    priority_frames: str | None = None
    retries: int = 3
    max_runtime_s: float | None = None
    engine: str | None = None  # what a lane must run; None: the job's kind
    capacity: int = 1000
    limits: tuple[str, ...] = ()
    min_runtime_s: float | None = None
    preview_every: int | None = None
    after: tuple[int, ...] = ()  # block indices this block waits for, whole
    after_frames: tuple[int, ...] = ()  # block indices this block waits for, frame by frame
    errors_to_avoid: int | None = None  # None: the controller's default
    forgive_s: float | None = None
    host_filters: str = ""  # the block's own filters on top of the job's (OpenJD hostRequirements)
    # OpenJD adaptive chunking: the first chunk plan (`ChunkPlan.to_json()`), with `chunk`
    # ADAPTIVE_CHUNK and `frames` the item positions.
    chunking: Mapping[str, Any] | None = None
    description: str = ""  # what the block does, for people reading the job


@dataclass(frozen=True)
class JobSpec:
    """A job as submitted and compiled, with its blocks; `priority` and `paused` are what
    they are now (people change them)."""

    name: str
    owner: str
    priority: int
    kind: str
    blocks: tuple[BlockSpec, ...]
    after: tuple[int, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: str | None = None
    payload: Mapping[str, Any] = field(default_factory=dict)
    paused: bool = False
    filters: str = ""
    max_running: int | None = None
    max_running_per_host: int | None = None
    preempt: bool = False
    after_name: str | None = None
    after_global: bool = False


@dataclass(frozen=True)
class BlockRecord:
    """A stored block: its spec and where it stands."""

    id: int
    job_id: int
    index: int
    spec: BlockSpec
    cursor: int
    counts: Counts
    mean_runtime_s: float | None


@dataclass(frozen=True)
class JobRecord:
    """A stored job: its spec, its blocks and where it stands (status derived, never stored)."""

    id: int
    spec: JobSpec
    canceled: bool
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
    engine_revision: int | None = None  # engine jobs: the engine revision it ran (0: built in)
    outputs: tuple[str, ...] = ()  # engine jobs: files the engine reported writing
    status_message: str | None = None  # the last status the task reported (OpenJD)
    cpu_s: float | None = None  # CPU time (user + system) the task used, when reported


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
    # Scheduling
    gpus: int = 0
    capacity: int = 1000  # capacity units (1000 per lane unless set)
    capacity_used: int = 0
    lane_engines: Mapping[int, tuple[str, ...] | None] = field(default_factory=dict)
    lane_overrides: Mapping[int, tuple[str, ...] | None] = field(default_factory=dict)
    pools_declared: tuple[str, ...] | None = None  # set while an admin's choice of pools holds
    nimby: str | None = None  # paused | stopped, from the controller
    local_nimby: str | None = None  # paused | stopped, from the worker's machine
    sick_since: float | None = None
    lane_gpus: Mapping[int, tuple[int, ...]] = field(default_factory=dict)  # GPU ids per lane


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
    lane: int | None = None
    # Engine jobs: the engine, the revision stamped at claim, its source's SHA-256.
    engine: str | None = None
    engine_revision: int | None = None
    engine_hash: str | None = None


def derive_job_status(
    *,
    counts: Counts,
    paused: bool,
    canceled: bool,
    deps_pending: bool,
    deps_broken: bool = False,
) -> JobStatus:
    """A job's status from its task counts and flags (never stored).

    A job fails once nothing of it can run any more while some task is not done: a task
    failed for good, and the tasks waiting on it were marked as never run (canceled); or a
    job it waits on was deleted (`deps_broken`)."""
    if canceled:
        return JobStatus.CANCELED
    if counts.total and counts.done == counts.total:
        return JobStatus.SUCCEEDED
    if counts.running:
        return JobStatus.RUNNING
    if paused:
        return JobStatus.PAUSED
    if deps_broken or (counts.total and not counts.runnable):
        return JobStatus.FAILED
    if deps_pending:
        return JobStatus.WAITING
    return JobStatus.QUEUED


def failure_reason(blocks: Sequence[tuple[str, Counts]]) -> str | None:
    """Why a failed job failed, from its blocks' (name, counts): the blocks with tasks failed
    for good, then those with tasks that never ran (canceled: they waited on a failure)."""
    failed = [f"{_tasks(c.failed)} of block {name} failed" for name, c in blocks if c.failed]
    never = [f"{_tasks(c.canceled)} of block {name} never ran" for name, c in blocks if c.canceled]
    return "; ".join([*failed, *never]) or None


def _tasks(n: int) -> str:
    return f"{n} task" if n == 1 else f"{n} tasks"
