"""Use cases of the submitters' interfaces beyond submitting: a job changed on the fly
(priority, name, filters, running caps, retries, failed-task cap, run state), the farm's queue
environments, and what Deadline Cloud's API reads of a job (start times, attempts as sessions,
an attempt's log). Each is one transaction through the unit of work."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from thresher.controller.auth import Caller
from thresher.controller.jobs import SUBMITTERS, Jobs
from thresher.controller.task_files import compile_task_file
from thresher.controller.unit import UnitOfWork
from thresher.controller.visibility import check_submission, visible_owners
from thresher.core.chunk_plan import ADAPTIVE_CHUNK
from thresher.core.clock import Clock
from thresher.core.errors import InvalidInput
from thresher.core.filters import parse_filters
from thresher.core.frames import FrameSet, TaskLayout
from thresher.core.model import AttemptRecord, JobRecord
from thresher.core.states import TaskStatus
from thresher.openjd.template import load_environment_template
from thresher.schemas import openjd as openjd_schema
from thresher.schemas.submitters import TaskFileJobIn
from thresher.store.store import Store
from thresher.store.submitters import JobExtras, QueueEnvironment, TaskRuns

#: What `JobChange.state` may ask for.
STATES = ("paused", "queued", "canceled", "retry")
_UNSET = -1


@dataclass(frozen=True)
class JobChange:
    """What to change of a job; None leaves a field as it is. `max_running`,
    `max_running_per_host` and `max_failed_tasks` take 0 for "no cap"."""

    priority: int | None = None
    name: str | None = None
    filters: str | None = None
    max_running: int | None = None
    max_running_per_host: int | None = None
    retries: int | None = None
    max_failed_tasks: int | None = None
    description: str | None = None
    state: str | None = None  # one of STATES
    range: str | None = None  # new frames of block `block`, before any of its tasks went out
    priority_frames: str | None = None  # with `range`
    block: int = 0

    def columns(self) -> dict[str, object]:
        out: dict[str, object] = {}
        if self.name is not None:
            out["name"] = self.name
        if self.filters is not None:
            out["filters"] = parse_filters(self.filters, field="filters").text
        if self.max_running is not None:
            out["max_running"] = self.max_running or None
        if self.max_running_per_host is not None:
            out["max_running_per_host"] = self.max_running_per_host or None
        return out


class Submitters:
    def __init__(self, store: Store, clock: Clock, unit: UnitOfWork, jobs: Jobs) -> None:
        self.store, self.clock, self.unit, self.jobs = store, clock, unit, jobs

    # -- a job changed on the fly ---------------------------------------------------------------

    def update_job(self, caller: Caller, job_id: int, change: JobChange) -> JobRecord:
        """Apply `change` in one transaction; the run state last (pause, resume, cancel, or
        retry: the failed and canceled tasks run again and the job is resumed)."""
        if change.state is not None and change.state not in STATES:
            raise InvalidInput(
                f"unknown state {change.state!r}; one of {', '.join(STATES)}", field="state"
            )
        columns = change.columns()  # a bad filter is refused before anything changes
        with self.unit.change():
            job = self.jobs._own(caller, job_id)
            if "filters" in columns:  # a dedicated pool takes others' machines: wranglers
                check_submission(
                    caller, dataclasses.replace(job.spec, filters=str(columns["filters"]))
                )
            self.store.submitters.update_job(job_id, **columns)
            if change.priority is not None:
                self.store.jobs.set_priority(job_id, change.priority)
            if change.retries is not None:
                self.store.submitters.set_retries(job_id, change.retries)
            if change.max_failed_tasks is not None or change.description is not None:
                self._set_extras(caller, job, change)
            if change.range is not None:
                self._set_range(job, change)
            self._set_state(job_id, change.state)
            return self.store.jobs.get(job_id)

    def _set_range(self, job: JobRecord, change: JobChange) -> None:
        """New frames for a block no task of which went out: its tasks counted again."""
        assert change.range is not None
        if job.spec.kind == "openjd" or "task_lines" in job.spec.payload:
            raise InvalidInput(
                f"a {'task-file' if job.spec.kind != 'openjd' else 'OpenJD'} job's tasks are "
                "not frames: its range cannot change",
                field="range",
            )
        if not 0 <= change.block < len(job.blocks):
            raise InvalidInput(f"the job has no block {change.block}", field="block")
        block = job.blocks[change.block]
        if block.spec.chunk == ADAPTIVE_CHUNK:
            raise InvalidInput("a block of adaptive chunks keeps its range", field="range")
        frames = FrameSet.parse(change.range, field="range")
        priority = change.priority_frames
        if priority is None:
            priority = block.spec.priority_frames
        layout = TaskLayout(
            frames,
            block.spec.chunk,
            priority_frames=FrameSet.parse(priority, field="priority_frames") if priority else None,
        )
        payload = None
        if job.spec.kind == "engine":
            payload = {
                **job.spec.payload,
                "range": frames.spec,
                "job_range": [frames.first, frames.last],
            }
        self.store.submitters.set_block_frames(
            job.id,
            change.block,
            frames=frames.spec,
            priority_frames=priority or None,
            task_count=layout.task_count,
            payload=payload,
        )

    def _set_extras(self, caller: Caller, job: JobRecord, change: JobChange) -> None:
        old = self.store.submitters.extras([job.id]).get(job.id, JobExtras())
        cap = old.max_failed_tasks if change.max_failed_tasks is None else change.max_failed_tasks
        self.store.submitters.set_extras(
            job.id,
            JobExtras(
                max_failed_tasks=cap or None,
                description=old.description if change.description is None else change.description,
                updated_at=self.clock.now(),
                updated_by=caller.name,
            ),
        )
        self._cancel_past_cap(job.id)

    def _set_state(self, job_id: int, state: str | None) -> None:
        if state == "paused":
            self.store.jobs.set_flags(job_id, paused=True)
            self.store.jobs.request_stop_running(job_id, "paused")
        elif state in ("queued", "retry"):
            if state == "retry":
                self.store.jobs.requeue_tasks(
                    job_id, (TaskStatus.FAILED, TaskStatus.CANCELED), now=self.clock.now()
                )
            self.store.jobs.set_flags(job_id, paused=False, canceled=False)
            self.store.jobs.withdraw_stop_requests(job_id, "paused")
            self.store.jobs.withdraw_stop_requests(job_id, "canceled")
            self.jobs.note_if_final(job_id, restore=True)
        elif state == "canceled":
            self.store.jobs.set_flags(job_id, canceled=True)
            self.store.jobs.request_stop_running(job_id, "canceled")
            self.jobs.note_if_final(job_id)

    def _cancel_past_cap(self, job_id: int) -> None:
        cap = self.store.submitters.extras([job_id]).get(job_id, JobExtras()).max_failed_tasks
        job = self.store.jobs.get(job_id)
        if cap and job.counts.failed >= cap and not job.canceled:
            self.store.jobs.set_flags(job_id, canceled=True)
            self.store.jobs.request_stop_running(job_id, "canceled")
            self.jobs.note_if_final(job_id)

    def check_failed_cap(self, job_id: int) -> None:
        """Cancel the job if its failed tasks reached its cap (called after tasks of it failed
        for good, in the caller's transaction)."""
        if self.store.submitters.extras([job_id]).get(job_id, JobExtras()).max_failed_tasks:
            self._cancel_past_cap(job_id)

    def job_extras(self, job_ids: Iterable[int]) -> dict[int, JobExtras]:
        return self.store.submitters.extras(job_ids)

    def job_starts(self, job_ids: Iterable[int]) -> dict[int, float]:
        return self.store.submitters.job_starts(job_ids)

    # -- a job submitted through Deadline Cloud's API ----------------------------------------

    def submit_deadline(
        self,
        caller: Caller,
        body: openjd_schema.TemplateJobIn,
        *,
        max_failed_tasks: int | None,
        description: str | None,
    ) -> JobRecord:
        """Submit a template with the farm's queue environments entered before its own, and
        keep its failed-task cap and description."""
        caller.require(*SUBMITTERS)
        with self.unit.change():
            queue_envs = [e.template for e in self.store.submitters.environments()]
            body = body.model_copy(update={"environments": [*queue_envs, *body.environments]})
            job = self.jobs.submit_template(caller, body)
            if max_failed_tasks or description:
                self.store.submitters.set_extras(
                    job.id,
                    JobExtras(max_failed_tasks or None, description, self.clock.now(), caller.name),
                )
            return job

    # -- task-file jobs ----------------------------------------------------------------------

    def submit_task_file(self, caller: Caller, body: TaskFileJobIn) -> JobRecord:
        """A job whose tasks are the entries of a list, each its own argv."""
        caller.require(*SUBMITTERS)
        with self.unit.change():
            spec = compile_task_file(
                body, owner=caller.name, lookup=self.jobs.lookup, policy=self.jobs.policy
            )
            return self.jobs._create(caller, spec)

    # -- queue environments ---------------------------------------------------------------------

    def environments(self, caller: Caller) -> list[QueueEnvironment]:
        return self.store.submitters.environments()

    def environment(self, caller: Caller, env_id: int) -> QueueEnvironment:
        return self.store.submitters.environment(env_id)

    def add_environment(
        self, caller: Caller, *, name: str, priority: int, template: str
    ) -> QueueEnvironment:
        """Admins: add an environment template (validated) that every Deadline job enters."""
        caller.require("admin")
        load_environment_template(template)
        kind = "JSON" if template.lstrip().startswith("{") else "YAML"
        with self.unit.change():
            env_id = self.store.submitters.add_environment(
                name=name,
                priority=priority,
                template_type=kind,
                template=template,
                by=caller.name,
                now=self.clock.now(),
            )
            return self.store.submitters.environment(env_id)

    def delete_environment(self, caller: Caller, env_id: int) -> None:
        caller.require("admin")
        with self.unit.change():
            self.store.submitters.delete_environment(env_id)

    # -- attempts as sessions -------------------------------------------------------------------

    def task_runs(
        self, caller: Caller, job_id: int, block: int, indexes: Sequence[int]
    ) -> dict[int, TaskRuns]:
        with self.unit.transaction():
            self.jobs.get(caller, job_id)
            return self.store.submitters.task_runs(job_id, block, indexes)

    def job_attempts(
        self, caller: Caller, job_id: int, *, offset: int, limit: int
    ) -> list[AttemptRecord]:
        with self.unit.transaction():
            self.jobs.get(caller, job_id)
            return self.store.submitters.job_attempts(job_id, offset=offset, limit=limit)

    def attempt(self, caller: Caller, job_id: int, attempt_id: int) -> AttemptRecord:
        with self.unit.transaction():
            self.jobs.get(caller, job_id)
            return self.store.submitters.attempt(job_id, attempt_id)

    def runtimes(
        self, caller: Caller, start: float, end: float
    ) -> list[tuple[int, str, str, int, float, float, float]]:
        """Run times of the attempts started in [start, end), summed up by job (the jobs the
        caller may see)."""
        with self.unit.transaction():
            owners = visible_owners(self.store, caller)
            found = self.store.submitters.runtimes(start, end)
        return [row for row in found if owners is None or row[2] in owners]

    def attempt_by_id(self, caller: Caller, attempt_id: int) -> AttemptRecord:
        """An attempt of a job the caller may see (else NotFound)."""
        with self.unit.transaction():
            attempt = self.store.submitters.attempt(None, attempt_id)
            self.jobs.get(caller, attempt.job_id)
            return attempt

    def attempt_log(
        self, caller: Caller, attempt_id: int, *, before_id: int | None, limit: int
    ) -> list[tuple[int, str, str]]:
        return self.store.submitters.attempt_log(attempt_id, before_id=before_id, limit=limit)
