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

from thresher.controller.access import Access
from thresher.controller.agents import Agents
from thresher.controller.compile.policy import SubmitPolicy
from thresher.controller.dispatch import Dispatcher, DispatchIndex
from thresher.controller.engines import EngineRegistry
from thresher.controller.events import EventHub
from thresher.controller.farm_thread import FarmThread
from thresher.controller.jobs import Jobs
from thresher.controller.monitor import IdleSamples, Monitor
from thresher.controller.notifier import Notifier
from thresher.controller.scheduling import Scheduling
from thresher.controller.settings import ControllerSettings
from thresher.controller.unit import UnitOfWork
from thresher.controller.waiting import Waiting
from thresher.core.clock import Clock
from thresher.store.store import Store


class Farm:
    """Use cases over one store. One instance per controller process."""

    def __init__(
        self, store: Store, clock: Clock, settings: ControllerSettings, notifier: Notifier
    ) -> None:
        self.settings = settings
        self.notifier = notifier
        self.thread = FarmThread()
        self.call = self.thread.run  # `await farm.call(farm.jobs.submit, caller, body)`
        self.dispatch_index = DispatchIndex(store, clock, settings)
        # A submission or an edit changes what may run where at once; a worker's report
        # (soft) reaches the index through the finish itself.
        notifier.listeners.append(self._changed)
        self.unit = UnitOfWork(store, self.dispatch_index, notifier, clock)
        self.engines = EngineRegistry(store, clock)
        self.jobs = Jobs(store, clock, self.unit, self.engines, SubmitPolicy.of(settings))
        self.scheduling = Scheduling(store, clock, self.dispatch_index, self.unit)
        self.agents = Agents(
            store,
            clock,
            settings,
            unit=self.unit,
            index=self.dispatch_index,
            dispatcher=Dispatcher(store, clock, self.dispatch_index),
            scheduling=self.scheduling,
            jobs=self.jobs,
            run=self.thread.run,
        )
        self.access = Access(store, clock, self.unit)
        self.waiting = Waiting(store, self.dispatch_index)
        self.monitor = Monitor(store, clock, self.unit, self.jobs)  # the web monitor's reads
        self.idle_samples = IdleSamples(self.agents, self.unit)
        self.events = EventHub(store, clock, self.thread.run)  # server-sent events
        notifier.observers.append(self.events.poke)
        self._store = store

    def start(self, now: float) -> None:
        """At start: workers attached before a restart get one lease to come back; built-in
        engines become revision 0 of their names."""
        with self.unit.transaction():
            self._store.workers.refresh_all(now)
        self.engines.sync_builtins()

    def close(self) -> None:
        """Let the use cases handed over finish, then stop the farm thread."""
        self.thread.close()

    def _changed(self, soft: bool) -> None:
        if not soft:
            self.dispatch_index.invalidate()
