"""The autoscaler against a simulated farm and a fake provider (the cloud is the edge that
cannot run here), on a fake clock: 100 queued tasks for a pool with no workers.

The simulated farm hands a waiting task of a worker's pool to each idle online worker, ends it
`TASK_S` later, and requeues the task of a worker that vanished once its lease (`LEASE_S`) is
over, as the controller does. A real run with local processes is tests/e2e/test_autoscale.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from thresher.core.autoscale import BlockDemand, ScaleConfig
from thresher.testing import FakeClock
from thresher.worker.autoscaler import Autoscaler, WorkerSeen
from thresher.worker.providers import TOKEN, Credential, WorkerTemplate

START_S = 30.0  # the provider's start time: from asking to the worker being online
TASK_S = 10.0
LEASE_S = 15.0
IDLE_S = 60.0


@dataclass
class SimWorker:
    pool: str
    online_at: float
    task_ends: float | None = None
    paused: bool = False
    gone_at: float | None = None  # killed: its task comes back after the lease


@dataclass
class SimFarm:
    clock: FakeClock
    waiting: dict[str, int] = field(default_factory=dict)
    workers: dict[str, SimWorker] = field(default_factory=dict)
    first_start: float | None = None
    done: int = 0
    last_done_at: float = 0.0
    most_alive: int = 0

    def tick(self) -> None:
        now = self.clock.now()
        for w in self.workers.values():
            if w.gone_at is not None:
                if w.task_ends is not None and now - w.gone_at >= LEASE_S:
                    self.waiting[w.pool] += 1  # lost: requeued
                    w.task_ends = None
                continue
            if w.task_ends is not None and now >= w.task_ends:
                w.task_ends = None
                self.done += 1
                self.last_done_at = now
            free = w.task_ends is None and not w.paused and now >= w.online_at
            if free and self.waiting.get(w.pool, 0) > 0:
                self.waiting[w.pool] -= 1
                w.task_ends = now + TASK_S
                self.first_start = self.first_start or now
        alive = sum(1 for w in self.workers.values() if w.gone_at is None)
        self.most_alive = max(self.most_alive, alive)

    # -- FarmView -----------------------------------------------------------------------------

    def blocks(self) -> list[BlockDemand]:
        return [BlockDemand(waiting=n, filters=f"pool:+{p}") for p, n in self.waiting.items()]

    def workers_of(self, prefix: str) -> list[WorkerSeen]:
        now = self.clock.now()
        return [
            WorkerSeen(name, online=True, running=int(w.task_ends is not None), paused=w.paused)
            for name, w in self.workers.items()
            if name.startswith(prefix) and w.gone_at is None and now >= w.online_at
        ]

    def drain(self, name: str) -> None:
        self.workers[name].paused = True

    def enrol_code(self) -> str:
        raise AssertionError("these groups enrol with a token")


class FarmView:
    def __init__(self, farm: SimFarm) -> None:
        self.farm = farm
        self.blocks = farm.blocks
        self.drain = farm.drain
        self.enrol_code = farm.enrol_code

    def workers(self, prefix: str) -> list[WorkerSeen]:
        return self.farm.workers_of(prefix)


@dataclass
class FakeProvider:
    farm: SimFarm
    pool: str
    started: list[str] = field(default_factory=list)
    stopped: list[str] = field(default_factory=list)

    def start(self, names: Sequence[str], *, credentials: Sequence[Credential]) -> None:
        # the enrolment credential reaches each new worker
        assert credentials == [Credential(TOKEN, "thr_enrol_x")] * len(names)
        for name in names:
            self.started.append(name)
            self.farm.workers[name] = SimWorker(self.pool, self.farm.clock.now() + START_S)

    def stop(self, name: str) -> None:
        self.stopped.append(name)
        worker = self.farm.workers.get(name)
        if worker is not None and worker.gone_at is None:
            assert worker.task_ends is None, "a worker was stopped while it ran a task"
            worker.gone_at = self.farm.clock.now()


def scaler(farm: SimFarm, pool: str, provider: FakeProvider) -> Autoscaler:
    counter = iter(range(1000))
    return Autoscaler(
        group=f"g{pool}",
        config=ScaleConfig(max_workers=5, idle_timeout_s=IDLE_S, scale_out_per_min=10),
        template=WorkerTemplate(controller_url="http://farm", pools=(pool,)),
        provider=provider,
        farm=FarmView(farm),
        clock=farm.clock,
        token="thr_enrol_x",
        name_suffix=lambda: str(next(counter)),
    )


def run(
    farm: SimFarm, scalers: list[Autoscaler], seconds: int, kill_at: float | None = None
) -> None:
    for second in range(seconds):
        farm.tick()
        for s in scalers:
            s.step()
        if kill_at is not None and second == kill_at:  # the cloud reclaims a busy worker
            busy = next(n for n, w in farm.workers.items() if w.task_ends and not w.gone_at)
            farm.workers[busy].gone_at = farm.clock.now()
        farm.clock.advance(1.0)


def test_a_backlog_starts_workers_of_its_pool_only_up_to_max_and_idle_ones_retire() -> None:
    clock = FakeClock()
    t0 = clock.now()
    farm = SimFarm(clock, waiting={"A": 100})
    provider_a, provider_b = FakeProvider(farm, "A"), FakeProvider(farm, "B")
    a, b = scaler(farm, "A", provider_a), scaler(farm, "B", provider_b)
    run(farm, [a, b], 600)
    assert farm.first_start is not None
    assert farm.first_start - t0 <= START_S + 5
    assert farm.done == 100
    assert farm.most_alive == 5  # never more than max
    assert a.peak == 5
    assert provider_b.started == []  # a pool-A backlog never starts pool-B workers
    # Every worker retired within the idle timeout + 10 s of the last task's end.
    assert sorted(provider_a.stopped) == sorted(provider_a.started)
    assert all(w.gone_at is not None for w in farm.workers.values())
    latest = max(w.gone_at or 0 for w in farm.workers.values())
    assert latest - farm.last_done_at <= IDLE_S + 10


def test_no_task_is_lost_when_the_provider_kills_a_worker() -> None:
    clock = FakeClock()
    farm = SimFarm(clock, waiting={"A": 100})
    provider = FakeProvider(farm, "A")
    a = scaler(farm, "A", provider)
    run(farm, [a], 900, kill_at=60)
    assert farm.done == 100
    assert len(provider.started) == 6  # the lost worker was replaced
    assert farm.most_alive <= 5


def test_a_group_serves_the_blocks_its_machines_fit() -> None:
    """The group's machine facts (RAM here) decide which blocks count as its demand."""
    clock = FakeClock()
    farm = SimFarm(clock)

    def started(ram_bytes: int) -> int:
        view = FarmView(farm)
        view.blocks = lambda: [BlockDemand(waiting=5, filters="ram:>32g")]
        provider = FakeProvider(farm, "A")
        template = WorkerTemplate(controller_url="http://farm", ram_bytes=ram_bytes)
        Autoscaler(
            group=f"big{ram_bytes}",
            config=ScaleConfig(max_workers=2),
            template=template,
            provider=provider,
            farm=view,
            clock=clock,
            token="thr_enrol_x",
        ).step()
        return len(provider.started)

    assert started(64 * 2**30) == 2
    assert started(16 * 2**30) == 0
