"""Table tests for the dispatch choice: which blocks a lane may take, best first, and preemption."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from thresher.core.dispatch import (
    BlockView,
    FarmView,
    LaneView,
    RunningView,
    preemptions,
    rank,
    refusal,
)
from thresher.core.filters import WorkerFacts, parse_filters
from thresher.core.ordering import LimitState

T0 = 1_700_000_000.0
GB = 1024**3

RENDER = WorkerFacts.create(
    "ren01", "hq", os="linux", cores=32, ram_bytes=128 * GB, gpus=2, pools={"render"},
    labels={"gpu": "rtx4090"},
)  # fmt: skip
OFFICE = WorkerFacts.create("ws01", "sthlm", os="windows", cores=8, ram_bytes=16 * GB)


def lane(facts: WorkerFacts = RENDER, **fields: Any) -> LaneView:
    base = LaneView(worker_id=1, hostname=facts.hostname, facts=facts)
    return replace(base, **fields)


def block(job: int = 1, **fields: Any) -> BlockView:
    """Block 0 of `job`, owned by alice, priority 50, submitted at T0 + job."""
    base = BlockView(
        job_id=job, block_id=job * 10, owner="alice", job_priority=50, submitted_at=T0 + job
    )
    if isinstance(fields.get("filters"), str):
        fields["filters"] = parse_filters(fields["filters"])
    return replace(base, **fields)


FREE = FarmView()

# (block, lane, farm, expected refusal: None or a fragment of the reason)
REFUSALS = [
    pytest.param(block(), lane(), FREE, None, id="no constraints"),
    pytest.param(block(), lane(unavailable="paused (NIMBY)"), FREE, "NIMBY", id="nimby"),
    pytest.param(block(), lane(unavailable="sick"), FREE, "sick", id="sick host"),
    pytest.param(
        block(runs="blender"), lane(engines=frozenset({"povray"})), FREE, "does not run blender",
        id="lane lacks the engine",
    ),
    pytest.param(
        block(runs="blender"), lane(engines=frozenset({"povray", "blender"})), FREE, None,
        id="lane runs the engine",
    ),
    pytest.param(block(runs="command"), lane(engines=None), FREE, None, id="lane runs anything"),
    pytest.param(
        block(waiting="waiting on job 4"), lane(), FREE, "waiting on job 4", id="dependencies"
    ),
    pytest.param(block(avoids=frozenset({1})), lane(), FREE, "avoids", id="error host"),
    pytest.param(block(avoids=frozenset({2})), lane(), FREE, None, id="other error host"),
    pytest.param(block(filters="ram:>60GB"), lane(), FREE, None, id="ram ok"),
    pytest.param(block(filters="ram:>60GB"), lane(OFFICE), FREE, "ram:>60GB", id="ram too small"),
    pytest.param(block(filters="site:-sthlm"), lane(OFFICE), FREE, "site", id="site excluded"),
    pytest.param(block(filters="gpu:>0"), lane(OFFICE), FREE, "gpu", id="no gpu"),
    pytest.param(block(filters="label:gpu=rtx4090"), lane(), FREE, None, id="label"),
    pytest.param(block(filters="pool:+render"), lane(OFFICE), FREE, "pool", id="pool only"),
    pytest.param(block(filters="pool:-render"), lane(), FREE, "pool", id="pool never"),
    pytest.param(block(filters="pool:@render"), lane(OFFICE), FREE, None, id="dedicated elsewhere"),
    pytest.param(
        block(filters="pool:~render"), lane(), FarmView(pool_includers={"render": 1}), None,
        id="exclusive: only this job includes the pool",
    ),
    pytest.param(
        block(filters="pool:~render"), lane(), FarmView(pool_includers={"render": 2}),
        "another active job includes render", id="exclusive: another job includes the pool",
    ),
    pytest.param(
        block(filters="pool:~render"), lane(OFFICE), FarmView(pool_includers={"render": 1}),
        "pool", id="exclusive: not in the pool",
    ),
    pytest.param(block(capacity=600), lane(free_capacity=500), FREE, "capacity", id="capacity"),
    pytest.param(block(capacity=500), lane(free_capacity=500), FREE, None, id="capacity exact"),
    pytest.param(
        block(max_running=2), lane(), FarmView(running_by_job={1: 2}), "maximum", id="job cap"
    ),
    pytest.param(
        block(max_running=2), lane(), FarmView(running_by_job={1: 1}), None, id="job cap free"
    ),
    pytest.param(
        block(user_max_running=3), lane(), FarmView(running_by_user={"alice": 3}), "maximum",
        id="user cap",
    ),
    pytest.param(
        block(max_running_per_host=1), lane(running_by_job={1: 1}), FREE, "maximum",
        id="per host cap",
    ),
    pytest.param(
        block(max_running_per_host=1), lane(running_by_job={2: 1}), FREE, None,
        id="per host cap counts this job only",
    ),
    pytest.param(
        block(limits=("nuke",)), lane(),
        FarmView(limits={"nuke": LimitState("nuke", max_total=2, in_use_by_host={"a": 2})}),
        "limit nuke", id="limit total",
    ),
    pytest.param(
        block(limits=("nuke",)), lane(),
        FarmView(limits={"nuke": LimitState("nuke", max_per_host=1, in_use_by_host={"ren01": 1})}),
        "limit nuke", id="limit per host",
    ),
    pytest.param(
        block(limits=("nuke",)), lane(),
        FarmView(limits={"nuke": LimitState("nuke", max_hosts=1, in_use_by_host={"other": 1})}),
        "limit nuke", id="limit max hosts",
    ),
    pytest.param(
        block(limits=("nuke",)), lane(),
        FarmView(limits={"nuke": LimitState("nuke", max_total=2, in_use_by_host={"a": 1})}),
        None, id="limit free",
    ),
    pytest.param(
        block(limits=("houdini", "nuke")), lane(),
        FarmView(limits={
            "houdini": LimitState("houdini", max_total=10),
            "nuke": LimitState("nuke", max_total=1, in_use_by_host={"h9": 1}),
        }),
        "limit nuke", id="every limit must have a unit free",
    ),
    pytest.param(block(limits=("gone",)), lane(), FREE, None, id="an unknown limit holds nothing"),
]  # fmt: skip


@pytest.mark.parametrize(("blk", "ln", "farm", "expected"), REFUSALS)
def test_refusal(blk: BlockView, ln: LaneView, farm: FarmView, expected: str | None) -> None:
    why = refusal(blk, ln, farm)
    if expected is None:
        assert why is None
    else:
        assert why is not None
        assert expected in why


# (blocks, lane, farm, expected job ids in order)
RANKS = [
    pytest.param(
        [block(1, job_priority=90), block(2, job_priority=10, filters="pool:@render")],
        lane(), FREE, [2, 1], id="dedicated pool first whatever the priority",
    ),
    pytest.param(
        [block(1, job_priority=90), block(2, job_priority=10, filters="pool:@render")],
        lane(OFFICE), FREE, [1, 2], id="off the pool the dedicated job is just a job",
    ),
    pytest.param(
        [block(1, job_priority=10), block(2, job_priority=90)], lane(), FREE, [2, 1],
        id="priority",
    ),
    pytest.param(
        [block(1, owner="alice"), block(2, owner="bob", user_priority=10)], lane(), FREE, [2, 1],
        id="user priority",
    ),
    pytest.param(
        [block(1, owner="alice"), block(2, owner="bob")], lane(),
        FarmView(running_by_user={"alice": 4, "bob": 1}), [2, 1], id="fair share",
    ),
    pytest.param(
        [block(2), block(1)], lane(), FREE, [1, 2], id="age",
    ),
    pytest.param(
        [block(1, filters="ram:>200GB"), block(2)], lane(), FREE, [2], id="ineligible left out",
    ),
    pytest.param(
        [block(9), block(10)], lane(), FREE, [9, 10], id="job ids compare as numbers",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("blocks", "ln", "farm", "expected"), RANKS)
def test_rank(blocks: list[BlockView], ln: LaneView, farm: FarmView, expected: list[int]) -> None:
    assert [b.job_id for b in rank(ln, blocks, farm)] == expected


def test_blocks_of_one_job_go_in_block_order() -> None:
    blocks = [block(1, block_id=11, block_index=1), block(1, block_id=10, block_index=0)]
    assert [b.block_index for b in rank(lane(), blocks, FREE)] == [0, 1]


def running(attempt: int, job: int, lane_index: int, priority: int = 50, **kw: Any) -> RunningView:
    return RunningView(attempt, job, lane_index, priority, started_at=T0 + attempt, **kw)


DEDICATED = block(7, job_priority=5, filters="pool:@render", preempt=True, runnable=5)


def test_a_preempting_dedicated_job_takes_the_busy_lanes_of_other_jobs() -> None:
    busy = [lane(lane=0), lane(lane=1)]
    held = [running(1, job=1, lane_index=0), running(2, job=2, lane_index=1)]

    assert sorted(preemptions([], busy, held, [DEDICATED], FREE)) == [1, 2]


def test_preemption_takes_the_lowest_priority_newest_lane_first() -> None:
    busy = [lane(lane=0), lane(lane=1), lane(lane=2)]
    held = [
        running(1, job=1, lane_index=0, priority=40),
        running(2, job=2, lane_index=1, priority=30),
        running(3, job=3, lane_index=2, priority=40),
    ]
    one_task = replace(DEDICATED, runnable=2)

    assert preemptions([], busy, held, [one_task], FREE) == [2, 3]


def test_preemption_takes_a_lane_whole_with_the_task_held_ahead() -> None:
    held = [running(1, job=1, lane_index=0), running(2, job=1, lane_index=0)]
    assert preemptions([], [lane(lane=0)], held, [DEDICATED], FREE) == [1, 2]


@pytest.mark.parametrize(
    ("blocks", "held", "free", "why"),
    [
        pytest.param(
            [replace(DEDICATED, preempt=False)], [running(1, 1, 0)], [], "no preempt option"
        ),
        pytest.param([DEDICATED], [running(1, 7, 0)], [], "the lane runs the dedicated job"),
        pytest.param(
            [DEDICATED, block(1, filters="pool:@render")],
            [running(1, 1, 0)],
            [],
            "the lane runs another job dedicated to the pool",
        ),
        pytest.param(
            [replace(DEDICATED, runnable=1)],
            [running(1, 1, 0)],
            [lane(lane=1)],
            "a free lane already serves the only task left",
        ),
        pytest.param(
            [replace(DEDICATED, runs="blender")],
            [running(1, 1, 0)],
            [],
            "the busy lane cannot run the job's engine",
        ),
        pytest.param([DEDICATED], [running(1, 1, 0, stoppable=False)], [], "already stopping"),
    ],
)
def test_no_preemption(
    blocks: list[BlockView], held: list[RunningView], free: list[LaneView], why: str
) -> None:
    busy = [lane(lane=0, engines=frozenset({"command"}))]
    assert preemptions(free, busy, held, blocks, FREE) == [], why


def test_preemption_needs_a_worker_in_the_dedicated_pool() -> None:
    busy = [lane(OFFICE, lane=0)]
    assert preemptions([], busy, [running(1, 1, 0)], [DEDICATED], FREE) == []
