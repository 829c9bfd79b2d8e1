"""The autoscaler's I/O: watch a group's demand and workers, ask the provider for workers, drain
and retire idle ones. Decisions are `core.autoscale.decide`'s; a round is :meth:`step`, called
every few seconds by `thresher autoscale`.

The group's workers are the ones it started (named `<group>-<random>`, so a restarted autoscaler
adopts the ones still online). A worker that never comes online within `start_timeout_s`, or
that vanishes (a reclaimed spot instance, a killed process), is forgotten and stopped at the
provider: the controller marks it offline after its lease and requeues its tasks, so none is
lost, and the demand starts another.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from thresher.core.autoscale import (
    BlockDemand,
    Decision,
    GroupState,
    GroupWorker,
    ScaleConfig,
    decide,
    demand_for,
)
from thresher.core.clock import Clock
from thresher.core.filters import WorkerFacts
from thresher.worker.providers import CODE, TOKEN, Credential, Provider, WorkerTemplate

if TYPE_CHECKING:
    from thresher.client import Client

__all__ = ["Autoscaler", "ClientFarm", "FarmView", "WorkerSeen", "enrolment"]

log = logging.getLogger("thresher.autoscale")


@dataclass(frozen=True)
class WorkerSeen:
    name: str
    online: bool
    running: int
    paused: bool = False


class FarmView(Protocol):
    """What the autoscaler reads of the farm and the one thing it changes (drain)."""

    def blocks(self) -> list[BlockDemand]: ...

    def workers(self, prefix: str) -> list[WorkerSeen]: ...

    def drain(self, name: str) -> None: ...

    def enrol_code(self) -> str: ...


def enrolment(farm: FarmView, token: str | None, count: int) -> list[Credential]:
    """What each of `count` new workers enrols with: the enrolment `token` given to the
    autoscaler, else a one-time code of its own from the controller."""
    if token:
        return [Credential(TOKEN, token)] * count
    return [Credential(CODE, farm.enrol_code()) for _ in range(count)]


@dataclass
class _Tracked:
    started_at: float
    online_once: bool = False
    idle_since: float | None = None
    draining: bool = False


@dataclass
class Autoscaler:
    """One group of workers: its config, its provider, the farm it watches."""

    group: str
    config: ScaleConfig
    template: WorkerTemplate
    provider: Provider
    farm: FarmView
    clock: Clock
    token: str | None  # an enrolment token; None: a one-time code per worker
    engines: frozenset[str] | None = None
    start_timeout_s: float = 600.0
    name_suffix: Callable[[], str] = field(default=lambda: secrets.token_hex(3))
    tracked: dict[str, _Tracked] = field(default_factory=dict)
    starts: list[float] = field(default_factory=list)
    hours_spent: float = 0.0
    peak: int = 0

    def facts(self) -> WorkerFacts:
        """What filters see of a worker of this group."""
        t = self.template
        return WorkerFacts.create(
            f"{self.group}-new",
            t.site,
            os=t.os,
            cores=t.cores,
            ram_bytes=t.ram_bytes,
            gpus=t.gpus,
            pools=t.pools,
            labels=dict(self.template.labels),
        )

    def step(self) -> Decision:
        """One round: look, decide, act."""
        now = self.clock.now()
        seen = {w.name: w for w in self.farm.workers(f"{self.group}-")}
        self._adopt(seen, now)
        self._observe(seen, now)
        self._finish_drains(seen, now)
        waiting = demand_for(self.farm.blocks(), self.facts(), self.engines)
        state = GroupState(
            waiting=waiting,
            workers=[self._view(n, t) for n, t in self.tracked.items()],
            recent_starts=self.starts,
            worker_hours_spent=self.hours_spent + self._running_hours(now),
        )
        decision = decide(self.config, state, now=now)
        self._act(decision, now)
        self.peak = max(self.peak, sum(1 for t in self.tracked.values() if not t.draining))
        return decision

    def _adopt(self, seen: dict[str, WorkerSeen], now: float) -> None:
        for name, w in seen.items():
            if name not in self.tracked and w.online:
                self.tracked[name] = _Tracked(started_at=now, online_once=True, idle_since=now)

    def _observe(self, seen: dict[str, WorkerSeen], now: float) -> None:
        for name, t in list(self.tracked.items()):
            w = seen.get(name)
            if w is not None and w.online:
                t.online_once = True
                if w.running:
                    t.idle_since = None
                elif t.idle_since is None:
                    t.idle_since = now
                continue
            gone = t.online_once or now - t.started_at > self.start_timeout_s
            if gone and not t.draining:  # lost, killed, or never came: forget it
                log.warning("worker %s is gone (or never came): forgotten", name)
                self._retire(name, now)

    def _finish_drains(self, seen: dict[str, WorkerSeen], now: float) -> None:
        for name, t in list(self.tracked.items()):
            w = seen.get(name)
            if t.draining and (w is None or not w.online or w.running == 0):
                log.info("worker %s drained: stopping it", name)
                self._retire(name, now)

    def _retire(self, name: str, now: float) -> None:
        t = self.tracked.pop(name)
        self.hours_spent += (now - t.started_at) / 3600.0
        try:
            self.provider.stop(name)
        except Exception:  # the next round sees it again if it still runs
            log.exception("stopping %s failed", name)

    def _act(self, decision: Decision, now: float) -> None:
        for name in decision.retire:
            log.info("worker %s idle past the timeout: draining it", name)
            self.farm.drain(name)  # it takes no new task; stopped once it runs none
            self.tracked[name].draining = True
        if decision.start:
            names = [f"{self.group}-{self.name_suffix()}" for _ in range(decision.start)]
            log.info("starting %s (%s)", ", ".join(names), decision.reason)
            for name in names:
                self.tracked[name] = _Tracked(started_at=now)
                self.starts.append(now)
            self.starts = [t for t in self.starts if now - t < 60.0]
            credentials = enrolment(self.farm, self.token, len(names))
            self.provider.start(names, credentials=credentials)

    def _view(self, name: str, t: _Tracked) -> GroupWorker:
        return GroupWorker(
            name=name,
            started_at=t.started_at,
            online=t.online_once,
            running=0 if t.idle_since is not None else 1,
            idle_since=t.idle_since,
            draining=t.draining,
        )

    def _running_hours(self, now: float) -> float:
        return sum(now - t.started_at for t in self.tracked.values()) / 3600.0


class ClientFarm:
    """The farm as the autoscaler sees it, through the people's API (a wrangler's token: it
    pauses workers and makes enrolment codes)."""

    def __init__(self, client: Client) -> None:
        self.client = client

    def blocks(self) -> list[BlockDemand]:
        out: list[BlockDemand] = []
        offset = 0
        while True:
            page = self.client.jobs(status=["queued", "running"], limit=500, offset=offset)
            for job in page:
                if job.paused:
                    continue
                for b in job.blocks:
                    waiting = b.counts.waiting + b.counts.queued
                    filters = ",".join(f for f in (job.filters, b.host_filters) if f)
                    runs = b.engine or job.kind
                    out.append(BlockDemand(waiting=waiting, filters=filters, runs=runs))
            if len(page) < 500:
                return out
            offset += len(page)

    def workers(self, prefix: str) -> list[WorkerSeen]:
        return [
            WorkerSeen(
                name=w.name,
                online=w.status == "online",
                running=w.running,
                paused=w.nimby is not None,
            )
            for w in self.client.workers()
            if w.name.startswith(prefix)
        ]

    def drain(self, name: str) -> None:
        self.client.pause_worker(name)

    def enrol_code(self) -> str:
        return self.client.create_enrol_code(ttl_s=3600).code
