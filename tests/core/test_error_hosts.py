"""Table tests for error hosts: block avoidance and forgiveness; sick hosts (the evidence that
counts against a host, jobs and owners within the window), clearing."""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import pytest

from thresher.core.error_hosts import (
    ErrorPolicy,
    HostFailure,
    avoided_until,
    block_error_count,
    counting_failures,
    sick_since,
)

T0 = 1_700_000_000.0
HOUR = 3600.0
POLICY = ErrorPolicy()  # 3 errors, forgive after 5 h; 3 jobs of 2 owners within 1 h


def test_defaults() -> None:
    expected = ErrorPolicy(
        errors_to_avoid=3, forgive_s=5 * HOUR, sick_jobs=3, sick_window_s=HOUR, sick_owners=2
    )
    assert expected == POLICY


H = HOUR
# Times are offsets from T0 in seconds: (errors of this host on the block, now, avoided?)
AVOID_TABLE = [
    pytest.param([], 0, False, id="no errors"),
    pytest.param([0, 10], 20, False, id="N-1 errors"),
    pytest.param([0, 10, 20], 20, True, id="N errors"),
    pytest.param([20, 0, 10], 30, True, id="N errors, unsorted"),
    pytest.param([0, 1, 2, 3], 4, True, id="more than N"),
    pytest.param([0, 10, 20], 20 + 5 * H - 1, True, id="just before forgiven"),
    pytest.param([0, 10, 20], 20 + 5 * H, False, id="forgiven exactly forgive_s after last error"),
    pytest.param([0, 4 * H, 8 * H], 12 * H, True, id="forgiveness counts from the last error"),
    pytest.param([0, 6 * H, 6 * H + 1], 7 * H, False, id="an old error no longer counts"),
    pytest.param([0, 1, 2, 6 * H], 6 * H, False, id="after forgiveness a full count is needed"),
    pytest.param([0, 1, 2, 6 * H, 7 * H, 8 * H], 8 * H, True, id="and reached again"),
    pytest.param([0, 10, 20], 15, False, id="future errors are ignored"),
]


@pytest.mark.parametrize(("errors", "now", "expected"), AVOID_TABLE)
def test_block_avoids(errors: list[float], now: float, expected: bool) -> None:
    assert (avoided_until([T0 + t for t in errors], T0 + now, POLICY) is not None) is expected


def test_threshold_follows_the_policy() -> None:
    strict = ErrorPolicy(errors_to_avoid=1, forgive_s=60)
    assert avoided_until([T0], T0, strict) == T0 + 60
    assert avoided_until([T0], T0 + 60, strict) is None
    never = ErrorPolicy(errors_to_avoid=1, forgive_s=math.inf)
    assert avoided_until([T0], T0 + 10**9, never) == math.inf


def test_error_count_and_forgiveness_time_for_the_visible_list() -> None:
    errors = [T0, T0 + 10, T0 + 20]
    assert block_error_count(errors[:2], T0 + 30, POLICY) == 2
    assert avoided_until(errors[:2], T0 + 30, POLICY) is None
    assert avoided_until(errors, T0 + 30, POLICY) == T0 + 20 + 5 * HOUR
    assert block_error_count(errors, T0 + 20 + 5 * HOUR, POLICY) == 0
    assert avoided_until(errors, T0 + 20 + 5 * HOUR, POLICY) is None


def fail(
    job: str, at: float, *, owner: str | None = None, host: str = "h", block: str | None = None
) -> HostFailure:
    """A failure of `job` (owned by a user of the same name unless told) on one host."""
    return HostFailure(host=host, job=job, owner=owner or job, block=block or job, at=T0 + at)


ABC = [fail("a", 0), fail("b", 1), fail("c", 2)]
# (counting failures of one host, now, cleared_at, sick?) under 3 jobs of 2 owners within 1 h
SICK_TABLE = [
    pytest.param([], 0, None, False, id="no failures"),
    pytest.param(
        [fail("a", 0), fail("b", 60), fail("c", 120)], 120, None, True, id="N jobs in window"
    ),
    pytest.param([fail("a", 0), fail("b", 60)], 120, None, False, id="N-1 distinct jobs"),
    pytest.param([fail("a", 0), fail("a", 1), fail("a", 2)], 3, None, False, id="one job"),
    pytest.param(
        [fail("a", 0), fail("a", 1), fail("b", 2), fail("b", 3)], 4, None, False, id="two jobs"
    ),
    pytest.param(
        [fail("a", 0, owner="u"), fail("b", 1, owner="u"), fail("c", 2, owner="u")],
        3,
        None,
        False,
        id="N jobs of one owner",
    ),
    pytest.param(
        [fail("a", 0, owner="u"), fail("b", 1, owner="u"), fail("c", 2, owner="v")],
        3,
        None,
        True,
        id="N jobs of two owners",
    ),
    pytest.param(
        [fail("a", 0, owner="v"), fail("b", H, owner="u"), fail("c", H + 1, owner="u")],
        H + 1,
        None,
        False,
        id="the second owner fell out of the window",
    ),
    pytest.param([fail("a", 0), fail("b", H), fail("c", 2 * H)], 2 * H, None, False, id="spread"),
    pytest.param([fail("a", 0), fail("b", 30), fail("c", H)], H, None, True, id="span = window"),
    pytest.param(
        [fail("a", 0), fail("b", 30), fail("c", H + 1)], H + 1, None, False, id="span > window"
    ),
    pytest.param(
        [fail("a", 0), fail("b", 2 * H), fail("a", 2 * H + 1), fail("c", 2 * H + 2)],
        3 * H,
        None,
        True,
        id="window slides past an old failure",
    ),
    pytest.param(ABC, 1000 * H, None, True, id="sickness does not wear off"),
    pytest.param(ABC, 10, 5, False, id="cleared resets"),
    pytest.param(ABC, 10, 2, False, id="failures at the clear time do not count"),
    pytest.param(
        [*ABC, fail("d", 10), fail("e", 11), fail("f", 12)], 12, 5, True, id="after clearing"
    ),
    pytest.param(
        [*ABC[:2], fail("c", 10), fail("d", 11)], 12, 5, False, id="only some after clearing"
    ),
    pytest.param(
        [fail("a", 0), fail("b", 1), fail("c", 100)], 50, None, False, id="future ignored"
    ),
]


@pytest.mark.parametrize(("failures", "now", "cleared_at", "expected"), SICK_TABLE)
def test_host_is_sick(
    failures: list[HostFailure], now: float, cleared_at: float | None, expected: bool
) -> None:
    cleared = None if cleared_at is None else T0 + cleared_at
    assert (sick_since(failures, T0 + now, POLICY, cleared) is not None) is expected


def test_sick_since_is_the_failure_that_made_it_sick() -> None:
    failures = [fail("c", 120), fail("a", 0), fail("b", 60), fail("d", 180)]
    assert sick_since(failures, T0 + 200, POLICY) == T0 + 120
    assert sick_since(failures, T0 + 200, POLICY, cleared_at=T0 + 500) is None


def test_thresholds_follow_the_policy() -> None:
    one_user = [fail("a", 0, owner="u"), fail("b", 1, owner="u")]
    assert sick_since(one_user, T0 + 2, ErrorPolicy(sick_jobs=2, sick_owners=1)) == T0 + 1
    assert sick_since(one_user, T0 + 2, ErrorPolicy(sick_jobs=2, sick_owners=2)) is None
    assert sick_since(ABC, T0 + 2, ErrorPolicy(sick_jobs=2, sick_owners=2)) == T0 + 1


# Evidence: which failures count against their host. `ok` marks a failure whose block
# succeeded on another host. (failures, now, the (host, job) pairs that count)
EVIDENCE_TABLE = [
    pytest.param([fail("a", 0, host="x")], 1, {("x", "a")}, id="failed only here: counts"),
    pytest.param(
        [fail("a", 0, host="x"), fail("a", 1, host="y")], 2, set(), id="failed everywhere: none"
    ),
    pytest.param(
        [fail("a", 0, host="x"), fail("a", 5, host="y")],
        2,
        {("x", "a")},
        id="the other host's failure is yet to happen",
    ),
    pytest.param(
        [replace(fail("a", 0, host="x"), succeeded_elsewhere=True), fail("a", 1, host="y")],
        2,
        {("x", "a")},
        id="failed elsewhere too, but succeeded elsewhere: counts",
    ),
    pytest.param(
        [fail("a", 0, host="x", block="a0"), fail("a", 1, host="y", block="a1")],
        2,
        {("x", "a"), ("y", "a")},
        id="evidence is per block, not per job",
    ),
    pytest.param(
        [fail("a", 0, host="x"), fail("a", 1, host="x"), fail("b", 2, host="y")],
        3,
        {("x", "a"), ("y", "b")},
        id="each host its own blocks",
    ),
]


@pytest.mark.parametrize(("failures", "now", "expected"), EVIDENCE_TABLE)
def test_failures_count_against_a_host_only_on_evidence(
    failures: list[HostFailure], now: float, expected: set[tuple[str, str]]
) -> None:
    counted = counting_failures(failures, T0 + now)
    assert {(f.host, f.job) for fs in counted.values() for f in fs} == expected
    assert all(f.host == host for host, fs in counted.items() for f in fs)


def test_one_users_broken_jobs_failing_on_every_host_make_no_host_sick() -> None:
    """Three jobs of one user fail on both hosts of a farm (the case that stopped a farm)."""
    failures = [
        fail(job, at, owner="alice", host=host)
        for at, (job, host) in enumerate(
            (j, h) for j in ("typo", "missing", "typo2") for h in ("x", "y")
        )
    ]
    strict = ErrorPolicy(sick_jobs=1, sick_owners=1)
    counted = counting_failures(failures, T0 + 10)
    assert counted == {}
    assert sick_since(counted.get("x", []), T0 + 10, strict) is None


def test_two_users_jobs_failing_here_and_succeeding_elsewhere_make_the_host_sick() -> None:
    failures = [
        replace(fail("a", 0, owner="alice", host="x"), succeeded_elsewhere=True),
        replace(fail("b", 1, owner="bob", host="x"), succeeded_elsewhere=True),
        fail("c", 2, owner="bob", host="x"),  # tried nowhere else yet
    ]
    counted = counting_failures(failures, T0 + 3)
    assert sick_since(counted["x"], T0 + 3, POLICY) == T0 + 2
    # c then fails on y too: it no longer counts, and two jobs are under the threshold
    later = counting_failures([*failures, fail("c", 4, owner="bob", host="y")], T0 + 5)
    assert sick_since(later["x"], T0 + 5, POLICY) is None


@pytest.mark.parametrize(
    "kwargs",
    [
        {"errors_to_avoid": 0},
        {"sick_jobs": 0},
        {"sick_owners": 0},
        {"forgive_s": 0},
        {"forgive_s": math.nan},
        {"sick_window_s": -1},
    ],
)
def test_policy_refuses_nonsense(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="must be"):
        ErrorPolicy(**kwargs)
