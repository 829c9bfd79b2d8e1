"""A bandwidth cap shared by a transfer's streams: each batch waits for its share of time."""

from __future__ import annotations

import asyncio
import time

#: Bytes a capped transfer may send at once before it is made to wait (a quarter second's worth).
BURST_S = 0.25


class Throttle:
    """At most `bps` bytes per second on average (None: no cap)."""

    def __init__(self, bps: int | None) -> None:
        self.bps = bps
        self._next = time.monotonic()

    async def take(self, n: int) -> None:
        if not self.bps or n <= 0:
            return
        now = time.monotonic()
        start = max(now - BURST_S, self._next)
        self._next = start + n / self.bps
        wait = self._next - now - BURST_S
        if wait > 0:
            await asyncio.sleep(wait)
