"""Workers' use cases: enrol, the long-poll (heartbeat, reports and claims in one call, held
open until work appears), reports while a poll is held, output, finishes, and the sweep of
workers gone silent."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol, TypeVar

from thresher.controller.auth import Caller, enrol_code_hash, issue_token
from thresher.controller.convert import assignment_out, built, registration
from thresher.controller.dispatch import Dispatch, Dispatcher, DispatchIndex
from thresher.controller.farm_thread import retrying
from thresher.controller.jobs import Jobs
from thresher.controller.monitor import SampleKeeper
from thresher.controller.notifications import DiskWatch, workers_lost, workers_sick
from thresher.controller.poll_state import FirstRound, HeldPoll, IdlePolls, reconcile
from thresher.controller.reports import Reports
from thresher.controller.scheduling import Scheduling
from thresher.controller.settings import ControllerSettings
from thresher.controller.unit import UnitOfWork
from thresher.core.clock import Clock
from thresher.core.errors import Conflict, Forbidden, NotFound
from thresher.core.model import Assignment
from thresher.core.states import WorkerStatus
from thresher.schemas import api
from thresher.store.snapshot import HeldAttempt
from thresher.store.store import Store

T = TypeVar("T")


class Runner(Protocol):
    """Runs a function on the farm thread (see `FarmThread.run`)."""

    def __call__(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Awaitable[T]: ...


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
        run: Runner,
    ) -> None:
        self.store, self.clock, self.settings = store, clock, settings
        self.unit, self.scheduling, self.jobs = unit, scheduling, jobs
        self.index, self.dispatcher = index, dispatcher
        self.notifier = unit.notifier
        self.run = run  # runs a round of a held poll on the farm thread
        # Runs a poll's first round on the farm thread, with polls queued beside it (`Farm`).
        self.first_round: Callable[[Caller, api.PollIn], Awaitable[HeldPoll]] = functools.partial(
            run, self._first_round
        )
        self._worker_ids: dict[int, int] = {}  # worker token id -> worker id
        self._lanes: dict[int, int] = {}  # worker id -> lanes it enrolled with
        self._seen: dict[int, float] = {}  # worker id -> last poll, not yet written
        # worker id -> last heard, written or not: a worker heard within its lease is never
        # expired, even when writing its lease failed (the database away, its disk full).
        self._heard: dict[int, float] = {}
        self._flushed_at = 0.0
        self._leased: dict[int, float] = {}  # worker id -> the lease this process last wrote
        self.samples = SampleKeeper(store)  # resource samples polls carry (web monitor)
        self.reports = Reports(store, clock, settings, index=index, jobs=jobs)
        self.disk = DiskWatch(store, settings.disk_low_bytes)  # worker.disk_low events
        self.idle = IdlePolls()  # held polls waiting now, for a submission to claim for

    # -- enrolment and identity -----------------------------------------------------------------

    def register(self, caller: Caller, body: api.RegisterIn) -> api.RegisterOut:
        """Enrol a worker: an enrolment (or admin) token buys the worker a token of its own.
        A name a live worker uses (its lease running) is refused, so nobody takes over its
        tasks; the worker itself, restarted, re-attaches with its own token (what its old
        process ran is lost and requeued) and gets a new token for the new process."""
        caller.require("enrol", "admin", "worker")
        return self._enrol(caller, body)

    def enrol_with_code(self, code: str, body: api.RegisterIn) -> api.RegisterOut:
        """Enrol a worker with a one-time code (`thresher workers enrol-code`): the code is
        spent in the same transaction that gives the worker its token, so a second use (or
        a race for it) is refused."""
        return self._enrol(None, body, code=code)

    def _enrol(
        self, caller: Caller | None, body: api.RegisterIn, *, code: str | None = None
    ) -> api.RegisterOut:
        with self.unit.change():
            if code is not None:
                self.use_code(code, worker=body.name)
            self._check_name_free(caller, body.name)
            token_id, token = issue_token(
                self.store,
                self.clock,
                name=f"worker:{body.name}",
                role="worker",
                label="enrolled by code" if code else None,
                created_by=caller.name if caller else None,
            )
            worker_id = self.store.workers.register(
                registration(body), token_id=token_id, now=self.clock.now()
            )
            if caller is not None and caller.role == "worker":
                self.store.tokens.revoke(caller.token_id)
        self._worker_ids.clear()  # the worker's old token no longer names it
        self._lanes.pop(worker_id, None)  # it may have enrolled again with other lanes
        return api.RegisterOut(
            worker_id=worker_id,
            token=token,
            heartbeat_s=self.settings.heartbeat_s,
            lease_s=self.settings.lease_s,
        )

    def _check_name_free(self, caller: Caller | None, name: str) -> None:
        """Refuse a name in use by a live worker, unless that worker is the caller."""
        if caller is not None and caller.role == "worker":
            if self.store.workers.for_token(caller.token_id) != self._worker_id_of(name):
                raise Forbidden(f"a worker token can only re-attach its own worker, not {name!r}")
            return
        self.flush_heartbeats()
        try:
            worker = self.store.workers.find(name)
        except NotFound:
            return
        silent_s = self.clock.now() - worker.last_seen
        if worker.status is WorkerStatus.ONLINE and silent_s < self.settings.lease_s:
            raise Conflict(
                f"worker name {name!r} is in use by a live worker (heard from {silent_s:.0f} s "
                "ago): stop it first, wait for its lease to run out, or choose another name",
                field="name",
            )

    def _worker_id_of(self, name: str) -> int | None:
        try:
            return self.store.workers.find(name).id
        except NotFound:
            return None

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
        more often than that, and a write per poll would cost a transaction each. A worker's
        lease written less than a quarter lease ago stands: each write is a version of its row
        that a held snapshot keeps and each later lookup of the row walks."""
        self._heard[worker_id] = now
        leased = self._leased.get(worker_id)
        if leased is None or not 0 <= now - leased < self.settings.lease_s / 4:
            self._seen[worker_id] = now
        if not 0 <= now - self._flushed_at < min(1.0, self.settings.lease_s / 4):
            self.flush_heartbeats()

    def flush_heartbeats(self) -> None:
        seen, self._seen = self._seen, {}
        self._flushed_at = self.clock.now()
        if not seen:
            return
        try:
            self.store.workers.touch_many(seen)
            self._leased.update(seen)
        except BaseException:  # not written (the database away): still heard, kept for later
            for worker_id, at in seen.items():
                self._seen[worker_id] = max(at, self._seen.get(worker_id, at))
            raise

    def sweep(self) -> list[int]:
        """Workers past their lease go offline; their attempts are lost and requeued. Within a
        lease of the store being unavailable, every online worker gets a fresh lease instead:
        what could not be heard meanwhile (workers backing off from 503s included) is not the
        workers' fault, and their finished work is accepted when they report it."""
        now = self.clock.now()
        lease_s = self.settings.lease_s
        with self.unit.transaction():
            down_at = self.unit.unavailable_at
            if down_at is not None and now - down_at < lease_s:
                # Heartbeats heard before the outage and never written would set a lease back
                # once written: the fresh leases given here replace them.
                self._seen.clear()
                self.store.workers.refresh_all(now)
                return []
            self.flush_heartbeats()
            heard = [w for w, at in self._heard.items() if now - at < lease_s]
            expired = self.store.workers.expire(now=now, lease_s=lease_s, keep=heard)
            workers_lost(self.store, expired, now=now)
            sick, self.index.newly_sick = self.index.newly_sick, []
            workers_sick(self.store, sick, now=now)
        if expired:
            self.notifier.notify()
        return expired

    def goodbye(self, caller: Caller) -> None:
        """A worker stopping on purpose: offline at once, what it ran requeued (not charged
        to anyone, like a lost attempt)."""
        worker_id = self.worker_of(caller)
        with self.unit.change():
            self.store.workers.go_offline(worker_id, now=self.clock.now())
        self._seen.pop(worker_id, None)
        self._heard.pop(worker_id, None)
        self._leased.pop(worker_id, None)

    # -- reports --------------------------------------------------------------------------------

    def report(self, caller: Caller, body: api.ReportIn) -> api.PollOut:
        """Output and finishes sent while a poll is held open; no claim, no reconciliation."""
        worker_id = self.worker_of(caller)
        with self.unit.transaction():
            self.heartbeat(worker_id, self.clock.now())
            (stale,) = self.reports.store_all([(body.output, body.finished)], [worker_id])
            # The worker's running attempts, as a finish read them with it (else read now).
            held = self.store.snapshot.held_after_reports(worker_id)
        stop = [h.id for h in held if h.cancel_reason is not None]
        if body.finished:
            self.notifier.notify(soft=True)
        elif body.output:
            self.notifier.touch()
        return self._answer(worker_id, [], stop=stop, stale=stale, nimby=False)

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
        it waits. The store work of each round runs on the farm thread; the wait, on the loop."""
        # Read before the first round: a change committed after this wakes the wait below.
        generation = self.notifier.generation
        held = await self.first_round(caller, body)
        while held.answer is None:
            if self.notifier.closing or await disconnected():
                held = await self.run(self._last_round, held)
                break
            slot = self.idle.add(held)
            try:
                woke = await self.notifier.wait(generation, held.wait_s)
            finally:
                ours = self.idle.leave(slot)
            generation = self.notifier.generation
            handed = None if ours else await slot.future  # a submission claimed for it
            if handed is None:
                handed = await self.run(self._next_round, held, woke=woke)
            held = handed
        assert held.answer is not None
        return held.answer

    def _first_round(self, caller: Caller, body: api.PollIn) -> HeldPoll:
        """The reports, the reconciliation and the first claim in one transaction: one commit
        per poll, and a failure midway leaves nothing half-written (the worker sends it all
        again)."""
        worker_id = self.worker_of(caller)
        self._check_lanes(worker_id, body)
        return self._first_round_alone(worker_id, body)

    def first_rounds(
        self, polls: Sequence[tuple[Caller, api.PollIn]]
    ) -> list[HeldPoll | Exception]:
        """The first rounds of several polls queued together on the farm thread, in one
        transaction: one commit for all, none answered before it. Each poll is still all or
        nothing: if any of them fails (or the commit does), nothing of the group was written,
        and each runs again alone in a transaction of its own (`_first_round`), so one
        worker's bad poll costs the others only the time. A poll's outcome is its round or the
        exception its caller gets."""
        if len(polls) == 1:  # an exception is its caller's (the farm thread retries conflicts)
            return [self._first_round(*polls[0])]
        outcomes: list[HeldPoll | Exception | None] = [None] * len(polls)
        ready: list[tuple[int, int, api.PollIn]] = []
        for i, (caller, body) in enumerate(polls):
            try:
                worker_id = self.worker_of(caller)
                self._check_lanes(worker_id, body)
            except Exception as exc:
                outcomes[i] = exc
                continue
            ready.append((i, worker_id, body))
        try:
            # The group's claims written together at its end (`store.claims_later`); if they
            # cannot all be, each poll runs alone, its claims written at once.
            with self.unit.transaction(claims_later=True):
                rounds = self._first_rounds_in([(w, body) for _, w, body in ready])
                steps = [(i, step) for (i, _, _), step in zip(ready, rounds, strict=True)]
        except Exception:
            for i, w, body in ready:
                try:
                    outcomes[i] = retrying(functools.partial(self._first_round_alone, w, body))
                except Exception as exc:
                    outcomes[i] = exc
        else:
            for i, step in steps:
                outcomes[i] = self._first_round_done(step)
        return [o if o is not None else RuntimeError("no outcome") for o in outcomes]

    def _first_round_alone(self, worker_id: int, body: api.PollIn) -> HeldPoll:
        with self.unit.transaction():
            (step,) = self._first_rounds_in([(worker_id, body)])
        return self._first_round_done(step)

    def _first_rounds_in(self, polls: Sequence[tuple[int, api.PollIn]]) -> list[FirstRound]:
        """Polls' first rounds inside the caller's transaction: the reports of all first (their
        finishes in one statement set, `Reports.store_all`), then each poll's reconciliation
        and claim."""
        started = self.clock.now()
        for worker_id, _ in polls:
            self.heartbeat(worker_id, started)
        stales = self.reports.store_all(
            [(body.output, body.finished) for _, body in polls], [w for w, _ in polls]
        )
        return [
            self._first_round_in(worker_id, body, stale, started)
            for (worker_id, body), stale in zip(polls, stales, strict=True)
        ]

    def _first_round_in(
        self, worker_id: int, body: api.PollIn, stale: list[int], started: float
    ) -> FirstRound:
        """A poll's first round after its reports, inside the caller's transaction."""
        self.scheduling.note_local_nimby(worker_id, body.nimby)
        self.disk.seen(worker_id, body.sample, now=started)
        held, stale = reconcile(self.store, self.index, worker_id, body, stale, started)
        got = self._dispatch(worker_id, body.lanes, body.ahead_lanes, held)
        if body.sample:
            self.samples.record(worker_id, started, body.sample)
        poll = HeldPoll(
            worker_id=worker_id,
            lanes=tuple(body.lanes),
            ahead_lanes=tuple(body.ahead_lanes),
            deadline=started + min(body.wait_s, self.settings.poll_hold_s),
            touched=started,
            held=held,
            stale=stale,
        )
        return FirstRound(poll, got, body)

    def _first_round_done(self, step: FirstRound) -> HeldPoll:
        """After the commit: held polls told of the finishes, the answer or the wait."""
        body = step.body
        if body.finished:
            self.notifier.notify(soft=True)
        elif body.output or body.sample or step.got.assignments:
            self.notifier.touch()
        return self.decide(step.poll, step.got)

    def _check_lanes(self, worker_id: int, body: api.PollIn) -> None:
        """A worker claims for its own lanes only (those it enrolled with)."""
        asked = max((*body.lanes, *body.ahead_lanes), default=-1)
        if asked < 0:
            return
        lanes = self.lanes_of(worker_id)
        if asked >= lanes:
            raise Forbidden(
                f"lane {asked} is not one of this worker's {lanes} lanes", field="lanes"
            )

    def use_code(self, code: str, *, worker: str) -> None:
        """Spend a one-time enrolment code (in the caller's transaction); Conflict if it
        is unknown, expired, revoked or used."""
        self.store.enrol_codes.use(enrol_code_hash(code), by=worker, now=self.clock.now())

    def lanes_of(self, worker_id: int) -> int:
        """How many lanes the worker enrolled with (kept: polls need no lookup)."""
        lanes = self._lanes.get(worker_id)
        if lanes is None:
            lanes = self._lanes[worker_id] = self.store.workers.get(worker_id).lanes
        return lanes

    def _next_round(self, poll: HeldPoll, *, woke: bool) -> HeldPoll:
        """After a wake-up or a timeout: refresh the lease when due, claim again."""
        with self.unit.transaction():
            poll, got = self.round_in(poll, woke=woke)
        if got.assignments:
            self.notifier.touch()
        return self.decide(poll, got)

    def round_in(self, poll: HeldPoll, *, woke: bool) -> tuple[HeldPoll, Dispatch]:
        """A held poll's next round in the caller's transaction: the lease refreshed when
        due, what it holds read again after a wake-up, its claim."""
        now = self.clock.now()
        if now - poll.touched >= self.settings.heartbeat_s:
            self.heartbeat(poll.worker_id, now)
            poll = poll.but(touched=now)
        if woke and poll.held:
            # What it holds may have been asked to stop (it gains attempts only by its polls)
            poll = poll.but(held=self.store.snapshot.worker_held(poll.worker_id))
        return poll, self._dispatch(poll.worker_id, poll.lanes, poll.ahead_lanes, poll.held)

    def _last_round(self, poll: HeldPoll) -> HeldPoll:
        """The worker went away or the server stops: answer with nothing more."""
        return poll.but(answer=self._answer(poll.worker_id, [], stop=[], stale=poll.stale))

    def decide(self, poll: HeldPoll, got: Dispatch) -> HeldPoll:
        """Answer now (work, something to stop, the hold over), or how long to wait."""
        stop = sorted({h.id for h in poll.held if h.cancel_reason is not None} | set(got.preempted))
        now = self.clock.now()
        if got.assignments or stop or now >= poll.deadline:
            return poll.but(
                answer=self._answer(poll.worker_id, got.assignments, stop=stop, stale=poll.stale),
            )
        # A change the dispatch index has yet to see (a finish) wakes us when it is seen.
        pending = self.index.pending_in()
        wait = min(
            poll.deadline - now,
            self.settings.heartbeat_s - (now - poll.touched),
            pending if pending is not None else 1e9,
        )
        return poll.but(wait_s=max(wait, 0.005))

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
        self,
        worker_id: int,
        assignments: Sequence[Assignment],
        *,
        stop: list[int],
        stale: list[int],
        nimby: bool = True,
    ) -> api.PollOut:
        """What the worker is told: its tasks, what to stop, what is stale; with `nimby`, the
        NIMBY state set from the controller (a poll's answer; a report's does not say)."""
        state, _ = self.index.worker_state(worker_id)
        # Of the model's types already (`built`: not validated again, once per poll).
        return built(
            api.PollOut,
            {
                "assignments": [assignment_out(a) for a in assignments],
                "stop": list(stop),
                "stale": list(stale),
                "heartbeat_s": float(self.settings.heartbeat_s),
                "lease_s": float(self.settings.lease_s),
                "enabled": bool(self.index.worker_enabled(worker_id)),
                "nimby": state.value if nimby and state else None,
            },
        )
