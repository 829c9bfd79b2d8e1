"""The HTTP contract between workers and the controller: enrolment, poll, report."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, Field, StringConstraints

from thresher.schemas.base import MAX_INT32, MAX_INT64, MAX_TEXT, Strict
from thresher.schemas.monitor import MAX_METERS, Sample

AttemptId = Annotated[int, Field(ge=1, le=MAX_INT64)]
#: A batch's first line number at most: its lines' numbers stay far inside a 64-bit column.
MAX_LINE_NO = 2**53
Token = Annotated[str, StringConstraints(max_length=100)]
Lane = Annotated[int, Field(ge=0, le=1023)]
EngineName = Annotated[str, StringConstraints(min_length=1, max_length=100)]
Attribute = Annotated[str, StringConstraints(max_length=1000)]

# -- agent ---------------------------------------------------------------------------------------


class RegisterIn(Strict):
    name: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_.@-]+$")
    hostname: str = Field(min_length=1, max_length=255)
    os: str = Field(min_length=1, max_length=40)
    cores: int = Field(ge=1, le=1_000_000)
    ram_bytes: int = Field(ge=0, le=MAX_INT64)
    site: str = Field("hq", min_length=1, max_length=100)
    pools: list[Annotated[str, StringConstraints(max_length=100)]] = Field(
        default_factory=list, max_length=100
    )
    attributes: dict[Annotated[str, StringConstraints(max_length=100)], Attribute] = Field(
        default_factory=dict, max_length=1000
    )
    lanes: int = Field(default=1, ge=1, le=256)
    gpus: int = Field(default=0, ge=0, le=1024)
    capacity: int | None = Field(
        default=None, ge=0, le=MAX_INT32, description="capacity units; default 1000 per lane"
    )
    lane_engines: dict[Lane, Annotated[list[EngineName], Field(max_length=100)]] = Field(
        default_factory=dict,
        max_length=1024,
        description="lane -> engines or job kinds it runs (others: any)",
    )
    lane_gpus: dict[
        Lane, Annotated[list[Annotated[int, Field(ge=0, le=1023)]], Field(max_length=64)]
    ] = Field(default_factory=dict, max_length=1024, description="lane -> GPU device ids it owns")


class RegisterOut(BaseModel):
    worker_id: int
    token: str
    heartbeat_s: float
    lease_s: float


class OutputBatch(Strict):
    """A running attempt's output since the last batch. Its text is the task's: NUL bytes and
    oversized items are made safe when stored (`store.attempts`), never refused, so a task's
    output can never make its worker's reports fail."""

    nul_allowed: ClassVar[frozenset[str]] = frozenset({"lines", "outputs", "status_message"})
    attempt_id: AttemptId
    token: Token
    lines: list[tuple[Literal["stdout", "stderr", "system"], str]] = Field(default_factory=list)
    first_line: int | None = Field(
        default=None,
        ge=0,
        le=MAX_LINE_NO,
        description="the number of the first of `lines` among the attempt's lines, from 0",
    )
    repeat: bool = Field(
        default=False,
        description="some of `lines` were sent before, in a report whose answer did not come:"
        " those the controller stored (by `first_line`) are not stored again",
    )
    progress: float | None = Field(default=None, ge=0, le=100)
    outputs: list[str] = Field(default_factory=list, description="files an engine wrote")
    status_message: str | None = Field(
        default=None, max_length=MAX_TEXT, description="the task's latest status (OpenJD)"
    )


class FinishIn(Strict):
    nul_allowed: ClassVar[frozenset[str]] = frozenset({"message"})
    attempt_id: AttemptId
    token: Token
    status: Literal["succeeded", "failed", "timed_out", "canceled"]
    exit_code: int | None = Field(default=None, ge=-MAX_INT32 - 1, le=MAX_INT32)
    peak_rss_bytes: int | None = Field(default=None, ge=0, le=MAX_INT64)
    duration_s: float | None = Field(default=None, ge=0, le=1e10)
    cpu_s: float | None = Field(default=None, ge=0, le=1e12, description="the task's CPU time")
    message: str | None = Field(default=None, max_length=MAX_TEXT)
    before_start: bool = Field(
        default=False,
        description="the task's process never started: its executable or working directory "
        "missing, its engine failing before it (a definition that fails so on two hosts fails "
        "the task without retries, blaming no host)",
    )


class RunningIn(Strict):
    attempt_id: AttemptId
    token: Token


class ReportIn(Strict):
    output: list[OutputBatch] = Field(default_factory=list)
    finished: list[FinishIn] = Field(default_factory=list)


class PollIn(Strict):
    wait_s: float = Field(default=0, ge=0, le=60, description="how long to hold the poll open")
    running: list[RunningIn] = Field(default_factory=list)
    output: list[OutputBatch] = Field(default_factory=list)
    finished: list[FinishIn] = Field(default_factory=list)
    lanes: list[Lane] = Field(
        default_factory=list, max_length=1024, description="free lanes by index; each gets a task"
    )
    ahead_lanes: list[Lane] = Field(
        default_factory=list,
        max_length=4096,
        description="lanes that may hold one more short task ahead (repeat a lane for more)",
    )
    nimby: Literal["paused", "stopped"] | None = Field(
        default=None, description="NIMBY set on the worker's machine"
    )
    sample: Sample | None = Field(
        default=None,
        max_length=MAX_METERS,
        description="the worker's resources now (meter -> value), kept for the monitor",
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
