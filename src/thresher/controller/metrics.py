"""`/metrics` in the Prometheus text format: what one controller did and what the farm holds.

Per controller (each keeps its own; Prometheus adds the `instance` label when it scrapes, and
`thresher_controller_info` names the controller): request and long-poll latency, polls held
now, dispatch rounds (time to choose and claim) and assignments, store transaction times, log
bytes taken in, changes heard from other controllers. Of the farm (read from the database at
each scrape, so every controller answers the same): jobs, tasks and workers by state.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from thresher.controller.dispatch import Dispatch, Dispatcher, DispatchIndex
from thresher.core.clock import Clock
from thresher.store.snapshot import HeldAttempt
from thresher.store.store import Store

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

#: Latency buckets (seconds): from a fast poll round (1 ms) to a held poll's full hold.
_LATENCY = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
_FAST = (0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class FarmMetrics:
    """The controller's metrics, in a registry of its own (several apps may share a process)."""

    def __init__(self, controller: str) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        Gauge("thresher_controller_info", "This controller", ["controller"], registry=r).labels(
            controller
        ).set(1)
        self.requests = Histogram(
            "thresher_request_seconds",
            "HTTP requests answered, by route template, method and status",
            ["route", "method", "status"],
            buckets=_LATENCY,
            registry=r,
        )
        self.polls = Histogram(
            "thresher_poll_seconds",
            "Workers' polls, from arrival to answer (held ones included)",
            buckets=_LATENCY,
            registry=r,
        )
        self.polls_held = Gauge(
            "thresher_polls_in_flight", "Workers' polls being answered or held now", registry=r
        )
        self.dispatch = Histogram(
            "thresher_dispatch_seconds",
            "Dispatch rounds: choosing and claiming tasks for one poll",
            buckets=_FAST,
            registry=r,
        )
        self.assignments = Counter(
            "thresher_assignments", "Tasks handed to workers by this controller", registry=r
        )
        self.transactions = Histogram(
            "thresher_store_transaction_seconds",
            "Store transactions, from BEGIN to COMMIT or ROLLBACK",
            buckets=_FAST,
            registry=r,
        )
        self.log_bytes = Counter(
            "thresher_log_bytes", "Bytes of task output taken in by this controller", registry=r
        )
        self.sync_bytes = Counter(
            "thresher_sync_bytes",
            "Bytes the sites' file services moved for jobs' syncs, as their runners reported "
            "them to this controller",
            registry=r,
        )
        self.peer_changes = Counter(
            "thresher_peer_changes",
            "Changes announced by other controllers and taken in here",
            registry=r,
        )

    def watch(self, store: Store) -> None:
        """Jobs, tasks and workers by state, read from `store` at each scrape."""
        self.registry.register(_FarmState(store))

    def render(self) -> bytes:
        """The text exposition (collects the farm's state: call it on the farm thread)."""
        return generate_latest(self.registry)

    def transaction_observer(self) -> Callable[[float], None]:
        return self.transactions.observe


class _FarmState(Collector):
    """Gauges of what the database holds, collected at scrape time."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def describe(self) -> Iterable[Metric]:
        return []  # collected at scrape time only: nothing to read at registration

    def collect(self) -> Iterable[Metric]:
        state = self.store.farm_state.counts()
        for name, doc, by_state in (
            ("thresher_jobs", "Jobs by status", state.jobs),
            ("thresher_tasks", "Tasks by status", state.tasks),
            ("thresher_workers", "Workers by status", state.workers),
        ):
            family = GaugeMetricFamily(name, doc, labels=["state"])
            for key, value in sorted(by_state.items()):
                family.add_metric([key], value)
            yield family


class TimedDispatcher(Dispatcher):
    """The dispatcher, timing each round and counting what it hands out."""

    def __init__(
        self, store: Store, clock: Clock, index: DispatchIndex, metrics: FarmMetrics
    ) -> None:
        super().__init__(store, clock, index)
        self.metrics = metrics

    def dispatch(
        self,
        worker_id: int,
        *,
        free_lanes: Sequence[int],
        ahead_lanes: Sequence[int],
        held: Sequence[HeldAttempt],
    ) -> Dispatch:
        started = time.perf_counter()
        got = super().dispatch(worker_id, free_lanes=free_lanes, ahead_lanes=ahead_lanes, held=held)
        self.metrics.dispatch.observe(time.perf_counter() - started)
        if got.assignments:
            self.metrics.assignments.inc(len(got.assignments))
        return got
