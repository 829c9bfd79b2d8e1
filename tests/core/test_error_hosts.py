"""Table tests for error hosts: block avoidance and forgiveness, sick hosts, clearing."""

from __future__ import annotations

import math
from typing import Any

import pytest

from thresher.core.error_hosts import (
    ErrorPolicy,
    avoided_until,
    block_error_count,
    sick_since,
)

T0 = 1_700_000_000.0
HOUR = 3600.0
POLICY = ErrorPolicy()  # 3 errors, forgive after 5 h; 3 jobs within 1 h


def test_defaults() -> None:
    expected = ErrorPolicy(errors_to_avoid=3, forgive_s=5 * HOUR, sick_jobs=3, sick_window_s=HOUR)
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


ABC = [("a", 0), ("b", 1), ("c", 2)]
# (failures as (job, offset), now, cleared_at, sick?)
SICK_TABLE = [
    pytest.param([], 0, None, False, id="no failures"),
    pytest.param([("a", 0), ("b", 60), ("c", 120)], 120, None, True, id="N jobs inside window"),
    pytest.param([("a", 0), ("b", 60)], 120, None, False, id="N-1 distinct jobs"),
    pytest.param([("a", 0), ("a", 1), ("a", 2)], 3, None, False, id="N errors of one job"),
    pytest.param(
        [("a", 0), ("a", 1), ("b", 2), ("b", 3)], 4, None, False, id="two jobs, many errors"
    ),
    pytest.param([("a", 0), ("b", H), ("c", 2 * H)], 2 * H, None, False, id="spread out"),
    pytest.param([("a", 0), ("b", 30), ("c", H)], H, None, True, id="span exactly the window"),
    pytest.param(
        [("a", 0), ("b", 30), ("c", H + 1)], H + 1, None, False, id="span over the window"
    ),
    pytest.param(
        [("a", 0), ("b", 2 * H), ("a", 2 * H + 1), ("c", 2 * H + 2)],
        3 * H,
        None,
        True,
        id="window slides past an old failure",
    ),
    pytest.param(ABC, 1000 * H, None, True, id="sickness does not wear off"),
    pytest.param(ABC, 10, 5, False, id="cleared resets"),
    pytest.param(ABC, 10, 2, False, id="failures at the clear time do not count"),
    pytest.param(
        [*ABC, ("d", 10), ("e", 11), ("f", 12)], 12, 5, True, id="new failures after clearing"
    ),
    pytest.param([*ABC[:2], ("c", 10), ("d", 11)], 12, 5, False, id="only some after clearing"),
    pytest.param([("a", 0), ("b", 1), ("c", 100)], 50, None, False, id="future failures ignored"),
]


@pytest.mark.parametrize(("failures", "now", "cleared_at", "expected"), SICK_TABLE)
def test_host_is_sick(
    failures: list[tuple[str, float]], now: float, cleared_at: float | None, expected: bool
) -> None:
    at = [(job, T0 + t) for job, t in failures]
    cleared = None if cleared_at is None else T0 + cleared_at
    assert (sick_since(at, T0 + now, POLICY, cleared) is not None) is expected


def test_sick_since_is_the_failure_that_made_it_sick() -> None:
    failures = [("c", T0 + 120), ("a", T0), ("b", T0 + 60), ("d", T0 + 180)]
    assert sick_since(failures, T0 + 200, POLICY) == T0 + 120
    assert sick_since(failures, T0 + 200, POLICY, cleared_at=T0 + 500) is None


def test_job_ids_may_be_any_hashable() -> None:
    assert sick_since([(1, T0), (2, T0), (3, T0)], T0, POLICY) == T0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"errors_to_avoid": 0},
        {"sick_jobs": 0},
        {"forgive_s": 0},
        {"forgive_s": math.nan},
        {"sick_window_s": -1},
    ],
)
def test_policy_refuses_nonsense(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="must be"):
        ErrorPolicy(**kwargs)
