"""The farm: the controller's use cases over one store, composed once per process.

Routes and the long-poll reach the farm only through these use cases: `jobs` (people's jobs
and tasks), `agents` (workers: enrol, poll, report), `scheduling` (limits, users, workers'
lanes, pools and NIMBY, error hosts), `engines` (the engine registry), `access` (tokens and
access keys) and `waiting` (why a job waits). They run on the farm thread
(`await farm.call(farm.jobs.submit, caller, body)`), so the event loop never waits on the
store. Each use case is one transaction (`UnitOfWork`),
committed before it returns, so an answer is never ahead of the database; the store keeps
state and `core` decides.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import Callable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar

from thresher.controller import policy
from thresher.controller.access import Access
from thresher.controller.agents import Agents
from thresher.controller.auth import Caller
from thresher.controller.compile.policy import SubmitPolicy
from thresher.controller.dispatch import DispatchIndex
from thresher.controller.engine_host import EngineHost
from thresher.controller.engines import EngineRegistry
from thresher.controller.events import EventHub
from thresher.controller.farm_thread import FarmThread, retrying
from thresher.controller.find import Finder
from thresher.controller.hand_out import hand_out
from thresher.controller.job_ends import JobEnds
from thresher.controller.jobs import Jobs
from thresher.controller.metrics import FarmMetrics, TimedDispatcher
from thresher.controller.monitor import IdleSamples, Monitor
from thresher.controller.notifications import Subscriptions
from thresher.controller.notifier import Notifier
from thresher.controller.peers import Peers, controller_ident
from thresher.controller.scheduling import Scheduling
from thresher.controller.sealing import SecretBox
from thresher.controller.settings import ControllerSettings
from thresher.controller.sites import Sites
from thresher.controller.submitters import Submitters
from thresher.controller.unit import UnitOfWork
from thresher.controller.waiting import Waiting
from thresher.core.clock import Clock
from thresher.store.cluster import SingletonLease, exclusive
from thresher.store.store import Store

log = logging.getLogger("thresher.controller.farm")

P = ParamSpec("P")
T = TypeVar("T")


@dataclass(frozen=True)
class Unconfirmed:
    """A request's caller taken from the known tokens, and the route it was allowed for."""

    caller: Caller
    method: str
    route: str


#: The caller of the request being served when it came from the known tokens: confirmed by
#: the request's first `Farm.call` (set by `routes.deps.authorize`).
UNCONFIRMED: ContextVar[Unconfirmed | None] = ContextVar("thresher_unconfirmed", default=None)


#: How long before the dispatch index falls due it is rebuilt while polls are held, seconds
#: (`Farm.refresh_index`); also the shortest time between two such rebuilds.
REFRESH_AHEAD_S = 0.25


class Farm:
    """Use cases over one store. One instance per controller process."""

    def __init__(
        self, store: Store, clock: Clock, settings: ControllerSettings, notifier: Notifier
    ) -> None:
        self.settings = settings
        self.notifier = notifier
        ident = controller_ident()
        self.metrics = FarmMetrics(ident)
        self.metrics.watch(store)
        store.db.observe_transaction = self.metrics.transactions.observe
        self.thread = FarmThread()
        self.dispatch_index = DispatchIndex(store, clock, settings)
        # A submission or an edit changes what may run where at once (a submission's jobs are
        # added to the index, anything else rebuilds it); a worker's report (soft) reaches the
        # index through the finish itself.
        notifier.index_listeners.append(self._changed)
        self.unit = UnitOfWork(store, self.dispatch_index, notifier, clock)
        self.job_ends = JobEnds()  # requests waiting for a job's end (GET /jobs/{id}/wait)
        self.unit.on_ended = self.job_ends.ended
        self.thread.on_unavailable = self.unit.note_unavailable
        self.engine_host = EngineHost(timeout_s=settings.engine_check_timeout_s)
        self.engines = EngineRegistry(store, clock, host=self.engine_host)
        self.jobs = Jobs(store, clock, self.unit, self.engines, SubmitPolicy.of(settings))
        self.scheduling = Scheduling(store, clock, self.dispatch_index, self.unit)
        dispatcher = TimedDispatcher(store, clock, self.dispatch_index, self.metrics)
        self.unit.on_known.append(dispatcher.locality.know_job)  # a submitted job's data
        self.agents = Agents(
            store,
            clock,
            settings,
            unit=self.unit,
            index=self.dispatch_index,
            dispatcher=dispatcher,
            scheduling=self.scheduling,
            jobs=self.jobs,
            run=self.call,
        )
        self.agents.first_round = self._first_round
        self.unit.on_added = functools.partial(hand_out, self.agents)
        self.access = Access(
            store,
            clock,
            self.unit,
            SecretBox.from_file(settings.secret_key_file or settings.data_dir / "secret.key"),
            max_life_s=settings.max_token_life_s,
        )
        self.submitters = Submitters(store, clock, self.unit, self.jobs)
        self.jobs.on_failures = self.submitters.check_failed_cap
        self.finder = Finder(store, self.unit)
        self.waiting = Waiting(store, self.dispatch_index)
        self.monitor = Monitor(store, clock, self.unit, self.jobs)  # the web monitor's reads
        self.idle_samples = IdleSamples(self.agents, self.unit)
        self.events = EventHub(store, clock, self.thread.run)  # server-sent events
        notifier.observers.append(self.events.poke)
        # Several controllers on one PostgreSQL: changes announced to the others, and the
        # sweep of silent workers done by one of them at a time (see controller/peers.py).
        self.agents.reports.log_bytes = self.metrics.log_bytes.inc
        self.peers = Peers(
            store,
            notifier,
            self.dispatch_index,
            self.thread,
            ident=ident,
            heard=self.metrics.peer_changes.inc,
            job_ends=self.job_ends,
        )
        self.sweep_lease = SingletonLease(store.engine, "sweep")
        self.sites = Sites(store, clock, self.unit)  # sites, volumes, jobs' sync per site
        self.sites.sync_bytes = self.metrics.sync_bytes.inc
        self._store = store
        self.store = store  # the event sender reads and records its deliveries directly
        self.subscriptions = Subscriptions(store, clock, self.access.box)

    async def call(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """`await farm.call(farm.jobs.submit, caller, body)`: run a use case on the farm thread.
        A caller taken from the known tokens for this request (`UNCONFIRMED`) is confirmed
        there first, in the same hand-off (a revoked token: Unauthorized, nothing runs)."""
        pending = UNCONFIRMED.get()
        if pending is None:
            return await self.thread.run(fn, *args, **kwargs)
        UNCONFIRMED.set(None)
        return await self.thread.run(self._confirmed, pending, fn, args, kwargs)

    def _confirmed(
        self,
        pending: Unconfirmed,
        fn: Callable[..., T],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> T:
        fresh = self.access.confirm(pending.caller)
        if fresh is not pending.caller:  # its role or groups changed: they count now
            policy.check(fresh, pending.method, pending.route)
            old = pending.caller
            args = tuple(fresh if a is old else a for a in args)
            kwargs = {k: fresh if v is old else v for k, v in kwargs.items()}
        return fn(*args, **kwargs)

    async def _first_round(self, caller: Caller, body: Any) -> Any:
        """A worker poll's first round on the farm thread, together with the polls queued
        beside it (`Agents.first_rounds`): their tokens confirmed in one read, their rounds in
        one transaction. A revoked token is refused as `call` refuses it."""
        pending = UNCONFIRMED.get()
        UNCONFIRMED.set(None)
        return await self.thread.run_together(self._first_rounds, (pending, caller, body))

    def _first_rounds(
        self, items: Sequence[tuple[Unconfirmed | None, Caller, Any]]
    ) -> list[object]:
        outcomes: list[object] = [None] * len(items)
        callers = [caller for _, caller, _ in items]
        confirming = [(i, pending) for i, (pending, _, _) in enumerate(items) if pending]
        if confirming:
            fresh = self.access.confirm_many([pending.caller for _, pending in confirming])
            for (i, pending), got in zip(confirming, fresh, strict=True):
                if isinstance(got, Exception):
                    outcomes[i] = got
                elif got is not pending.caller:  # its role or groups changed: they count now
                    try:
                        policy.check(got, pending.method, pending.route)
                        callers[i] = got
                    except Exception as exc:
                        outcomes[i] = exc
        polls = [i for i in range(len(items)) if outcomes[i] is None]
        rounds = self.agents.first_rounds([(callers[i], items[i][2]) for i in polls])
        for i, outcome in zip(polls, rounds, strict=True):
            outcomes[i] = outcome
        return outcomes

    def start(self, now: float) -> None:
        """At start: workers attached before a restart get one lease to come back; built-in
        engines become revision 0 of their names. One controller at a time, so controllers
        started together on one PostgreSQL do not race to write the same rows."""
        with exclusive(self._store.engine, "startup"):
            with self.unit.transaction():
                self._store.workers.refresh_all(now)
            self.engines.sync_builtins()
            self.access.seal_stored_secrets()
        self.peers.start()

    def close(self) -> None:
        """Let the use cases handed over finish, then stop the farm thread."""
        self.peers.close()
        self.sweep_lease.release()
        with contextlib.suppress(RuntimeError):  # closed already
            self.thread.post(self.settle_audit)  # the audit rows' answers given
        self.thread.close()
        self.engine_host.close()

    def settle_audit(self) -> None:
        """On the farm thread: the audit rows' answers noted (`Access.answered`) written;
        retried as a use case is when the database rolled it back for a conflict."""
        try:
            retrying(self.access.settle_answers)
        except Exception:
            log.exception("audit statuses not written")

    def refresh_index(self) -> float:
        """On the farm thread: the dispatch index rebuilt ahead of time while polls are held.

        A rebuild reads the whole snapshot (5 ms for a small farm on SQLite), and the decision
        that finds the index due pays for it: on an idle farm, that is the submission handing
        its first tasks to the held polls (`hand_out`), on its way to them. While polls are
        held, the index is rebuilt here `REFRESH_AHEAD_S` before it falls due (at most every
        `REFRESH_AHEAD_S`), so a submission finds it fresh. Returns the seconds until the
        next look."""
        index = self.dispatch_index
        if not len(self.agents.idle):
            return self.settings.index_max_age_s / 4
        if index.refresh_in() <= REFRESH_AHEAD_S:
            index.invalidate()
            index.current()
        return max(REFRESH_AHEAD_S, index.refresh_in() - REFRESH_AHEAD_S)

    def _changed(self, soft: bool, added: Sequence[int]) -> None:
        if added:
            self.dispatch_index.add_jobs(added)
        elif not soft:
            self.dispatch_index.invalidate()
