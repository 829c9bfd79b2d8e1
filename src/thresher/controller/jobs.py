"""People's use cases for jobs and their tasks: submit, read, pause, resume, cancel, retry,
priority, delete, retry or skip one task. Each is one transaction (`UnitOfWork`)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace

from thresher.controller.auth import ADMIN, ARTIST, WRANGLER, Caller
from thresher.controller.compile import compile_job, compile_template
from thresher.controller.compile.lookup import EngineRules
from thresher.controller.compile.policy import SubmitPolicy
from thresher.controller.engines import EngineRegistry
from thresher.controller.notifications import final_kind, job_event_row
from thresher.controller.sites import submission_fields
from thresher.controller.unit import UnitOfWork
from thresher.controller.visibility import (
    check_may_change,
    check_submission,
    check_visible,
    visible_owners,
)
from thresher.core.clock import Clock
from thresher.core.errors import InvalidInput, NotFound, ProblemCollector
from thresher.core.events import EventKind
from thresher.core.model import AttemptRecord, JobRecord, JobSpec, TaskRecord
from thresher.core.states import JobStatus, TaskStatus
from thresher.core.volumes import Volume, check_refs
from thresher.schemas import api
from thresher.schemas import openjd as openjd_schema
from thresher.store.store import Store

#: Who submits and acts on jobs (an artist: its own).
SUBMITTERS = (ADMIN, WRANGLER, ARTIST)
FINAL_JOB = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELED})


@dataclass(frozen=True)
class Acted:
    """What an action on a job did: the job as it is now and how many tasks it touched."""

    job: JobRecord
    affected: int


class _Volumes(Mapping[str, Volume]):
    """The declared volumes, read on first use: a submission naming no share path (most)
    costs no read."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._read: dict[str, Volume] | None = None

    def _all(self) -> dict[str, Volume]:
        if self._read is None:
            self._read = self._store.sites.volumes()
        return self._read

    def __getitem__(self, name: str) -> Volume:
        return self._all()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._all())

    def __len__(self) -> int:
        return len(self._all())


class StoreLookup:
    """What compiling a submission asks of the farm, answered from the store and engines."""

    def __init__(self, store: Store, engines: EngineRegistry) -> None:
        self.store, self.engines = store, engines

    def engine(self, name: str) -> EngineRules:
        try:
            record = self.store.engines.get(name)
        except NotFound:
            known = ", ".join(r.name for r in self.store.engines.all() if r.enabled)
            raise InvalidInput(
                f"unknown engine {name!r}; known: {known or 'none'}", field="engine"
            ) from None
        if not record.enabled:
            raise InvalidInput(f"engine {name!r} is disabled", field="engine")
        return self.engines.rules(record)

    def missing_jobs(self, ids: Iterable[int]) -> list[int]:
        return self.store.jobs.missing(ids)

    def missing_limits(self, names: Iterable[str]) -> list[str]:
        return self.store.limits.missing(names)

    def jobs_matching(self, pattern: str, *, owner: str | None) -> Sequence[int]:
        return self.store.scheduling.jobs_matching(pattern, owner=owner)


class Jobs:
    """Jobs and tasks, as people see and change them."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        unit: UnitOfWork,
        engines: EngineRegistry,
        policy: SubmitPolicy,
    ) -> None:
        self.store, self.clock, self.unit = store, clock, unit
        self.lookup = StoreLookup(store, engines)
        self.policy = policy
        # Told of a job whose tasks may have failed for good (the failed-task cap, see
        # controller/submitters.py), in the transaction of the failure.
        self.on_failures: Callable[[int], None] | None = None

    # -- submit and read ------------------------------------------------------------------------

    def submit(self, caller: Caller, body: api.JobIn) -> JobRecord:
        """Compile and store a command or engine job (accsyn's shape included)."""
        caller.require(*SUBMITTERS)
        with self.unit.change():
            problems = ProblemCollector()  # share paths and the rest, reported together
            with problems.check():
                check_refs(submission_fields(body), _Volumes(self.store))
            with problems.check():
                self._check_output_site(body)
            spec: JobSpec | None = None
            with problems.check():
                spec = compile_job(body, owner=caller.name, lookup=self.lookup, policy=self.policy)
            problems.raise_found()
            assert spec is not None
            job = self._create(caller, spec)
            for site, settings in (body.sites or {}).items():
                changes = settings.model_dump(exclude_none=True)
                self.store.sites.set_job_site(job.id, site, changes, now=self.clock.now())
            return job

    def _check_output_site(self, body: api.JobIn) -> None:
        """The site outputs go back to, where the job names one, is a declared site."""
        chosen = body.settings.output_site if body.settings else None
        if chosen is not None and chosen not in {s.name for s in self.store.sites.sites()}:
            raise InvalidInput(
                f"site {chosen!r} is not declared (thresher sites set)",
                field="settings.output_site",
            )

    def submit_template(self, caller: Caller, body: openjd_schema.TemplateJobIn) -> JobRecord:
        """Compile and store an OpenJD template job; a TemplateError lists every problem."""
        caller.require(*SUBMITTERS)
        with self.unit.change():
            check_refs({"parameters": body.parameters}, _Volumes(self.store))
            return self._create(
                caller,
                compile_template(body, owner=caller.name, lookup=self.lookup, policy=self.policy),
            )

    def _create(self, caller: Caller, spec: JobSpec) -> JobRecord:
        check_submission(caller, spec)
        now = self.clock.now()
        job = self.store.jobs.add(
            spec, now=now, event=lambda j: job_event_row(j, EventKind.JOB_SUBMITTED, now=now)
        )
        self.store.dispatch.know_job(job)  # its first claim reads none of it again
        self.unit.job_added(job.id, job)  # its blocks join the index from the record
        return job

    def get(self, caller: Caller, job_id: int) -> JobRecord:
        """The job, if the caller may see it (else NotFound, as if there were none)."""
        job = self.store.jobs.get(job_id)
        check_visible(self.store, caller, job_id, job.spec.owner)
        return job

    def _visible(self, caller: Caller, job_id: int) -> None:
        self.get(caller, job_id)

    def list_jobs(
        self,
        caller: Caller,
        *,
        owner: str | None = None,
        statuses: Iterable[str] = (),
        limit: int = 100,
        offset: int = 0,
    ) -> list[JobRecord]:
        """Newest first; `statuses` by name (an unknown one is refused naming `status`)."""
        wanted = []
        for name in statuses:
            try:
                wanted.append(JobStatus(name))
            except ValueError:
                known = ", ".join(s.value for s in JobStatus)
                raise InvalidInput(
                    f"unknown status {name!r}; one of {known}", field="status"
                ) from None
        return self.store.jobs.page(
            owner=owner,
            owners=visible_owners(self.store, caller),
            statuses=wanted,
            limit=limit,
            offset=offset,
        )

    def tasks(
        self, caller: Caller, job_id: int, *, block: int, offset: int, limit: int
    ) -> tuple[int, list[TaskRecord]]:
        """(total, page) of one block's tasks, waiting ones synthesised."""
        self._visible(caller, job_id)
        return self.store.tasks.page(job_id, block_index=block, offset=offset, limit=limit)

    def task(
        self, caller: Caller, job_id: int, block: int, index: int
    ) -> tuple[TaskRecord, list[AttemptRecord]]:
        """One task with every attempt it had."""
        with self.unit.transaction():
            self._visible(caller, job_id)
            task = self.store.tasks.get(job_id, block, index)
            return task, self.store.attempts.of_task(job_id, block, index)

    def attempts(self, caller: Caller, job_id: int) -> list[AttemptRecord]:
        """Every attempt of the job, oldest first: the job's history."""
        with self.unit.transaction():
            self._visible(caller, job_id)
            return self.store.attempts.of_job(job_id)

    def log(
        self,
        caller: Caller,
        job_id: int,
        block: int,
        index: int,
        *,
        after: int,
        limit: int,
        max_bytes: int,
    ) -> tuple[list[tuple[int, int, str, str]], bool]:
        """(line id, attempt id, stream, text) of the task's output after line `after`: at most
        `limit` lines and `max_bytes` of text; and whether more follow."""
        with self.unit.transaction():
            self._visible(caller, job_id)
            self.store.tasks.get(job_id, block, index)
            return self.store.attempts.log_page(
                job_id, block, index, after_id=after, limit=limit, max_bytes=max_bytes
            )

    # -- actions --------------------------------------------------------------------------------

    def _own(self, caller: Caller, job_id: int) -> JobRecord:
        caller.require(*SUBMITTERS)
        job = self.store.jobs.get(job_id)
        check_may_change(self.store, caller, job_id, job.spec.owner)
        return job

    def pause(self, caller: Caller, job_id: int) -> Acted:
        """Take nothing new; running tasks are stopped and requeued."""
        with self.unit.change():
            self._own(caller, job_id)
            self.store.jobs.set_flags(job_id, paused=True)
            n = self.store.jobs.request_stop_running(job_id, "paused")
            return Acted(self.store.jobs.get(job_id), n)

    def resume(self, caller: Caller, job_id: int) -> Acted:
        with self.unit.change():
            self._own(caller, job_id)
            self.store.jobs.set_flags(job_id, paused=False)
            self.store.jobs.withdraw_stop_requests(job_id, "paused")
            return Acted(self.store.jobs.get(job_id), 0)

    def cancel(self, caller: Caller, job_id: int) -> Acted:
        with self.unit.change():
            self._own(caller, job_id)
            self.store.jobs.set_flags(job_id, canceled=True)
            n = self.store.jobs.request_stop_running(job_id, "canceled")
            self.note_if_final(job_id)
            return Acted(self.store.jobs.get(job_id), n)

    def retry(self, caller: Caller, job_id: int) -> Acted:
        """Requeue the failed and canceled tasks, their failures forgiven."""
        with self.unit.change():
            self._own(caller, job_id)
            n = self.store.jobs.requeue_tasks(
                job_id, (TaskStatus.FAILED, TaskStatus.CANCELED), now=self.clock.now()
            )
            self.store.jobs.set_flags(job_id, canceled=False)
            self.store.jobs.withdraw_stop_requests(job_id, "canceled")
            return Acted(self.store.jobs.get(job_id), n)

    def set_priority(self, caller: Caller, job_id: int, priority: int) -> Acted:
        with self.unit.change():
            self._own(caller, job_id)
            self.store.jobs.set_priority(job_id, priority)
            return Acted(self.store.jobs.get(job_id), 0)

    def delete(self, caller: Caller, job_id: int) -> None:
        """Delete the job. The jobs waiting on it can never run: they fail, saying so."""
        with self.unit.change():
            self._own(caller, job_id)
            self.store.jobs.request_stop_running(job_id, "canceled")
            waiting = self.store.jobs.waiting_on(job_id)
            self.store.jobs.delete(job_id)
            self.store.sites.delete_job(job_id)  # its sync per site
            for other in waiting:
                self._stamp_if_final(self.store.jobs.get(other))

    def retry_task(self, caller: Caller, job_id: int, block: int, index: int) -> None:
        """Run one task again (a running one is stopped first, then requeued); the tasks that
        waited on it in vain run again too."""
        with self.unit.change():
            self._own(caller, job_id)
            if not self.store.attempts.stop_task(job_id, block, index, "retry"):
                self.store.tasks.set_status(
                    job_id, block, index, TaskStatus.QUEUED, now=self.clock.now()
                )
                self.note_if_final(job_id, restore=True)

    def skip_task(self, caller: Caller, job_id: int, block: int, index: int) -> None:
        """Count one task as done without running it (a running one is stopped)."""
        with self.unit.change():
            self._own(caller, job_id)
            if not self.store.attempts.stop_task(job_id, block, index, "skipped"):
                self.store.tasks.set_status(
                    job_id, block, index, TaskStatus.SKIPPED, now=self.clock.now()
                )
            self.note_if_final(job_id, restore=True)

    def note_if_final(self, job_id: int, *, restore: bool = False, mark: bool = True) -> None:
        """Mark the job's tasks that can never run (they wait on a task failed for good; with
        `restore`, after a retry or a skip, unmark those that may run again), then stamp the
        job's finish time once nothing of it can run any more (in the caller's transaction).
        `mark=False`: nothing failed (a worker's successes), so nothing new can be marked."""
        if mark or restore:
            self.store.tasks.mark_never_run(job_id, now=self.clock.now(), restore=restore)
        if mark and self.on_failures is not None:
            self.on_failures(job_id)
        # One read: none while tasks still run or wait (cheap, and common), else the record.
        job = self.store.jobs.settled(job_id)
        if job is not None:
            self._stamp_if_final(job)

    def _stamp_if_final(self, job: JobRecord) -> None:
        """Stamp the job's end and write its event (one statement on PostgreSQL) if it is final
        and was not stamped yet."""
        now = self.clock.now()
        if job.status not in FINAL_JOB:
            return
        event = job_event_row(job, final_kind(job.status), now=now)
        block_ids = [b.id for b in job.blocks]
        if self.store.jobs.mark_finished(job.id, now, event=event, block_ids=block_ids):
            # as the commit leaves it: its waiters are answered without reading it again
            self.unit.job_ended(job.id, replace(job, finished_at=now))
