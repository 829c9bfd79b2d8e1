"""The HTTP contract of the web monitor: task runs, resource history, statistics, stuck
tasks, estimates, event-stream tickets."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field, StringConstraints

from thresher.schemas.base import MAX_INT32, Strict

#: A sample: meter name -> value. Bounded: at most 64 meters, names of 64 characters.
MeterName = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[\w.:-]+$")]
Sample = dict[MeterName, Annotated[float, Field(ge=-1e18, le=1e18)]]
MAX_METERS = 64


class SampleIn(Strict):
    """An idle worker's resources (its poll held, nothing else to send)."""

    sample: Sample = Field(max_length=MAX_METERS)


class RunOut(BaseModel):
    status: str
    first: int = Field(description="first task index of the run")
    last: int = Field(description="last task index of the run (inclusive)")
    first_frames: list[int] = Field(description="frames of the first task")
    last_frames: list[int] = Field(description="frames of the last task")


class BlockRunsOut(BaseModel):
    job_id: int
    block: int
    task_count: int
    runs: list[RunOut] = Field(description="task states as runs of one state, in index order")


class RangeIn(Strict):
    first: int = Field(ge=0, le=MAX_INT32, description="first task index")
    last: int = Field(ge=0, le=MAX_INT32, description="last task index (inclusive)")
    action: Literal["retry", "skip", "cancel"]


class RangeOut(BaseModel):
    affected: int
    unchanged: int = Field(description="tasks in the range the action does not apply to")


class SamplePoint(BaseModel):
    at: float
    step_s: int = Field(description="0: a raw sample; else the average over this many seconds")
    values: dict[str, float]


class SampleHistory(BaseModel):
    worker: str
    points: list[SamplePoint]


class LatestSamples(BaseModel):
    samples: dict[str, dict[str, float]] = Field(description="worker name -> newest sample")


class LaneRunOut(BaseModel):
    worker: str
    lane: int | None
    job_id: int
    job_name: str
    block: int
    index: int
    engine: str
    since: float
    progress: float | None


class LaneRunList(BaseModel):
    lanes: list[LaneRunOut]


class StatRowOut(BaseModel):
    key: str
    attempts: int
    succeeded: int
    failed: int
    failure_rate: float
    frames: int
    render_hours: float
    cpu_hours: float = Field(description="CPU time the tasks reported (user + system)")


class QueueWaitOut(BaseModel):
    key: str
    jobs: int
    mean_s: float
    max_s: float


class StatsOut(BaseModel):
    since: float
    until: float
    by_engine: list[StatRowOut]
    by_user: list[StatRowOut]
    by_site: list[StatRowOut]
    by_host: list[StatRowOut]
    by_day: list[StatRowOut]
    queue_wait_by_user: list[QueueWaitOut]


class StuckOut(BaseModel):
    attempt_id: int
    job_id: int
    job_name: str
    block: int
    index: int
    worker: str
    running_s: float
    mean_s: float | None
    silent_s: float
    why: str


class StuckList(BaseModel):
    tasks: list[StuckOut]


class EtaOut(BaseModel):
    job_id: int
    eta_s: float | None = Field(description="seconds until the job is done at its present pace")
    work_s: float | None = Field(description="lane-seconds of work left")
    blocks: list[float | None] = Field(description="each block's eta_s")


class TicketOut(BaseModel):
    ticket: str = Field(description="for ?ticket= of the event stream: one use, 60 s")
    expires_in_s: float
