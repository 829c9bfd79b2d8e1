"""Waiting, in tests, for something another thread or process does: poll it under a deadline."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

# The pause between two looks only paces the polling; the predicate decides when the wait ends.
_FIRST_PAUSE_S = 0.001
_LONGEST_PAUSE_S = 0.05


def wait_until(predicate: Callable[[], T], *, timeout: float, what: str) -> T:
    """Call `predicate` until it returns a true value, and return that value.

    It is looked at once more when `timeout` seconds (of the monotonic clock) have passed; if it is
    still false then, AssertionError names `what`. An exception from `predicate` ends the wait.
    """
    deadline = time.monotonic() + timeout
    pause = _FIRST_PAUSE_S
    while True:
        value = predicate()
        if value:
            return value
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(min(pause, left))
        pause = min(pause * 2, _LONGEST_PAUSE_S)
