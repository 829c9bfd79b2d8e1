"""The HTTP contract: request and response bodies of `/api/v1`. Pydantic lives only here."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ErrorBody(BaseModel):
    error: str = Field(description="machine-readable code, e.g. 'invalid', 'not_found'")
    message: str
    field: str | None = None


# -- jobs ----------------------------------------------------------------------------------------


class BlockIn(Strict):
    name: str = Field("main", min_length=1, max_length=300)
    frames: str = Field("1", description="frame set: 1-100, 4, 5-250x5, 1-10,20, 1-100:10")
    chunk: int = Field(1, ge=1, le=10_000_000)
    priority_frames: str | None = None
    retries: int = Field(3, ge=0, le=100)
    max_runtime_s: float | None = Field(None, gt=0)
    command: list[str] | None = Field(
        None, description="argv template with {start} {end} {frame} {frames} placeholders"
    )


class JobIn(Strict):
    name: str = Field(min_length=1, max_length=300)
    priority: int = Field(50, ge=0, le=100)
    kind: Literal["command"] = "command"
    command: list[str] | None = Field(None, description="argv template for every block")
    frames: str | None = Field(None, description="shorthand for a single block's frames")
    chunk: int | None = Field(None, ge=1, le=10_000_000)
    priority_frames: str | None = None
    retries: int | None = Field(None, ge=0, le=100)
    max_runtime_s: float | None = Field(None, gt=0)
    blocks: list[BlockIn] | None = None
    after: list[int] = Field(default_factory=list, description="ids of jobs this one waits on")
    env: dict[str, str] = Field(default_factory=dict)
    cwd: str | None = None
    paused: bool = False


class Counts(BaseModel):
    total: int
    waiting: int
    queued: int
    running: int
    succeeded: int
    failed: int
    skipped: int
    canceled: int


class BlockOut(BaseModel):
    index: int
    name: str
    frames: str
    chunk: int
    priority_frames: str | None
    retries: int
    max_runtime_s: float | None
    counts: Counts
    mean_runtime_s: float | None


class JobOut(BaseModel):
    id: int
    name: str
    owner: str
    priority: int
    kind: str
    status: str
    status_reason: str | None
    paused: bool
    after: list[int]
    env: dict[str, str]
    cwd: str | None
    payload: dict[str, Any]
    created_at: float
    finished_at: float | None
    counts: Counts
    blocks: list[BlockOut]


class JobList(BaseModel):
    jobs: list[JobOut]


class PriorityIn(Strict):
    priority: int = Field(ge=0, le=100)


class ActionOut(BaseModel):
    id: int
    status: str
    affected: int = 0


# -- tasks ---------------------------------------------------------------------------------------


class TaskOut(BaseModel):
    job_id: int
    block: int
    index: int
    frames: list[int]
    status: str
    failures: int
    attempts: int
    worker: str | None
    progress: float | None
    updated_at: float | None


class TaskPage(BaseModel):
    job_id: int
    block: int
    total: int
    offset: int
    limit: int
    tasks: list[TaskOut]


class AttemptOut(BaseModel):
    id: int
    block: int
    index: int
    worker: str
    status: str
    cancel_reason: str | None
    created_at: float
    ended_at: float | None
    exit_code: int | None
    peak_rss_bytes: int | None
    duration_s: float | None
    message: str | None
    progress: float | None


class TaskDetail(TaskOut):
    attempts_detail: list[AttemptOut]


class AttemptList(BaseModel):
    attempts: list[AttemptOut]


class LogLine(BaseModel):
    id: int
    attempt_id: int
    stream: str
    text: str


class LogOut(BaseModel):
    lines: list[LogLine]


# -- workers -------------------------------------------------------------------------------------


class WorkerOut(BaseModel):
    id: int
    name: str
    hostname: str
    os: str
    cores: int
    ram_bytes: int
    site: str
    pools: list[str]
    attributes: dict[str, str]
    lanes: int
    enabled: bool
    status: str
    last_seen: float
    running: int


class WorkerList(BaseModel):
    workers: list[WorkerOut]


# -- tokens --------------------------------------------------------------------------------------


class TokenIn(Strict):
    name: str = Field(min_length=1, max_length=200)
    role: Literal["user", "admin", "enrol"] = "user"


class TokenOut(BaseModel):
    id: int
    name: str
    role: str
    token: str = Field(description="shown once; only its hash is stored")


# -- agent ---------------------------------------------------------------------------------------


class RegisterIn(Strict):
    name: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_.@-]+$")
    hostname: str = Field(min_length=1, max_length=255)
    os: str = Field(min_length=1, max_length=40)
    cores: int = Field(ge=1)
    ram_bytes: int = Field(ge=0)
    site: str = Field("hq", min_length=1, max_length=100)
    pools: list[str] = Field(default_factory=list)
    attributes: dict[str, str] = Field(default_factory=dict)
    lanes: int = Field(1, ge=1, le=256)


class RegisterOut(BaseModel):
    worker_id: int
    token: str
    heartbeat_s: float
    lease_s: float


class OutputBatch(Strict):
    attempt_id: int
    token: str
    lines: list[tuple[Literal["stdout", "stderr", "system"], str]] = Field(default_factory=list)
    progress: float | None = Field(None, ge=0, le=100)


class FinishIn(Strict):
    attempt_id: int
    token: str
    status: Literal["succeeded", "failed", "timed_out", "canceled"]
    exit_code: int | None = None
    peak_rss_bytes: int | None = Field(None, ge=0)
    duration_s: float | None = Field(None, ge=0)
    message: str | None = Field(None, max_length=10_000)


class RunningIn(Strict):
    attempt_id: int
    token: str


class ReportIn(Strict):
    output: list[OutputBatch] = Field(default_factory=list)
    finished: list[FinishIn] = Field(default_factory=list)


class PollIn(Strict):
    want: int = Field(0, ge=0, le=1024, description="free lanes: tasks the worker can start now")
    ahead: int = Field(
        0, ge=0, le=1024, description="extra tasks it may hold ahead (granted for short tasks only)"
    )
    wait_s: float = Field(0, ge=0, le=60, description="how long to hold the poll open")
    running: list[RunningIn] = Field(default_factory=list)
    output: list[OutputBatch] = Field(default_factory=list)
    finished: list[FinishIn] = Field(default_factory=list)


class AssignmentOut(BaseModel):
    attempt_id: int
    token: str
    job_id: int
    block: int
    index: int
    frames: list[int]
    kind: str
    payload: dict[str, Any]
    env: dict[str, str]
    cwd: str | None
    max_runtime_s: float | None


class PollOut(BaseModel):
    assignments: list[AssignmentOut]
    stop: list[int] = Field(description="attempts the worker must kill")
    stale: list[int] = Field(description="attempts whose reports were refused: kill and forget")
    heartbeat_s: float
    lease_s: float
    enabled: bool
