"""The HTTP contract: request and response bodies of `/api/v1`. Pydantic lives only here."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# -- jobs ----------------------------------------------------------------------------------------


class BlockIn(Strict):
    name: str = Field("main", min_length=1, max_length=300)
    frames: str = Field("1", description="frame set: 1-100, 4, 5-250x5, 1-10,20, 1-100:10")
    chunk: int = Field(default=1, ge=1, le=10_000_000)
    priority_frames: str | None = None
    retries: int = Field(3, ge=0, le=100)
    max_runtime_s: float | None = Field(default=None, gt=0)
    command: list[str] | None = Field(
        default=None, description="argv template with {start} {end} {frame} {frames} placeholders"
    )
    # Scheduling (issue 3): None takes the job's value, else the default. docs/scheduling.md
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
    # -- scheduling (issue 3), see docs/scheduling.md; the block fields are defaults for blocks
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
    gpus: int = 0
    capacity: int = 1000
    capacity_used: int = 0
    lanes_detail: list[LaneOut] = Field(default_factory=list)
    nimby: str | None = Field(default=None, description="paused or stopped from the controller")
    local_nimby: str | None = Field(
        default=None, description="paused or stopped on the worker's machine"
    )
    sick_since: float | None = Field(default=None, description="when it was marked sick, if it is")
    pools_declared: list[str] | None = Field(
        default=None,
        description="the pools the worker declared, while an admin's choice (`pools`) holds",
    )


class LaneOut(BaseModel):
    index: int
    engines: list[str] | None = Field(description="what it runs; null: anything")
    overridden: bool = Field(
        default=False, description="set from the controller, not by the worker"
    )


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
    lanes: int = Field(default=1, ge=1, le=256)
    gpus: int = Field(default=0, ge=0, le=1024)
    capacity: int | None = Field(
        default=None, ge=0, description="capacity units; default 1000 per lane"
    )
    lane_engines: dict[int, list[str]] = Field(
        default_factory=dict, description="lane -> engines or job kinds it runs (others: any)"
    )


class RegisterOut(BaseModel):
    worker_id: int
    token: str
    heartbeat_s: float
    lease_s: float


class OutputBatch(Strict):
    attempt_id: int
    token: str
    lines: list[tuple[Literal["stdout", "stderr", "system"], str]] = Field(default_factory=list)
    progress: float | None = Field(default=None, ge=0, le=100)
    outputs: list[str] = Field(default_factory=list, description="files an engine wrote")
    status_message: str | None = Field(
        default=None, max_length=10_000, description="the task's latest status (OpenJD)"
    )


class FinishIn(Strict):
    attempt_id: int
    token: str
    status: Literal["succeeded", "failed", "timed_out", "canceled"]
    exit_code: int | None = None
    peak_rss_bytes: int | None = Field(default=None, ge=0)
    duration_s: float | None = Field(default=None, ge=0)
    message: str | None = Field(default=None, max_length=10_000)


class RunningIn(Strict):
    attempt_id: int
    token: str


class ReportIn(Strict):
    output: list[OutputBatch] = Field(default_factory=list)
    finished: list[FinishIn] = Field(default_factory=list)


class PollIn(Strict):
    wait_s: float = Field(default=0, ge=0, le=60, description="how long to hold the poll open")
    running: list[RunningIn] = Field(default_factory=list)
    output: list[OutputBatch] = Field(default_factory=list)
    finished: list[FinishIn] = Field(default_factory=list)
    lanes: list[int] = Field(
        default_factory=list, max_length=1024, description="free lanes by index; each gets a task"
    )
    ahead_lanes: list[int] = Field(
        default_factory=list,
        max_length=4096,
        description="lanes that may hold one more short task ahead (repeat a lane for more)",
    )
    nimby: Literal["paused", "stopped"] | None = Field(
        default=None, description="NIMBY set on the worker's machine"
    )


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
    engine: str | None = Field(default=None, description="engine jobs: the engine to run")
    engine_revision: int | None = Field(default=None, description="its revision (0: built in)")
    engine_hash: str | None = Field(default=None, description="SHA-256 of that revision's source")
    lane: int | None = Field(default=None, description="the lane it was claimed for")


class PollOut(BaseModel):
    assignments: list[AssignmentOut]
    stop: list[int] = Field(description="attempts the worker must kill")
    stale: list[int] = Field(description="attempts whose reports were refused: kill and forget")
    heartbeat_s: float
    lease_s: float
    enabled: bool
    nimby: str | None = Field(default=None, description="paused or stopped (NIMBY), from anywhere")


# -- scheduling (issue 3): limits, users, lanes, NIMBY, error hosts, pools ---------------------


class LimitIn(Strict):
    max_total: int | None = Field(
        default=None, ge=0, description="units farm-wide; null: no maximum"
    )
    max_per_host: int | None = Field(default=None, ge=0, description="units on one host")
    max_hosts: int | None = Field(default=None, ge=0, description="hosts holding units at once")


class LimitOut(BaseModel):
    name: str
    max_total: int | None
    max_per_host: int | None
    max_hosts: int | None
    in_use: int
    hosts: dict[str, int] = Field(description="hostname -> units held")


class LimitList(BaseModel):
    limits: list[LimitOut]


class UserIn(Strict):
    priority: int = Field(default=0, ge=0, le=100, description="orders jobs of equal job priority")
    max_running: int | None = Field(
        default=None, ge=1, description="running tasks of the user at most"
    )


class UserOut(BaseModel):
    name: str
    priority: int
    max_running: int | None
    running: int


class UserList(BaseModel):
    users: list[UserOut]


class LaneIn(Strict):
    engines: list[str] | None = Field(description="engines or job kinds; null: anything")


PoolName = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.-]+$")]


class PoolsIn(Strict):
    pools: list[PoolName] = Field(
        max_length=100, description="the worker's pools from now on (replacing what it declared)"
    )


class ErrorHostOut(BaseModel):
    block: int
    worker: str
    errors: int = Field(description="errors that still count (forgiven ones do not)")
    avoided: bool
    avoided_until: float | None
    last_error_at: float


class ErrorHostList(BaseModel):
    job_id: int
    hosts: list[ErrorHostOut]


class ResetOut(BaseModel):
    forgotten: int


class PoolOut(BaseModel):
    name: str
    workers: list[str]
    jobs: dict[str, list[int]] = Field(description="mode (+ ~ @) -> active jobs naming it so")


class PoolList(BaseModel):
    pools: list[PoolOut]
