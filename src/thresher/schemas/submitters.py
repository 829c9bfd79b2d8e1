"""The submitters' API beyond submitting: `find` (a query evaluated on the controller, paged),
a job changed on the fly (`PATCH /api/v1/jobs/{id}`), and task-file jobs."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, StringConstraints

from thresher.schemas.base import (
    MAX_LIST,
    Env,
    JobId,
    Name,
    PathText,
    RunSeconds,
    Strict,
    Text,
)


class FindOut(BaseModel):
    entity: str = Field(description="job, task, worker or engine")
    offset: int
    limit: int
    matched: int = Field(description="how many matched (within the bound read)")
    partial: bool = Field(description="the bound on what one query reads cut the search short")
    next_offset: int | None = Field(description="the offset of the next page; None: the last")
    items: list[dict[str, Any]] = Field(
        description="what matched, each as its own listing shows it (JobOut, TaskOut, ...)"
    )


class JobPatch(Strict):
    """What to change of a job on the fly; fields left out stay as they are."""

    priority: int | None = Field(default=None, ge=0, le=100)
    name: Name | None = None
    filters: Text | None = Field(default=None, description="filter grammar; '' clears")
    max_running: int | None = Field(
        default=None, ge=0, le=1_000_000, description="tasks running at once; 0: no cap"
    )
    max_running_per_host: int | None = Field(default=None, ge=0, le=10_000)
    retries: int | None = Field(default=None, ge=0, le=100, description="of every block")
    max_failed_tasks: int | None = Field(
        default=None, ge=0, le=1_000_000, description="cancel the job past so many; 0: no cap"
    )
    description: Text | None = None
    state: Literal["paused", "queued", "canceled", "retry"] | None = Field(
        default=None,
        description="paused; queued (resumed); canceled; retry (failed and canceled tasks again)",
    )
    range: Text | None = Field(
        default=None,
        description="new frames of `block` (an engine job's range), while none of its tasks "
        "went out (else 409); command and engine jobs",
    )
    priority_frames: Text | None = Field(default=None, description="with `range`")
    block: int = Field(default=0, ge=0, le=10_000, description="the block `range` is for")


class TaskFileJobIn(Strict):
    """A job whose tasks are the entries of a list (Disco's `job_*.txt`, Afanasy's task files),
    each its own argv: ``command`` + the entry. Nothing goes through a shell; braces in a task
    are literal (no placeholders)."""

    name: Name
    tasks: list[list[Annotated[str, StringConstraints(max_length=8192)]]] = Field(
        max_length=10_000,
        description="each task's arguments (after `command`); at most 10,000 tasks, each at "
        "most 1000 arguments and 8 KiB",
    )
    command: list[Annotated[str, StringConstraints(max_length=4096)]] = Field(
        default_factory=list,
        max_length=100,
        description="arguments every task starts with (a task file's entries are then its "
        "last arguments)",
    )
    priority: int = Field(50, ge=0, le=100)
    retries: int | None = Field(default=None, ge=0, le=100)
    max_runtime_s: RunSeconds | None = None
    after: list[JobId] = Field(default_factory=list, max_length=MAX_LIST)
    env: Env = Field(default_factory=dict)
    cwd: PathText | None = Field(default=None, description="an absolute path")
    paused: bool = False
    filters: Text | None = None
    max_running: int | None = Field(default=None, ge=1, le=1_000_000)
    max_running_per_host: int | None = Field(default=None, ge=1, le=10_000)
