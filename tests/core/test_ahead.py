"""Sizing the tasks a lane holds ahead by the block's mean run time."""

from __future__ import annotations

import pytest

from thresher.core.ahead import AHEAD_CAP, is_short, tasks_ahead


@pytest.mark.parametrize(
    ("asked", "mean_s", "expected"),
    [
        (0, 0.001, 0),  # the worker asked for none: none, however short
        (1, None, 0),  # no task of the block has ended yet: nothing is known to be short
        (1, 2.0, 0),  # not short
        (3, 5.0, 0),
        (1, 0.001, AHEAD_CAP),  # 1 ms tasks: the cap, not 250
        (1, 0.0, AHEAD_CAP),  # measured as no time at all
        (1, 0.05, 5),  # 5 x 50 ms cover a quarter second
        (1, 0.1, 2),
        (1, 0.3, 1),  # longer than the cover: what the worker asked for
        (1, 1.9, 1),
        (3, 0.1, 3),  # never fewer than asked
        (AHEAD_CAP + 8, 0.001, AHEAD_CAP + 8),  # asked for more than the cap: what it asked
    ],
)
def test_tasks_ahead(asked: int, mean_s: float | None, expected: int) -> None:
    assert tasks_ahead(asked, mean_s) == expected


def test_cover_and_cap_are_parameters() -> None:
    assert tasks_ahead(1, 0.01, cover_s=1.0, cap=64) == 64
    assert tasks_ahead(1, 0.01, cover_s=0.1, cap=64) == 10


@pytest.mark.parametrize(
    ("mean_s", "short"), [(None, False), (0.0, True), (1.99, True), (2.0, False)]
)
def test_is_short(mean_s: float | None, short: bool) -> None:
    assert is_short(mean_s) is short


@pytest.mark.parametrize(
    ("holding", "expected"),
    [
        (0, AHEAD_CAP),
        (15, AHEAD_CAP - 15),  # topped up to the cap, not handed the cap again
        (AHEAD_CAP, 1),  # full: still what the worker asked for
        (-3, AHEAD_CAP),
    ],
)
def test_a_lane_is_topped_up_to_what_covers_its_time(holding: int, expected: int) -> None:
    assert tasks_ahead(1, 0.001, holding=holding) == expected
    assert tasks_ahead(1, 0.05, holding=4) == 1  # 5 cover a quarter second; 4 held
    assert tasks_ahead(1, None, holding=0) == 0
