"""Wakes held polls when something may have made work available."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


class Notifier:
    """A generation counter with an event: waiters wake on any `notify()` after they began."""

    def __init__(self) -> None:
        self._event = asyncio.Event()
        self.generation = 0
        self.closing = False  # the server is shutting down: held polls answer now
        # Called with `soft` on every notify: the dispatch index listens (see DispatchIndex).
        self.listeners: list[Callable[[bool], None]] = []

    def notify(self, *, soft: bool = False) -> None:
        """Wake waiters. `soft`: a worker's report (finishes), which dispatch may see a moment
        later; anything else (a submission, an edit) counts at the very next decision."""
        for listener in self.listeners:
            listener(soft)
        self.generation += 1
        event, self._event = self._event, asyncio.Event()
        event.set()

    def close(self) -> None:
        """The server is stopping: wake every held poll, and let none wait again."""
        self.closing = True
        self.notify()

    async def wait(self, since: int, timeout: float) -> bool:
        """True if notified after generation `since`, False on timeout."""
        if self.generation != since or self.closing:
            return True
        try:
            await asyncio.wait_for(self._event.wait(), timeout)
        except TimeoutError:
            return False
        return True
