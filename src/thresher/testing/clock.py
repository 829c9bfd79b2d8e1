"""A clock for tests: time moves only when the test says so."""

from __future__ import annotations


class FakeClock:
    """A `thresher.core.clock.Clock` that moves only when told to."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._now = start

    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        self._now += seconds
