"""Autoscaling decisions, table-tested: how many workers to start, which idle ones to retire,
and the demand a group sees (per scheduling class)."""

from __future__ import annotations

import pytest

from thresher.core.autoscale import (
    BlockDemand,
    GroupState,
    GroupWorker,
    ScaleConfig,
    decide,
    demand_for,
)
from thresher.core.filters import WorkerFacts

NOW = 10_000.0
CFG = ScaleConfig(min_workers=0, max_workers=4, idle_timeout_s=60, scale_out_per_min=10)


def idle(name: str, since: float) -> GroupWorker:
    return GroupWorker(name, started_at=0, online=True, idle_since=since)


def busy(name: str) -> GroupWorker:
    return GroupWorker(name, started_at=0, online=True, running=1)


@pytest.mark.parametrize(
    ("config", "state", "start", "retire"),
    [
        pytest.param(CFG, GroupState(waiting=100), 4, (), id="a backlog starts up to max"),
        pytest.param(
            ScaleConfig(max_workers=10, lanes=4), GroupState(waiting=9), 3, (), id="lanes count"
        ),
        pytest.param(CFG, GroupState(waiting=0), 0, (), id="no demand, nothing"),
        pytest.param(
            ScaleConfig(min_workers=2), GroupState(waiting=0), 2, (), id="min kept running"
        ),
        pytest.param(
            ScaleConfig(standby=1), GroupState(waiting=2), 3, (), id="standby beyond demand"
        ),
        pytest.param(
            CFG,
            GroupState(waiting=100, workers=[busy("a"), busy("b")]),
            2,
            (),
            id="only what is missing",
        ),
        pytest.param(
            ScaleConfig(max_workers=20, scale_out_per_min=3),
            GroupState(waiting=100, recent_starts=[NOW - 10, NOW - 70]),
            2,
            (),
            id="scale-out rate: 3 a minute, 1 started within it",
        ),
        pytest.param(
            ScaleConfig(max_workers=10, cost_per_worker_hour=2.0, max_cost_per_hour=5.0),
            GroupState(waiting=100),
            2,
            (),
            id="budget: cost per hour",
        ),
        pytest.param(
            ScaleConfig(max_workers=10, min_workers=1, max_worker_hours=5),
            GroupState(waiting=100, worker_hours_spent=5.0),
            1,
            (),
            id="budget: worker-hours spent, only min",
        ),
        pytest.param(
            CFG,
            GroupState(waiting=0, workers=[idle("a", NOW - 61), idle("b", NOW - 30)]),
            0,
            ("a",),
            id="idle past the timeout retired, not before",
        ),
        pytest.param(
            CFG,
            GroupState(waiting=1, workers=[idle("a", NOW - 100), idle("b", NOW - 200)]),
            0,
            ("b",),
            id="longest idle first, while more than wanted",
        ),
        pytest.param(
            ScaleConfig(min_workers=1, idle_timeout_s=1),
            GroupState(waiting=0, workers=[idle("a", NOW - 100)]),
            0,
            (),
            id="never below min",
        ),
        pytest.param(
            CFG,
            GroupState(
                waiting=100,
                workers=[GroupWorker("d", started_at=0, online=True, draining=True)],
            ),
            4,
            (),
            id="a draining worker is not counted",
        ),
    ],
)
def test_decide(
    config: ScaleConfig, state: GroupState, start: int, retire: tuple[str, ...]
) -> None:
    decision = decide(config, state, now=NOW)
    assert (decision.start, decision.retire) == (start, retire)


def facts(*pools: str) -> WorkerFacts:
    return WorkerFacts.create("new", "hq", os="linux", cores=1, ram_bytes=0, pools=pools)


BLOCKS = [
    BlockDemand(waiting=100, filters="pool:+A"),
    BlockDemand(waiting=7, filters="pool:+B"),
    BlockDemand(waiting=5, filters="pool:-A"),
    BlockDemand(waiting=3, filters="", runs="blender"),
    BlockDemand(waiting=2, filters="ram:>1g"),  # no worker of ours has the RAM facts it needs
]


@pytest.mark.parametrize(
    ("worker", "engines", "waiting"),
    [
        (facts("A"), None, 103),
        (facts("B"), None, 15),
        (facts("B"), frozenset({"command"}), 12),
        (facts(), frozenset({"blender"}), 3),
    ],
)
def test_demand_is_per_scheduling_class(
    worker: WorkerFacts, engines: frozenset[str] | None, waiting: int
) -> None:
    assert demand_for(BLOCKS, worker, engines) == waiting
