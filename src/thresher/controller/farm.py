"""The farm's use cases: what people and workers ask of the controller.

Routes translate HTTP to these calls; the store keeps state; `core` decides. Every change is
committed by the store before a method here returns, so an answer is never ahead of the database.
"""

from __future__ import annotations

from collections.abc import Sequence

from thresher.controller.auth import Caller, issue_token
from thresher.controller.notifier import Notifier
from thresher.controller.settings import ControllerSettings
from thresher.core import placeholders
from thresher.core.clock import Clock
from thresher.core.errors import Forbidden, InvalidInput, NotFound, StaleAttempt
from thresher.core.frames import FrameSet, TaskLayout
from thresher.core.model import Assignment, JobRecord
from thresher.core.states import AttemptStatus, JobStatus, TaskStatus
from thresher.schemas import api
from thresher.store.store import BlockSpec, FinishReport, JobSpec, Store, WorkerFacts

#: A block whose tasks take less than this on average may be handed out ahead of free lanes.
SHORT_TASK_S = 2.0
_FINAL_JOB = {JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELED}


def block_specs(job: api.JobIn) -> list[tuple[BlockSpec, list[str]]]:
    """Validate a submission's blocks and their commands, without touching the store."""
    if job.blocks and job.frames is not None:
        raise InvalidInput("give either 'frames' or 'blocks', not both", field="frames")
    blocks = job.blocks or [
        api.BlockIn(
            name="main",
            frames=job.frames or "1",
            chunk=job.chunk or 1,
            priority_frames=job.priority_frames,
            retries=3 if job.retries is None else job.retries,
            max_runtime_s=job.max_runtime_s,
            command=None,
        )
    ]
    out: list[tuple[BlockSpec, list[str]]] = []
    for i, block in enumerate(blocks):
        where = f"blocks[{i}]" if job.blocks else ""
        frames = FrameSet.parse(block.frames, field=f"{where}.frames".lstrip("."))
        priority = None
        if block.priority_frames:
            priority = FrameSet.parse(
                block.priority_frames, field=f"{where}.priority_frames".lstrip(".")
            )
        TaskLayout(frames, block.chunk, priority_frames=priority)
        command = block.command or job.command
        if not command:
            raise InvalidInput(
                "a command job needs a command", field=f"{where}.command".lstrip(".")
            )
        placeholders.check_template(command, chunk=block.chunk, field="command")
        spec = BlockSpec(
            name=block.name,
            frames=block.frames,
            chunk=block.chunk,
            priority_frames=block.priority_frames,
            retries=block.retries,
            max_runtime_s=block.max_runtime_s,
        )
        out.append((spec, list(command)))
    return out


class Farm:
    """Use cases over one store. One instance per controller process."""

    def __init__(
        self, store: Store, clock: Clock, settings: ControllerSettings, notifier: Notifier
    ) -> None:
        self.store = store
        self.clock = clock
        self.settings = settings
        self.notifier = notifier

    # -- people: jobs ---------------------------------------------------------------------------

    def submit(self, caller: Caller, job: api.JobIn) -> int:
        caller.require("admin", "user")
        specs = block_specs(job)
        for dep in job.after:
            try:
                self.store.get_job(dep)
            except NotFound:
                raise InvalidInput(f"job {dep} does not exist", field="after") from None
        job_id = self.store.create_job(
            JobSpec(
                name=job.name,
                owner=caller.name,
                priority=job.priority,
                kind=job.kind,
                blocks=tuple(spec for spec, _ in specs),
                after=tuple(job.after),
                env=job.env,
                cwd=job.cwd,
                payload={"commands": [cmd for _, cmd in specs]},
                paused=job.paused,
            ),
            now=self.clock.now(),
        )
        self.notifier.notify()
        return job_id

    def job(self, caller: Caller, job_id: int) -> JobRecord:
        return self.store.get_job(job_id)

    def _own(self, caller: Caller, job_id: int) -> JobRecord:
        caller.require("admin", "user")
        job = self.store.get_job(job_id)
        if not caller.is_admin and job.owner != caller.name:
            raise Forbidden(f"job {job_id} belongs to {job.owner}", field="job_id")
        return job

    def pause(self, caller: Caller, job_id: int) -> int:
        self._own(caller, job_id)
        self.store.set_job_flags(job_id, paused=True)
        n = self.store.request_cancel_running(job_id, "paused")
        self.notifier.notify()
        return n

    def resume(self, caller: Caller, job_id: int) -> int:
        self._own(caller, job_id)
        self.store.set_job_flags(job_id, paused=False)
        self.notifier.notify()
        return 0

    def cancel(self, caller: Caller, job_id: int) -> int:
        self._own(caller, job_id)
        self.store.set_job_flags(job_id, canceled=True)
        n = self.store.request_cancel_running(job_id, "canceled")
        self._note_if_final(job_id)
        self.notifier.notify()
        return n

    def retry(self, caller: Caller, job_id: int) -> int:
        self._own(caller, job_id)
        n = self.store.requeue_tasks(
            job_id, (TaskStatus.FAILED, TaskStatus.CANCELED), now=self.clock.now()
        )
        self.store.set_job_flags(job_id, canceled=False)
        self.notifier.notify()
        return n

    def set_priority(self, caller: Caller, job_id: int, priority: int) -> None:
        self._own(caller, job_id)
        self.store.set_priority(job_id, priority)
        self.notifier.notify()

    def delete(self, caller: Caller, job_id: int) -> None:
        self._own(caller, job_id)
        self.store.request_cancel_running(job_id, "canceled")
        self.store.delete_job(job_id)
        self.notifier.notify()

    # -- people: tasks --------------------------------------------------------------------------

    def retry_task(self, caller: Caller, job_id: int, block: int, index: int) -> None:
        self._own(caller, job_id)
        if not self.store.cancel_task_attempt(job_id, block, index, "retry"):
            self.store.set_task_status(
                job_id, block, index, TaskStatus.QUEUED, now=self.clock.now()
            )
        self.notifier.notify()

    def skip_task(self, caller: Caller, job_id: int, block: int, index: int) -> None:
        self._own(caller, job_id)
        if not self.store.cancel_task_attempt(job_id, block, index, "skipped"):
            self.store.set_task_status(
                job_id, block, index, TaskStatus.SKIPPED, now=self.clock.now()
            )
        self._note_if_final(job_id)
        self.notifier.notify()

    # -- people: workers and tokens -------------------------------------------------------------

    def set_worker_enabled(self, caller: Caller, name_or_id: str, enabled: bool) -> None:
        caller.require("admin")
        worker = self.store.find_worker(name_or_id)
        self.store.set_worker_enabled(worker.id, enabled)
        self.notifier.notify()

    def create_token(self, caller: Caller, name: str, role: str) -> tuple[int, str]:
        caller.require("admin")
        return issue_token(self.store, self.clock, name=name, role=role)

    # -- workers --------------------------------------------------------------------------------

    def register(self, caller: Caller, body: api.RegisterIn) -> tuple[int, str]:
        """Enrol a worker: an enrolment (or admin) token buys the worker a token of its own."""
        caller.require("enrol", "admin")
        token_id, token = issue_token(
            self.store, self.clock, name=f"worker:{body.name}", role="worker"
        )
        facts = WorkerFacts(
            name=body.name,
            hostname=body.hostname,
            os=body.os,
            cores=body.cores,
            ram_bytes=body.ram_bytes,
            site=body.site,
            pools=tuple(body.pools),
            attributes=body.attributes,
            lanes=body.lanes,
        )
        worker_id = self.store.register_worker(facts, token_id=token_id, now=self.clock.now())
        self.notifier.notify()
        return worker_id, token

    def worker_of(self, caller: Caller) -> int:
        caller.require("worker")
        worker_id = self.store.worker_for_token(caller.token_id)
        if worker_id is None:
            raise Forbidden("this worker token is no longer enrolled")
        return worker_id

    def report(
        self, worker_id: int, output: Sequence[api.OutputBatch], finished: Sequence[api.FinishIn]
    ) -> list[int]:
        """Store output and finishes; returns the attempts whose reports were stale."""
        stale: list[int] = []
        for batch in output:
            try:
                self.record_output(batch)
            except StaleAttempt:
                stale.append(batch.attempt_id)
        changed = False
        for fin in finished:
            try:
                changed |= self.finish(fin)
            except StaleAttempt:
                stale.append(fin.attempt_id)
        if changed:
            self.notifier.notify()
        return stale

    def record_output(self, batch: api.OutputBatch) -> None:
        self.store.record_output(
            batch.attempt_id, batch.token, lines=batch.lines, progress=batch.progress
        )

    def finish(self, fin: api.FinishIn) -> bool:
        job_id = self.store.finish_attempt(
            FinishReport(
                attempt_id=fin.attempt_id,
                token=fin.token,
                status=AttemptStatus(fin.status),
                exit_code=fin.exit_code,
                peak_rss_bytes=fin.peak_rss_bytes,
                duration_s=fin.duration_s,
                message=fin.message,
            ),
            now=self.clock.now(),
        )
        if job_id is None:
            return False
        self._note_if_final(job_id)
        return True

    def _note_if_final(self, job_id: int) -> None:
        if self.store.get_job(job_id).status in _FINAL_JOB:
            self.store.mark_finished(job_id, self.clock.now())

    def claim(self, worker_id: int, want: int, ahead: int) -> list[Assignment]:
        """Hand the worker up to `want` tasks, plus up to `ahead` more of blocks whose tasks are
        short (so a lane never waits a round trip between two tiny tasks)."""
        if want + ahead <= 0:
            return []
        worker = self.store.get_worker(worker_id)
        if not worker.enabled:
            return []
        avoid = self.store.online_worker_count() > 1
        out: list[Assignment] = []
        deps: dict[int, bool] = {}
        now = self.clock.now()
        for cand in self.store.claim_candidates():
            if cand.after:
                if cand.job_id not in deps:
                    deps[cand.job_id] = self.store.deps_pending(cand.after)
                if deps[cand.job_id]:
                    continue
            while len(out) < want + ahead:
                short = cand.mean_runtime_s is not None and cand.mean_runtime_s < SHORT_TASK_S
                if len(out) >= want and not short:
                    break
                got = self.store.claim_task(
                    cand,
                    worker_id=worker_id,
                    now=now,
                    avoid_failed_since=now - self.settings.retry_elsewhere_s if avoid else None,
                )
                if got is None:
                    break
                out.append(got)
            if len(out) >= want + ahead:
                break
        return out

    def sweep(self) -> list[int]:
        """Workers past their lease go offline; their attempts are lost and requeued."""
        expired = self.store.expire_workers(now=self.clock.now(), lease_s=self.settings.lease_s)
        if expired:
            self.notifier.notify()
        return expired
