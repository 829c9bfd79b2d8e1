"""Table tests for dispatch order (dedicated, priority, fair share, age) and the counted checks."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from thresher.core.ordering import (
    Candidate,
    LimitState,
    capacity_allows,
    caps_allow,
    dispatch_key,
    limits_allow,
)

T0 = 1_700_000_000.0


def cand(job: str, **fields: Any) -> Candidate:
    """A block 0 of `job` owned by alice, priority 50, submitted at T0, unless told otherwise."""
    base = Candidate(
        job_id=job, block_id=f"{job}.b0", owner="alice", job_priority=50, submitted_at=T0
    )
    return replace(base, **fields)


def in_order(cands: list[Candidate], running: dict[str, int]) -> list[Candidate]:
    """The candidates sorted by their dispatch keys, as `core.dispatch.rank` sorts blocks."""
    return sorted(cands, key=lambda c: dispatch_key(c, running))


# (candidates, running tasks per user, expected order of (job_id, block_index))
ORDER_TABLE = [
    pytest.param(
        [cand("lo", job_priority=10), cand("hi", job_priority=90)], {}, ["hi", "lo"], id="priority"
    ),
    pytest.param(
        [cand("hi", job_priority=100), cand("ded", job_priority=0, dedicated_rank=0)],
        {},
        ["ded", "hi"],
        id="dedicated beats any priority",
    ),
    pytest.param(
        [cand("a", owner="alice", user_priority=0), cand("b", owner="bob", user_priority=5)],
        {},
        ["b", "a"],
        id="user priority at equal job priority",
    ),
    pytest.param(
        [cand("a", owner="alice", user_priority=9, job_priority=40), cand("b", owner="bob")],
        {},
        ["b", "a"],
        id="job priority before user priority",
    ),
    pytest.param(
        [cand("a", owner="alice"), cand("b", owner="bob")],
        {"alice": 5, "bob": 2},
        ["b", "a"],
        id="fair share: fewer running first",
    ),
    pytest.param(
        [cand("a", owner="alice"), cand("b", owner="bob")],
        {"alice": 1},
        ["b", "a"],
        id="fair share: an owner with nothing running counts 0",
    ),
    pytest.param(
        [cand("a", owner="alice", job_priority=60), cand("b", owner="bob")],
        {"alice": 100},
        ["a", "b"],
        id="priority before fair share",
    ),
    pytest.param(
        [cand("new", submitted_at=T0 + 5), cand("old", submitted_at=T0)],
        {},
        ["old", "new"],
        id="age at equal priority and share",
    ),
    pytest.param(
        [cand("new", owner="bob", submitted_at=T0 + 5), cand("old", submitted_at=T0)],
        {"alice": 3},
        ["new", "old"],
        id="fair share before age",
    ),
    pytest.param([cand("j2"), cand("j1")], {}, ["j1", "j2"], id="job id breaks full ties"),
    pytest.param([], {}, [], id="nothing to order"),
]


@pytest.mark.parametrize(("cands", "running", "expected"), ORDER_TABLE)
def test_order_candidates(
    cands: list[Candidate], running: dict[str, int], expected: list[str]
) -> None:
    assert [c.job_id for c in in_order(cands, running)] == expected


def test_blocks_of_one_job_go_in_block_order() -> None:
    cands = [cand("j", block_id="j.b2", block_index=2), cand("j", block_id="j.b0", block_index=0)]
    assert [c.block_id for c in in_order(cands, {})] == ["j.b0", "j.b2"]


def test_dispatch_key_spells_out_the_order() -> None:
    c = cand("j", owner="bob", job_priority=70, user_priority=3, dedicated_rank=0, block_index=1)
    assert dispatch_key(c, {"bob": 4}) == (0, -70, -3, 4, T0, "j", 1)


@pytest.mark.parametrize("priority", [-1, 101])
def test_job_priority_is_0_to_100(priority: int) -> None:
    with pytest.raises(ValueError, match="0-100"):
        cand("j", job_priority=priority)


# (limit, host asking, allowed?)
LIMIT_TABLE = [
    pytest.param(LimitState("nuke"), "h1", True, id="unlimited"),
    pytest.param(LimitState("nuke", max_total=2), "h1", True, id="total free"),
    pytest.param(
        LimitState("nuke", max_total=2, in_use_by_host={"h1": 1, "h2": 1}),
        "h3",
        False,
        id="total reached",
    ),
    pytest.param(LimitState("nuke", max_total=0), "h1", False, id="zero licenses"),
    pytest.param(
        LimitState("nuke", max_per_host=1, in_use_by_host={"h1": 1}),
        "h1",
        False,
        id="per host reached",
    ),
    pytest.param(
        LimitState("nuke", max_per_host=1, in_use_by_host={"h1": 1}),
        "h2",
        True,
        id="per host reached elsewhere only",
    ),
    pytest.param(
        LimitState("nuke", max_per_host=2, in_use_by_host={"h1": 1}), "h1", True, id="per host free"
    ),
    pytest.param(
        LimitState("nuke", max_hosts=2, in_use_by_host={"h1": 3, "h2": 1}),
        "h3",
        False,
        id="max hosts reached for a new host",
    ),
    pytest.param(
        LimitState("nuke", max_hosts=2, in_use_by_host={"h1": 3, "h2": 1}),
        "h1",
        True,
        id="max hosts reached, host already holds one",
    ),
    pytest.param(
        LimitState("nuke", max_hosts=2, in_use_by_host={"h1": 3, "h2": 0}),
        "h3",
        True,
        id="a host holding zero does not count",
    ),
    pytest.param(
        LimitState("nuke", max_total=5, max_per_host=2, max_hosts=3, in_use_by_host={"h1": 2}),
        "h1",
        False,
        id="all three set, per host binds",
    ),
]


@pytest.mark.parametrize(("limit", "host", "expected"), LIMIT_TABLE)
def test_limits_allow(limit: LimitState, host: str, expected: bool) -> None:
    assert limits_allow(limit, host) is expected


def test_limit_state_is_a_snapshot() -> None:
    usage = {"h1": 1}
    limit = LimitState("nuke", max_total=1, in_use_by_host=usage)
    usage["h1"] = 0
    assert limit.in_use == 1
    assert limit.hosts_in_use == 1


CAPACITY_TABLE = [
    pytest.param(1000, 1000, True, id="exactly enough"),
    pytest.param(999, 1000, False, id="one short"),
    pytest.param(2000, 500, True, id="plenty"),
    pytest.param(0, 0, True, id="needs nothing"),
    pytest.param(0, 1, False, id="full"),
]


@pytest.mark.parametrize(("free", "needed", "expected"), CAPACITY_TABLE)
def test_capacity_allows(free: int, needed: int, expected: bool) -> None:
    assert capacity_allows(free, needed) is expected


def test_negative_capacity_need_is_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        capacity_allows(10, -1)


# (job running, job max, user running, user max, job on this host, job max per host, allowed?)
CAPS_TABLE = [
    pytest.param(5, None, 50, None, 3, None, True, id="no caps"),
    pytest.param(3, 4, 0, None, 0, None, True, id="job below max"),
    pytest.param(4, 4, 0, None, 0, None, False, id="job at max"),
    pytest.param(0, None, 9, 10, 0, None, True, id="user below max"),
    pytest.param(0, None, 10, 10, 0, None, False, id="user at max"),
    pytest.param(0, None, 0, None, 1, 2, True, id="host below max"),
    pytest.param(0, None, 0, None, 2, 2, False, id="host at max"),
    pytest.param(0, 0, 0, None, 0, None, False, id="job max zero"),
    pytest.param(3, 4, 9, 10, 1, 2, True, id="all below"),
    pytest.param(3, 4, 10, 10, 1, 2, False, id="one at max is enough"),
]


@pytest.mark.parametrize(
    ("job", "job_max", "user", "user_max", "on_host", "host_max", "expected"), CAPS_TABLE
)
def test_caps_allow(
    job: int,
    job_max: int | None,
    user: int,
    user_max: int | None,
    on_host: int,
    host_max: int | None,
    expected: bool,
) -> None:
    allowed = caps_allow(
        job_running=job,
        job_max=job_max,
        user_running=user,
        user_max=user_max,
        job_running_on_host=on_host,
        job_max_per_host=host_max,
    )
    assert allowed is expected
