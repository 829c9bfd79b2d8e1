"""The HTTP contract of jobs and tasks: submissions, job and task pages, logs."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, Field, StringConstraints, model_validator

from thresher.schemas.base import (
    MAX_INT32,
    MAX_LIST,
    MAX_NAME,
    MAX_RUNTIME_S,
    MAX_TEXT,
    Argv,
    Env,
    JobId,
    JsonObject,
    Name,
    PathText,
    RunSeconds,
    Seconds,
    ShortText,
    Strict,
    Text,
)
from thresher.schemas.sites import JobSiteIn, SiteName

# -- jobs ----------------------------------------------------------------------------------------


def _block_ref(ref: int | str) -> int | str:
    if isinstance(ref, int) and not 0 <= ref <= MAX_INT32:
        raise ValueError(f"a block index is 0 to {MAX_INT32}")
    if isinstance(ref, str) and not 0 < len(ref) <= MAX_NAME:
        raise ValueError(f"a block name is 1 to {MAX_NAME} characters")
    return ref


#: Block references: an index or a name (checked as one value, so an error names the item).
BlockRef = Annotated[int | str, AfterValidator(_block_ref)]
FrameSpec = Annotated[str, StringConstraints(max_length=MAX_TEXT)]
LimitName = Annotated[str, StringConstraints(min_length=1, max_length=100)]


class BlockIn(Strict):
    name: Name = "main"
    description: str = Field("", max_length=2000, description="what the block does")
    frames: FrameSpec = Field("1", description="frame set: 1-100, 4, 5-250x5, 1-10,20, 1-100:10")
    chunk: int = Field(default=1, ge=1, le=10_000_000)
    priority_frames: FrameSpec | None = None
    retries: int = Field(3, ge=0, le=100)
    max_runtime_s: RunSeconds | None = Field(
        default=None, description=f"seconds a task may run; at most {MAX_RUNTIME_S:.0f}"
    )
    command: Argv | None = Field(
        default=None, description="argv template with {start} {end} {frame} {frames} placeholders"
    )
    # Scheduling: None takes the job's value, else the default. docs/scheduling.md
    capacity: int | None = Field(default=None, ge=0, le=1_000_000, description="units a task holds")
    limits: list[LimitName] | None = Field(
        default=None, max_length=100, description="limits (licenses) each task holds"
    )
    min_runtime_s: RunSeconds | None = Field(
        default=None, description="a shorter success is an error"
    )
    preview_every: int | None = Field(
        default=None, ge=1, le=10_000_000, description="dispatch every Nth task first"
    )
    after: list[BlockRef] = Field(
        default_factory=list,
        max_length=MAX_LIST,
        description="blocks (index or name) this block waits for, whole",
    )
    after_frames: list[BlockRef] = Field(
        default_factory=list,
        max_length=MAX_LIST,
        description="blocks (index or name) this block waits for frame by frame",
    )
    errors_to_avoid: int | None = Field(
        default=None, ge=1, le=1000, description="errors before a host is avoided"
    )
    forgive_s: Seconds | None = Field(
        default=None, description="seconds until an avoided host is forgiven"
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
    # Kept with the job for the file service to act on (sites: upload, clear, download).
    clear_output: bool | None = Field(default=None, description="empty the output first")
    download_output: bool | None = Field(
        default=None, description="bring finished tasks' outputs back to the submitter"
    )
    upload_dependencies: bool | None = Field(
        default=None, description="send the dependencies to the sites that run the job"
    )
    output_site: SiteName | None = Field(
        default=None,
        description="the site each task's outputs go back to (default: the main site), "
        "such as the submitter's",
    )


class ContainerIn(Strict):
    """The container image a job's tasks run in (podman or docker on the worker)."""

    image: str = Field(
        min_length=1,
        max_length=255,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._/:@-]*$",
        description="an image name the workers can run or pull: localhost/povray:3.7",
    )


class JobIn(Strict):
    name: Name
    priority: int = Field(50, ge=0, le=100)
    kind: Literal["command", "engine"] = "command"
    command: Argv | None = Field(default=None, description="argv template for every block")
    frames: FrameSpec | None = Field(
        default=None, description="shorthand for a single block's frames"
    )
    chunk: int | None = Field(default=None, ge=1, le=10_000_000)
    priority_frames: FrameSpec | None = None
    retries: int | None = Field(default=None, ge=0, le=100)
    max_runtime_s: RunSeconds | None = None
    blocks: list[BlockIn] | None = Field(
        default=None,
        max_length=MAX_LIST,
        description="the job's blocks; a farm may allow fewer (max_blocks_per_job)",
    )
    after: list[JobId] = Field(
        default_factory=list, max_length=MAX_LIST, description="ids of jobs this one waits on"
    )
    env: Env = Field(default_factory=dict)
    cwd: PathText | None = Field(
        default=None, description="the tasks' working directory: an absolute path"
    )
    paused: bool = False
    container: ContainerIn | None = Field(
        default=None, description="run the tasks in this container image (see docs/cloud.md)"
    )
    # -- engine jobs (kind "engine", implied by `engine`), in accsyn's payload shape; see
    # docs/engines.md. `range` and `settings.task_bucketsize` may also be given as `frames`
    # and `chunk`.
    engine: Name | None = Field(
        default=None, description="engine name: blender, povray, ffmpeg, ..."
    )
    input: PathText | None = Field(default=None, description="the scene or file the engine reads")
    inputs: list[PathText] = Field(
        default_factory=list, max_length=MAX_LIST, description="more inputs, if it takes several"
    )
    range: FrameSpec | None = Field(default=None, description="items to run; default: the engine's")
    output: PathText | None = Field(
        default=None, description="where the engine writes (file or pattern)"
    )
    dependencies: list[PathText] = Field(
        default_factory=list,
        max_length=MAX_LIST,
        description="other files the job needs (textures, caches)",
    )
    envs: JsonObject | None = Field(
        default=None, description="application environment: flat, or per OS (common, linux...)"
    )
    parameters: JsonObject = Field(
        default_factory=dict,
        description="engine parameters: arguments, input_conversion, mapped_share_paths, ...",
    )
    settings: EngineJobSettings | None = None
    sites: dict[SiteName, JobSiteIn] | None = Field(
        default=None,
        max_length=1000,
        description="sync settings per site: download, upload, speed limit, parallel files, "
        "clear the output folder first (editable later: PUT /jobs/{id}/sites/{site})",
    )
    filters: Text | None = Field(
        default=None, description="which workers may run it: ram:>32g,os:linux"
    )
    # -- scheduling, see docs/scheduling.md; the block fields are defaults for blocks
    max_running: int | None = Field(
        default=None, ge=1, le=MAX_INT32, description="running tasks of the job at most"
    )
    max_running_per_host: int | None = Field(
        default=None,
        ge=1,
        le=MAX_INT32,
        description="running tasks of the job on one worker at most",
    )
    preempt: bool = Field(
        default=False, description="a dedicated (pool:@p) job takes p's busy lanes"
    )
    after_name: ShortText | None = Field(
        default=None,
        description="also wait on jobs whose name matches this glob (* any text, ? one character)",
    )
    after_global: bool = Field(default=False, description="after_name looks at every user's jobs")
    capacity: int | None = Field(default=None, ge=0, le=1_000_000)
    limits: list[LimitName] | None = Field(default=None, max_length=100)
    min_runtime_s: RunSeconds | None = None
    preview_every: int | None = Field(default=None, ge=1, le=10_000_000)
    errors_to_avoid: int | None = Field(default=None, ge=1, le=1000)
    forgive_s: Seconds | None = None

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
    eta_s: float | None = Field(
        default=None, description="seconds until its tasks are done at the present pace"
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
    eta_s: float | None = Field(
        default=None, description="seconds until the job is done at the present pace"
    )


class JobList(BaseModel):
    jobs: list[JobOut]
    next_offset: int = Field(default=0, description="pass as `offset` for the next page")
    more: bool = Field(default=False, description="more jobs follow this page")


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
    cpu_s: float | None = Field(default=None, description="CPU time (user + system) it used")


class TaskDetail(TaskOut):
    attempts_detail: list[AttemptOut]
    eta_s: float | None = Field(
        default=None,
        description="seconds until it is done once it runs: what is left of a running one, "
        "a whole run for one not started, 0 for one that ended",
    )


class AttemptList(BaseModel):
    attempts: list[AttemptOut]


class LogLine(BaseModel):
    id: int
    attempt_id: int
    stream: str
    text: str


class LogOut(BaseModel):
    lines: list[LogLine]
    next_after: int = Field(default=0, description="pass as `after` for the next page")
    more: bool = Field(default=False, description="more lines follow this page")


class ReasonOut(BaseModel):
    text: str
    workers: int = Field(description="online workers this reason holds on (0: not per worker)")


class BlockWaitOut(BaseModel):
    block: int
    name: str
    waiting_tasks: int = Field(description="tasks of the block that may still be dispatched")
    reasons: list[ReasonOut]


class TaskWhyOut(BaseModel):
    job_id: int
    block: int
    index: int
    status: str
    reasons: list[ReasonOut] = Field(
        description="why the task is where it is, most specific first: its own state, the "
        "upstream tasks it waits on, the host a retry avoids, then its block's reasons"
    )


class WhyOut(BaseModel):
    job_id: int
    status: str
    reason: str | None = Field(description="what holds the job as a whole, if anything")
    blocks: list[BlockWaitOut] = Field(description="else why each block's tasks wait")
