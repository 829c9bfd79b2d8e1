"""Why a block waits, decided from the views dispatch ranks with."""

from __future__ import annotations

from typing import Any

from thresher.core.dispatch import BlockView, FarmView, LaneView
from thresher.core.filters import WorkerFacts, parse_filters
from thresher.core.why import BUSY, NO_WORKER, STARTS, Reason, WorkerLanes, block_waits

GB = 1 << 30
SMALL = WorkerFacts.create("small", "hq", os="linux", cores=8, ram_bytes=16 * GB)
BIG = WorkerFacts.create("big", "hq", os="linux", cores=32, ram_bytes=128 * GB)


def lanes(
    facts: WorkerFacts, *, worker_id: int, free: bool = True, unavailable: str | None = None
) -> WorkerLanes:
    lane = LaneView(
        worker_id=worker_id, hostname=facts.hostname, facts=facts, unavailable=unavailable
    )
    return WorkerLanes(facts.hostname, [lane], [lane] if free else [])


def block(**fields: Any) -> BlockView:
    return BlockView(
        job_id=1, block_id=1, owner="alice", job_priority=50, submitted_at=0.0, **fields
    )


def test_no_online_worker() -> None:
    assert block_waits(block(), [], FarmView()) == [Reason(NO_WORKER)]


def test_dependencies_are_the_reason_before_any_worker() -> None:
    waiting = block(waiting="waiting on job 7")
    assert block_waits(waiting, [lanes(BIG, worker_id=1)], FarmView()) == [
        Reason("waiting on job 7")
    ]


def test_reasons_are_counted_over_the_workers_most_common_first() -> None:
    needs_ram = block(filters=parse_filters("ram:>64g"))
    workers = [
        lanes(SMALL, worker_id=1),
        lanes(SMALL, worker_id=2),
        lanes(BIG, worker_id=3, free=False),
        lanes(BIG, worker_id=4, unavailable="the worker is paused (NIMBY)"),
    ]

    reasons = block_waits(needs_ram, workers, FarmView())

    assert [r.workers for r in reasons] == [2, 1, 1]
    assert "ram" in reasons[0].text
    assert {r.text for r in reasons[1:]} == {BUSY, "the worker is paused (NIMBY)"}


def test_a_free_matching_lane_starts_it_at_the_next_poll() -> None:
    assert block_waits(block(), [lanes(BIG, worker_id=1)], FarmView()) == [Reason(STARTS, 1)]


def test_caps_and_limits_are_named() -> None:
    capped = block(max_running=2)
    farm = FarmView(running_by_job={1: 2})
    (reason,) = block_waits(capped, [lanes(BIG, worker_id=1)], farm)
    assert "maximum of running tasks" in reason.text


def test_a_lane_that_does_not_run_the_engine_gives_way_to_a_reason_of_the_worker() -> None:
    povray = block(runs="povray", filters=parse_filters("ram:>64g"))
    worker = WorkerLanes(
        "small",
        [
            LaneView(
                worker_id=1, hostname="small", facts=SMALL, lane=0, engines=frozenset({"blender"})
            ),
            LaneView(worker_id=1, hostname="small", facts=SMALL, lane=1),
        ],
        [],
    )
    (reason,) = block_waits(povray, [worker], FarmView())
    assert "ram" in reason.text
