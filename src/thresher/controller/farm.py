"""The farm's use cases: what people and workers ask of the controller.

Routes translate HTTP to these calls; the store keeps state; `core` decides. Every change is
committed by the store before a method here returns, so an answer is never ahead of the database.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import replace

from thresher.controller import engine_jobs
from thresher.controller.auth import Caller, KnownCallers, issue_token
from thresher.controller.dispatch import Dispatch, Dispatcher, DispatchIndex
from thresher.controller.engines import EngineRegistry
from thresher.controller.notifier import Notifier
from thresher.controller.scheduling import Scheduling, plan_job
from thresher.controller.settings import ControllerSettings
from thresher.core import placeholders
from thresher.core.clock import Clock
from thresher.core.errors import Forbidden, InvalidInput, NotFound, StaleAttempt
from thresher.core.frames import FrameSet, TaskLayout
from thresher.core.model import Assignment, JobRecord
from thresher.core.states import AttemptStatus, JobStatus, TaskStatus
from thresher.schemas import api
from thresher.store.snapshot import HeldAttempt
from thresher.store.store import BlockSpec, FinishReport, JobSpec, Store, WorkerFacts

_FINAL_JOB = {JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELED}


def _finish_report(fin: api.FinishIn) -> FinishReport:
    return FinishReport(
        attempt_id=fin.attempt_id,
        token=fin.token,
        status=AttemptStatus(fin.status),
        exit_code=fin.exit_code,
        peak_rss_bytes=fin.peak_rss_bytes,
        duration_s=fin.duration_s,
        message=fin.message,
    )


def legacy_lanes(want: int, ahead: int) -> tuple[list[int], list[int]]:
    """Lanes for a poll that gives only counts: `want` free lanes 0.., and `ahead` extra short
    tasks spread over them."""
    lanes = list(range(want))
    spread = lanes or [0]
    return lanes, [spread[i % len(spread)] for i in range(ahead)]


def block_specs(job: api.JobIn) -> list[tuple[BlockSpec, list[str]]]:
    """Validate a submission's blocks and their commands, without touching the store."""
    if job.blocks and job.frames is not None:
        raise InvalidInput("give either 'frames' or 'blocks', not both", field="frames")
    blocks = job.blocks or [
        api.BlockIn(
            name="main",
            frames="1" if job.frames is None else job.frames,
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
        if job.kind == "command":  # engine jobs are checked by engine_jobs.resolve
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
        out.append((spec, list(command or [])))
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
        self.engines = EngineRegistry(store, clock)
        self.dispatch_index = DispatchIndex(store, clock, settings)
        self.dispatcher = Dispatcher(store, clock, self.dispatch_index)
        self.scheduling = Scheduling(store, clock, self.dispatch_index, changed=notifier.notify)
        # A worker's report (soft) reaches the index through `finish` -> `DispatchIndex.finished`.
        notifier.listeners.append(self._changed)
        self._worker_ids: dict[int, int] = {}  # worker token id -> worker id
        self.callers = KnownCallers(store)  # bearer tokens recently found valid
        self._seen: dict[int, float] = {}  # worker id -> last poll, not yet written
        self._flushed_at = 0.0

    # -- people: jobs ---------------------------------------------------------------------------

    def submit(self, caller: Caller, job: api.JobIn) -> int:
        caller.require("admin", "user")
        engine_job = engine_jobs.resolve(self.engines, job) if job.kind == "engine" else None
        if engine_job is not None:
            job = engine_job.job  # its range and bucket size, as frames and chunk
        specs = block_specs(job)
        for dep in job.after:
            try:
                self.store.get_job(dep)
            except NotFound:
                raise InvalidInput(f"job {dep} does not exist", field="after") from None
        job_id = self.store.create_job(
            plan_job(  # scheduling fields: filters, limits, caps, block deps, after_name
                self.store,
                caller,
                job,
                JobSpec(
                    name=job.name,
                    owner=caller.name,
                    priority=job.priority,
                    kind=job.kind,
                    blocks=tuple(
                        replace(spec, engine=engine_job.engine) if engine_job else spec
                        for spec, _ in specs
                    ),
                    after=tuple(job.after),
                    env=job.env,
                    cwd=job.cwd,
                    payload=engine_job.payload
                    if engine_job
                    else {"commands": [cmd for _, cmd in specs]},
                    paused=job.paused,
                    filters=job.filters or "",  # parsed by the dispatch index
                ),
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
        self.store.withdraw_stop_requests(job_id, "paused")
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
        self.store.withdraw_stop_requests(job_id, "canceled")
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
            gpus=body.gpus,
            capacity=body.capacity,
            lane_engines={k: tuple(v) for k, v in body.lane_engines.items()},
        )
        worker_id = self.store.register_worker(facts, token_id=token_id, now=self.clock.now())
        self._worker_ids.clear()  # the worker's old token no longer names it
        self.notifier.notify()
        return worker_id, token

    def _changed(self, soft: bool) -> None:
        if not soft:
            self.dispatch_index.invalidate()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """Every store call inside commits together, or none does (see `Store.transaction`).
        On a failure the dispatch index, which counted the claims and finishes rolled back, is
        rebuilt from the store."""
        try:
            with self.store.transaction():
                yield
        except BaseException:
            self.dispatch_index.rolled_back()
            raise

    def heartbeat(self, worker_id: int, now: float) -> None:
        """Refresh the worker's lease. Leases are written for all workers at once, at most
        every quarter lease (a second at most) and before every sweep: a busy farm polls far
        more often than that, and a write per poll would cost a transaction each."""
        self._seen[worker_id] = now
        if not 0 <= now - self._flushed_at < min(1.0, self.settings.lease_s / 4):
            self.flush_heartbeats()

    def flush_heartbeats(self) -> None:
        seen, self._seen = self._seen, {}
        self._flushed_at = self.clock.now()
        if seen:
            self.store.touch_workers(seen)

    def worker_of(self, caller: Caller) -> int:
        caller.require("worker")
        worker_id = self._worker_ids.get(caller.token_id)
        if worker_id is None:
            worker_id = self.store.worker_for_token(caller.token_id)
            if worker_id is None:
                raise Forbidden("this worker token is no longer enrolled")
            self._worker_ids[caller.token_id] = worker_id
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
        # One transaction for the whole report: a worker holding short tasks ahead reports
        # several finishes per poll.
        results = self.store.finish_attempts(
            [_finish_report(fin) for fin in finished], now=self.clock.now()
        )
        for fin, result in zip(finished, results, strict=True):
            if isinstance(result, StaleAttempt):
                stale.append(fin.attempt_id)
            elif result is not None:
                changed = True
                if self.dispatch_index.finished(fin.attempt_id, fin.status, fin.duration_s):
                    self._note_if_final(result)
        if changed:
            self.notifier.notify(soft=True)
        return stale

    def record_output(self, batch: api.OutputBatch) -> None:
        self.store.record_output(
            batch.attempt_id,
            batch.token,
            lines=batch.lines,
            progress=batch.progress,
            outputs=batch.outputs,
            status_message=batch.status_message,
        )

    def finish(self, fin: api.FinishIn) -> bool:
        job_id = self.store.finish_attempt(_finish_report(fin), now=self.clock.now())
        if job_id is None:
            return False
        if self.dispatch_index.finished(fin.attempt_id, fin.status, fin.duration_s):
            self._note_if_final(job_id)
        return True

    def _note_if_final(self, job_id: int) -> None:
        if self.store.job_unsettled(job_id):  # tasks still run or wait: cheap, and common
            return
        if self.store.get_job(job_id).status in _FINAL_JOB:
            self.store.mark_finished(job_id, self.clock.now())

    def claim(self, worker_id: int, want: int, ahead: int) -> list[Assignment]:
        """Hand the worker up to `want` tasks, plus up to `ahead` more of blocks whose tasks are
        short (so a lane never waits a round trip between two tiny tasks). For callers that do
        not name lanes: lanes 0..want-1 (see `dispatch`)."""
        held = self.store.worker_held(worker_id)
        lanes, ahead_lanes = legacy_lanes(want, ahead)
        return self.dispatch(
            worker_id, free_lanes=lanes, ahead_lanes=ahead_lanes, held=held
        ).assignments

    def dispatch(
        self,
        worker_id: int,
        *,
        free_lanes: Sequence[int],
        ahead_lanes: Sequence[int],
        held: Sequence[HeldAttempt],
    ) -> Dispatch:
        """Tasks for the worker's free lanes (and short ones ahead), chosen by the dispatch
        index and claimed atomically; and the attempts to preempt for a dedicated job."""
        if not free_lanes and not ahead_lanes and not held:
            return Dispatch()
        got = self.dispatcher.dispatch(
            worker_id, free_lanes=free_lanes, ahead_lanes=ahead_lanes, held=held
        )
        while self.dispatch_index.settled:
            self._note_if_final(self.dispatch_index.settled.pop())
        return got

    def sweep(self) -> list[int]:
        """Workers past their lease go offline; their attempts are lost and requeued."""
        self.flush_heartbeats()
        expired = self.store.expire_workers(now=self.clock.now(), lease_s=self.settings.lease_s)
        if expired:
            self.notifier.notify()
        return expired
