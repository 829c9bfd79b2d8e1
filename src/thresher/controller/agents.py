"""Workers' use cases: enrol, the long-poll (heartbeat, reports and claims in one call, held
open until work appears), reports while a poll is held, output, finishes, and the sweep of
workers gone silent."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from thresher.controller.auth import Caller, issue_token
from thresher.controller.convert import assignment_out, finish_report, registration
from thresher.controller.dispatch import Dispatch, Dispatcher, DispatchIndex
from thresher.controller.jobs import Jobs
from thresher.controller.scheduling import Scheduling
from thresher.controller.settings import ControllerSettings
from thresher.controller.unit import UnitOfWork
from thresher.core.clock import Clock
from thresher.core.errors import Forbidden, StaleAttempt
from thresher.schemas import api
from thresher.store.snapshot import HeldAttempt
from thresher.store.store import Store


class Agents:
    """What workers ask of the controller."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        settings: ControllerSettings,
        *,
        unit: UnitOfWork,
        index: DispatchIndex,
        dispatcher: Dispatcher,
        scheduling: Scheduling,
        jobs: Jobs,
    ) -> None:
        self.store, self.clock, self.settings = store, clock, settings
        self.unit, self.scheduling, self.jobs = unit, scheduling, jobs
        self.index, self.dispatcher = index, dispatcher
        self.notifier = unit.notifier
        self._worker_ids: dict[int, int] = {}  # worker token id -> worker id
        self._seen: dict[int, float] = {}  # worker id -> last poll, not yet written
        self._flushed_at = 0.0

    # -- enrolment and identity -----------------------------------------------------------------

    def register(self, caller: Caller, body: api.RegisterIn) -> api.RegisterOut:
        """Enrol a worker: an enrolment (or admin) token buys the worker a token of its own."""
        caller.require("enrol", "admin")
        with self.unit.change():
            token_id, token = issue_token(
                self.store, self.clock, name=f"worker:{body.name}", role="worker"
            )
            worker_id = self.store.workers.register(
                registration(body), token_id=token_id, now=self.clock.now()
            )
        self._worker_ids.clear()  # the worker's old token no longer names it
        return api.RegisterOut(
            worker_id=worker_id,
            token=token,
            heartbeat_s=self.settings.heartbeat_s,
            lease_s=self.settings.lease_s,
        )

    def worker_of(self, caller: Caller) -> int:
        """The worker a worker token names (kept, so a poll needs no lookup)."""
        caller.require("worker")
        worker_id = self._worker_ids.get(caller.token_id)
        if worker_id is None:
            worker_id = self.store.workers.for_token(caller.token_id)
            if worker_id is None:
                raise Forbidden("this worker token is no longer enrolled")
            self._worker_ids[caller.token_id] = worker_id
        return worker_id

    # -- leases ---------------------------------------------------------------------------------

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
            self.store.workers.touch_many(seen)

    def sweep(self) -> list[int]:
        """Workers past their lease go offline; their attempts are lost and requeued."""
        with self.unit.transaction():
            self.flush_heartbeats()
            expired = self.store.workers.expire(now=self.clock.now(), lease_s=self.settings.lease_s)
        if expired:
            self.notifier.notify()
        return expired

    # -- reports --------------------------------------------------------------------------------

    def _report(
        self, output: Sequence[api.OutputBatch], finished: Sequence[api.FinishIn]
    ) -> list[int]:
        """Store output and finishes (in the caller's transaction); returns the attempts whose
        reports were stale."""
        stale: list[int] = []
        for batch in output:
            try:
                self._record_output(batch)
            except StaleAttempt:
                stale.append(batch.attempt_id)
        # One statement set for all finishes: a worker holding short tasks ahead reports
        # several per poll.
        results = self.store.attempts.finish_many(
            [finish_report(fin) for fin in finished], now=self.clock.now()
        )
        for fin, result in zip(finished, results, strict=True):
            if isinstance(result, StaleAttempt):
                stale.append(fin.attempt_id)
            elif result is not None and self.index.finished(
                fin.attempt_id, fin.status, fin.duration_s
            ):
                self.jobs.note_if_final(result)
        return stale

    def _record_output(self, batch: api.OutputBatch) -> None:
        self.store.attempts.record_output(
            batch.attempt_id,
            batch.token,
            lines=batch.lines,
            progress=batch.progress,
            outputs=batch.outputs,
            status_message=batch.status_message,
        )

    def report(self, caller: Caller, body: api.ReportIn) -> api.PollOut:
        """Output and finishes sent while a poll is held open; no claim, no reconciliation."""
        worker_id = self.worker_of(caller)
        with self.unit.transaction():
            self.heartbeat(worker_id, self.clock.now())
            stale = self._report(body.output, body.finished)
            stop = self.store.workers.attempts_to_stop(worker_id)
        if body.finished:
            self.notifier.notify(soft=True)
        return self._answer(worker_id, Dispatch(), stop=stop, stale=stale, with_nimby=False)

    # -- the long-poll --------------------------------------------------------------------------

    async def poll(
        self,
        caller: Caller,
        body: api.PollIn,
        *,
        disconnected: Callable[[], Awaitable[bool]],
    ) -> api.PollOut:
        """Answer at once when there is work or something to stop; else wait for a
        notification up to the hold time, refreshing the worker's lease every heartbeat while
        it waits."""
        worker_id = self.worker_of(caller)
        started = self.clock.now()
        free, ahead = list(body.lanes), list(body.ahead_lanes)
        # The reports, the reconciliation and the first claim in one transaction: one commit
        # per poll, and a failure midway leaves nothing half-written (the worker sends it all
        # again).
        with self.unit.transaction():
            self.heartbeat(worker_id, started)
            stale = self._report(body.output, body.finished)
            self.scheduling.note_local_nimby(worker_id, body.nimby)
            held, stale = self._reconcile(worker_id, body, stale, started)
            generation = self.notifier.generation
            got = self._dispatch(worker_id, free, ahead, held)
        if body.finished:
            self.notifier.notify(soft=True)
        deadline = started + min(body.wait_s, self.settings.poll_hold_s)
        last_touch = started
        while True:
            stop = sorted({h.id for h in held if h.cancel_reason is not None} | set(got.preempted))
            now = self.clock.now()
            if got.assignments or stop or now >= deadline or self.notifier.closing:
                break
            if await disconnected():
                break
            if now - last_touch >= self.settings.heartbeat_s:
                self.heartbeat(worker_id, now)
                last_touch = now
            # A change the dispatch index has yet to see (a finish) wakes us when it is seen.
            pending = self.index.pending_in()
            wait = min(
                deadline - now,
                self.settings.heartbeat_s,
                pending if pending is not None else 1e9,
            )
            if await self.notifier.wait(generation, max(wait, 0.005)):
                held = self.store.snapshot.worker_held(worker_id)
            generation = self.notifier.generation
            with self.unit.transaction():
                got = self._dispatch(worker_id, free, ahead, held)
        return self._answer(worker_id, got, stop=stop, stale=stale, with_nimby=True)

    def _reconcile(
        self, worker_id: int, body: api.PollIn, stale: list[int], started: float
    ) -> tuple[list[HeldAttempt], list[int]]:
        """What the store holds for the worker after losing what it no longer reports (a
        reply lost in transit), and the attempts it runs that must die (deleted, lost, ended)."""
        reported = {r.attempt_id for r in body.running} | {f.attempt_id for f in body.finished}
        held = self.store.snapshot.worker_held(worker_id)
        if any(h.created_at < started and h.id not in reported for h in held):
            self.store.workers.lose_unreported(worker_id, reported, before=started, now=started)
            self.index.invalidate()  # their tasks are back in the queue
            held = self.store.snapshot.worker_held(worker_id)
        running = {r.attempt_id for r in body.running} - {f.attempt_id for f in body.finished}
        return held, sorted(set(stale) | (running - {h.id for h in held}))

    def _dispatch(
        self,
        worker_id: int,
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
        while self.index.settled:
            self.jobs.note_if_final(self.index.settled.pop())
        return got

    def _answer(
        self, worker_id: int, got: Dispatch, *, stop: list[int], stale: list[int], with_nimby: bool
    ) -> api.PollOut:
        nimby, _ = self.index.worker_state(worker_id)
        return api.PollOut(
            assignments=[assignment_out(a) for a in got.assignments],
            stop=stop,
            stale=stale,
            heartbeat_s=self.settings.heartbeat_s,
            lease_s=self.settings.lease_s,
            enabled=self.index.worker_enabled(worker_id),
            nimby=nimby.value if nimby and with_nimby else None,
        )
