"""The HTTP contract of jobs and tasks: submissions, job and task pages, logs."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator

from thresher.schemas.base import Strict

# -- jobs ----------------------------------------------------------------------------------------


class BlockIn(Strict):
    name: str = Field("main", min_length=1, max_length=300)
    description: str = Field("", max_length=2000, description="what the block does")
    frames: str = Field("1", description="frame set: 1-100, 4, 5-250x5, 1-10,20, 1-100:10")
    chunk: int = Field(default=1, ge=1, le=10_000_000)
    priority_frames: str | None = None
    retries: int = Field(3, ge=0, le=100)
    max_runtime_s: float | None = Field(default=None, gt=0)
    command: list[str] | None = Field(
        default=None, description="argv template with {start} {end} {frame} {frames} placeholders"
    )
    # Scheduling: None takes the job's value, else the default. docs/scheduling.md
    capacity: int | None = Field(default=None, ge=0, le=1_000_000, description="units a task holds")
    limits: list[str] | None = Field(default=None, description="limits (licenses) each task holds")
    min_runtime_s: float | None = Field(
        default=None, gt=0, description="a shorter success is an error"
    )
    preview_every: int | None = Field(
        default=None, ge=1, description="dispatch every Nth task first"
    )
    after: list[int | str] = Field(
        default_factory=list, description="blocks (index or name) this block waits for, whole"
    )
    after_frames: list[int | str] = Field(
        default_factory=list,
        description="blocks (index or name) this block waits for frame by frame",
    )
    errors_to_avoid: int | None = Field(
        default=None, ge=1, le=1000, description="errors before a host is avoided"
    )
    forgive_s: float | None = Field(
        default=None, gt=0, description="seconds until an avoided host is forgiven"
    )


class EngineJobSettings(Strict):
    task_bucketsize: int | None = Field(
        default=None,
        ge=0,
        le=10_000_000,
        description="items per task; 0: the whole range in one task",
    )
    split_mode: Literal["buckets", "single"] | None = Field(
        default=None, description="buckets of task_bucketsize items, or a single task"
    )


class JobIn(Strict):
    name: str = Field(min_length=1, max_length=300)
    priority: int = Field(50, ge=0, le=100)
    kind: Literal["command", "engine"] = "command"
    command: list[str] | None = Field(default=None, description="argv template for every block")
    frames: str | None = Field(default=None, description="shorthand for a single block's frames")
    chunk: int | None = Field(default=None, ge=1, le=10_000_000)
    priority_frames: str | None = None
    retries: int | None = Field(default=None, ge=0, le=100)
    max_runtime_s: float | None = Field(default=None, gt=0)
    blocks: list[BlockIn] | None = None
    after: list[int] = Field(default_factory=list, description="ids of jobs this one waits on")
    env: dict[str, str] = Field(default_factory=dict)
    cwd: str | None = None
    paused: bool = False
    # -- engine jobs (kind "engine", implied by `engine`), in accsyn's payload shape; see
    # docs/engines.md. `range` and `settings.task_bucketsize` may also be given as `frames`
    # and `chunk`.
    engine: str | None = Field(
        default=None, description="engine name: blender, povray, ffmpeg, ..."
    )
    input: str | None = Field(default=None, description="the scene or file the engine reads")
    inputs: list[str] = Field(default_factory=list, description="more inputs, if it takes several")
    range: str | None = Field(default=None, description="items to run; default: the engine's")
    output: str | None = Field(
        default=None, description="where the engine writes (file or pattern)"
    )
    dependencies: list[str] = Field(
        default_factory=list, description="other files the job needs (textures, caches)"
    )
    envs: dict[str, Any] | None = Field(
        default=None, description="application environment: flat, or per OS (common, linux...)"
    )
    parameters: dict[str, Any] = Field(
        default_factory=dict,
        description="engine parameters: arguments, input_conversion, mapped_share_paths, ...",
    )
    settings: EngineJobSettings | None = None
    filters: str | None = Field(
        default=None, description="which workers may run it: ram:>32g,os:linux"
    )
    # -- scheduling, see docs/scheduling.md; the block fields are defaults for blocks
    max_running: int | None = Field(
        default=None, ge=1, description="running tasks of the job at most"
    )
    max_running_per_host: int | None = Field(
        default=None, ge=1, description="running tasks of the job on one worker at most"
    )
    preempt: bool = Field(
        default=False, description="a dedicated (pool:@p) job takes p's busy lanes"
    )
    after_name: str | None = Field(
        default=None, max_length=300, description="also wait on jobs whose name matches this regex"
    )
    after_global: bool = Field(default=False, description="after_name looks at every user's jobs")
    capacity: int | None = Field(default=None, ge=0, le=1_000_000)
    limits: list[str] | None = None
    min_runtime_s: float | None = Field(default=None, gt=0)
    preview_every: int | None = Field(default=None, ge=1)
    errors_to_avoid: int | None = Field(default=None, ge=1, le=1000)
    forgive_s: float | None = Field(default=None, gt=0)

    @model_validator(mode="before")
    @classmethod
    def _engine_implies_kind(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("engine") and "kind" not in data:
            return {**data, "kind": "engine"}
        return data


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
    description: str = ""
    frames: str
    chunk: int
    priority_frames: str | None
    retries: int
    max_runtime_s: float | None
    counts: Counts
    mean_runtime_s: float | None
    engine: str | None = None
    capacity: int = 1000
    limits: list[str] = Field(default_factory=list)
    min_runtime_s: float | None = None
    preview_every: int | None = None
    after: list[int] = Field(default_factory=list)
    after_frames: list[int] = Field(default_factory=list)
    errors_to_avoid: int | None = None
    forgive_s: float | None = None
    host_filters: str = Field(
        default="", description="the block's own filters (OpenJD hostRequirements)"
    )


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
    filters: str = ""
    max_running: int | None = None
    max_running_per_host: int | None = None
    preempt: bool = False
    after_name: str | None = None
    after_global: bool = False


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
    engine_revision: int | None = None
    outputs: list[str] = Field(default_factory=list)
    status_message: str | None = Field(default=None, description="the task's latest status")


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


class ReasonOut(BaseModel):
    text: str
    workers: int = Field(description="online workers this reason holds on (0: not per worker)")


class BlockWaitOut(BaseModel):
    block: int
    name: str
    waiting_tasks: int = Field(description="tasks of the block that may still be dispatched")
    reasons: list[ReasonOut]


class WhyOut(BaseModel):
    job_id: int
    status: str
    reason: str | None = Field(description="what holds the job as a whole, if anything")
    blocks: list[BlockWaitOut] = Field(description="else why each block's tasks wait")
