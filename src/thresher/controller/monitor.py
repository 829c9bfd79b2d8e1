"""The web monitor's use cases: a block's task states as runs, actions on a range of tasks,
workers' resource samples (kept and read), statistics, stuck tasks and estimates."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from thresher.controller.auth import Caller
from thresher.controller.jobs import Jobs
from thresher.controller.unit import UnitOfWork
from thresher.controller.visibility import check_visible
from thresher.core.clock import Clock
from thresher.core.errors import InvalidInput
from thresher.core.eta import Estimate, job_estimates, task_eta
from thresher.core.model import AttemptRecord, JobRecord, TaskRecord
from thresher.core.states import TaskStatus
from thresher.store.monitor import Run
from thresher.store.stats import DIMENSIONS, QueueWait, StatRow
from thresher.store.store import Store

if TYPE_CHECKING:  # agents.py keeps its samples with a SampleKeeper of this module
    from thresher.controller.agents import Agents

#: At most this many tasks per range action (a 422 naming `last` beyond).
MAX_RANGE = 10_000
#: Which task states each range action touches.
RANGE_APPLIES: dict[str, frozenset[str]] = {
    "retry": frozenset({"running", "succeeded", "failed", "skipped", "canceled"}),
    "skip": frozenset({"waiting", "queued", "running", "failed", "canceled"}),
    "cancel": frozenset({"waiting", "queued", "running"}),
}
_MOVE = {"retry": TaskStatus.QUEUED, "skip": TaskStatus.SKIPPED, "cancel": TaskStatus.CANCELED}
_STOP_REASON = {"retry": "retry", "skip": "skipped", "cancel": "canceled"}


@dataclass(frozen=True)
class Stats:
    since: float
    until: float
    by: dict[str, list[StatRow]]
    queue_waits: list[QueueWait]


class SampleKeeper:
    """Stores the resource samples workers send with their polls (in the poll's transaction)
    and folds a worker's older ones into coarser averages about once a minute."""

    def __init__(self, store: Store, *, compact_every_s: float = 60.0) -> None:
        self.store = store
        self.compact_every_s = compact_every_s
        self._compacted: dict[int, float] = {}

    def record(self, worker_id: int, now: float, sample: Mapping[str, float]) -> None:
        self.store.monitor.add_sample(worker_id, now, sample)
        if now - self._compacted.get(worker_id, 0.0) >= self.compact_every_s:
            self._compacted[worker_id] = now
            self.store.monitor.compact(worker_id, now)


class IdleSamples:
    """Samples a worker sends on their own while its poll is held (an idle worker)."""

    def __init__(self, agents: Agents, unit: UnitOfWork) -> None:
        self.agents, self.unit = agents, unit

    def record(self, caller: Caller, sample: Mapping[str, float]) -> None:
        worker_id = self.agents.worker_of(caller)
        now = self.agents.clock.now()
        with self.unit.transaction():
            self.agents.samples.record(worker_id, now, sample)
            self.agents.disk.seen(worker_id, sample, now=now)  # as a poll's sample is
        self.unit.notifier.touch()


class Monitor:
    """What the monitor's pages read and do beyond the jobs' and workers' own routes."""

    def __init__(self, store: Store, clock: Clock, unit: UnitOfWork, jobs: Jobs) -> None:
        self.store, self.clock, self.unit, self.jobs = store, clock, unit, jobs
        self._usual: tuple[float, dict[str, float]] = (-1e18, {})

    def runs(
        self, caller: Caller, job_id: int, block: int
    ) -> tuple[int, list[Run], dict[int, list[int]]]:
        """(task count, runs, the frames of each run's first and last task) of one block."""
        with self.unit.transaction():
            self._visible(caller, job_id)
            total, runs = self.store.monitor.runs(job_id, block)
            ends = {i for run in runs for i in (run.first, run.last)}
            frames = self.store.monitor.task_frames(job_id, block, sorted(ends))
        return total, runs, frames

    def _visible(self, caller: Caller, job_id: int) -> JobRecord:
        """The job, when the caller may see it (else 404, as if it did not exist)."""
        job = self.store.jobs.get(job_id)
        check_visible(self.store, caller, job_id, job.spec.owner)
        return job

    def act_on_range(
        self, caller: Caller, job_id: int, block: int, *, first: int, last: int, action: str
    ) -> tuple[int, int]:
        """Retry, skip or cancel tasks `first`..`last` of a block in one transaction: running
        ones are asked to stop (their worker hears it at its next poll), the others move at
        once. Returns (tasks affected, tasks the action does not apply to)."""
        if last < first:
            raise InvalidInput("last is before first", field="last")
        if last - first + 1 > MAX_RANGE:
            raise InvalidInput(f"at most {MAX_RANGE} tasks at a time", field="last")
        applies = RANGE_APPLIES[action]
        affected = 0
        with self.unit.change():
            self.jobs._own(caller, job_id)
            total, runs = self.store.monitor.runs(job_id, block)
            if first >= total:
                raise InvalidInput(f"the block has {total} tasks", field="first")
            for run in runs:
                if run.status not in applies:
                    continue
                for index in range(max(run.first, first), min(run.last, last) + 1):
                    affected += self._act(job_id, block, index, run.status, action)
            self.jobs.note_if_final(job_id, restore=action != "cancel")
        return affected, min(last, total - 1) - first + 1 - affected

    def _act(self, job_id: int, block: int, index: int, status: str, action: str) -> int:
        if status == "running":
            return int(self.store.attempts.stop_task(job_id, block, index, _STOP_REASON[action]))
        self.store.tasks.set_status(job_id, block, index, _MOVE[action], now=self.clock.now())
        return 1

    # -- resources --------------------------------------------------------------------------

    def history(
        self, caller: Caller, worker: str, *, since: float, until: float
    ) -> list[tuple[float, int, dict[str, float]]]:
        with self.unit.transaction():
            record = self.store.workers.find(worker)
            return self.store.monitor.history(record.id, since=since, until=until)

    def latest(self, caller: Caller) -> dict[str, dict[str, float]]:
        """Each worker's newest sample of the last two minutes, by worker name."""
        with self.unit.transaction():
            samples = self.store.monitor.latest_samples(since=self.clock.now() - 120.0)
            names = {w.id: w.name for w in self.store.workers.all()}
        return {names[w]: s for w, s in samples.items() if w in names}

    def lanes(self, caller: Caller) -> list[dict[str, Any]]:
        """What every lane of the farm runs now."""
        return self.store.monitor.running_lanes()

    # -- statistics, stuck tasks, estimates -------------------------------------------------

    def stats(self, caller: Caller, *, since: float, until: float | None) -> Stats:
        end = until if until is not None else self.clock.now() + 1.0
        with self.unit.transaction():
            by = {d: self.store.stats.by(d, since=since, until=end) for d in DIMENSIONS}
            waits = self.store.stats.queue_waits(since=since, until=end)
        return Stats(since, end, by, waits)

    def stuck(self, caller: Caller, *, factor: float, silent_s: float) -> list[dict[str, Any]]:
        now = self.clock.now()
        rows = self.store.monitor.stuck(now, factor=factor, silent_s=silent_s)
        for row in rows:
            late = row["mean_s"] is not None and row["running_s"] > row["mean_s"] * factor
            row["why"] = (
                f"running {row['running_s']:.0f} s, {factor:g}x past its block's usual "
                f"{row['mean_s']:.1f} s"
                if late
                else f"nothing heard for {row['silent_s']:.0f} s"
            )
        return rows

    def usual_runtimes(self) -> dict[str, float]:
        """The farm's usual run time by engine over the last 30 days, kept for a minute."""
        at, usual = self._usual
        if time.monotonic() - at > 60.0:
            usual = self.store.monitor.usual_runtimes(since=self.clock.now() - 30 * 86400.0)
            self._usual = (time.monotonic(), usual)
        return usual

    def task_eta(self, task: TaskRecord, attempts: Sequence[AttemptRecord]) -> float | None:
        """One task's estimate (see `core.eta.task_eta`), from its block's (or a similar
        block's) run time and its running attempt."""
        job = self.store.jobs.get(task.job_id)
        _, blocks = job_estimates(job, history_s=self.usual_runtimes())
        per_task = blocks[task.block_index].per_task_s if task.block_index < len(blocks) else None
        running = [a for a in attempts if a.status.value == "running"]
        elapsed = self.clock.now() - running[-1].created_at if running else None
        progress = running[-1].progress if running else None
        return task_eta(task.status.value, per_task, elapsed_s=elapsed, progress=progress)

    def estimate(self, caller: Caller, job_id: int) -> tuple[Estimate, list[Estimate]]:
        """The job's and each block's estimate, with what its running tasks have run so far
        and the farm's history for blocks nothing of the job measured."""
        with self.unit.transaction():
            job = self._visible(caller, job_id)
            elapsed = self.store.monitor.running_elapsed(job_id, self.clock.now())
            usual = self.usual_runtimes()
        return job_estimates(job, history_s=usual, running_elapsed=elapsed)
