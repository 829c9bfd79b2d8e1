"""Wakes held polls when something may have made work available."""

from __future__ import annotations

import asyncio
import itertools
import threading
from collections.abc import Callable, Sequence
from typing import TypeVar

T = TypeVar("T")


class Notifier:
    """A generation counter with an event: waiters wake on any `notify()` after they began.

    `notify()` may be called from the farm thread (where use cases commit) or from the event
    loop: the listeners (the dispatch index) hear of it at once, on the calling thread; the
    waiters, which live on the loop, are woken on the loop.

    The generation moves on the calling thread; the loop is woken only while a poll waits.
    A waiter counts itself in `waiting` before it compares the generation, and `notify` moves
    the generation before it reads `waiting` (both under the GIL, in that order): either the
    waiter sees the new generation, or `notify` sees the waiter and wakes the loop. Most
    notifies under load come from the farm thread with no poll waiting, and then cost no
    wake-up of the loop (a system call on its self-pipe, and the GIL handed back and forth)."""

    def __init__(self) -> None:
        # The waiters' futures, each resolved on the loop: True when woken, False when its
        # time ran out. A plain future (not `asyncio.wait_for` on an event, which wakes its
        # waiter three turns of the loop later, through a task of its own): a woken held poll
        # runs in the loop's very next turn, ahead of whatever the same commit woke after it
        # (the submission's own answer).
        self._waiters: set[asyncio.Future[bool]] = set()
        # Values from one counter, unique: a generation stored by either thread after a waiter
        # read it differs from what the waiter read, whatever order the two stores land in.
        self._generations = itertools.count(1)
        self.generation = 0
        self.closing = False  # the server is shutting down: held polls answer now
        # Called first on every notify, with `soft` and the jobs a submission added (empty
        # for any other change): the dispatch index listens (see `Farm`).
        self.index_listeners: list[Callable[[bool, Sequence[int]], None]] = []
        # Called with `soft` on every notify (a submission is not soft).
        self.listeners: list[Callable[[bool], None]] = []
        # Called on every notify and every touch: the monitor's event hub listens.
        self.observers: list[Callable[[], None]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._wake_scheduled = False  # a wake handed to the loop that has not run yet
        self.waiting = 0  # waiters in `wait()` now (held polls with nothing to do)

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """The loop the waiters run on (the server's); called from that loop."""
        self._loop, self._loop_thread = loop, threading.get_ident()

    def notify(self, *, soft: bool = False, added: Sequence[int] = ()) -> None:
        """Wake waiters. `soft`: a worker's report (finishes), which dispatch may see a moment
        later; anything else (a submission, an edit) counts at the very next decision.
        `added`: the change only submitted these jobs (the index adds them, no rebuild)."""
        for index_listener in self.index_listeners:
            index_listener(soft, added)
        for listener in self.listeners:
            listener(soft)
        self.touch()
        self.generation = next(self._generations)
        if self._loop is None or threading.get_ident() == self._loop_thread:
            self._wake()
        elif not self.waiting and not self.closing:
            return  # no poll waits: the next one sees the new generation
        elif not self._wake_scheduled and not self._loop.is_closed():
            # One wake handed over at a time: the next one, if any, runs after this change
            # (waking the loop through its self-pipe costs a system call each).
            self._wake_scheduled = True
            self._loop.call_soon_threadsafe(self._wake)

    def touch(self) -> None:
        """Something people watch changed that makes no work (output, a claim, a sample):
        tell the observers only; held polls sleep on."""
        for observer in self.observers:
            observer()

    def _wake(self) -> None:
        self._wake_scheduled = False
        waiters, self._waiters = self._waiters, set()
        for waiter in waiters:
            resolve(waiter, True)

    def close(self) -> None:
        """The server is stopping: wake every held poll, and let none wait again."""
        self.closing = True
        self.notify()

    async def wait(self, since: int, timeout: float) -> bool:
        """True if notified after generation `since`, False on timeout."""
        self.waiting += 1  # before the comparison: see the class's docstring
        if self.generation != since or self.closing:
            self.waiting -= 1
            return True
        waiter: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._waiters.add(waiter)
        try:
            return await resolved_within(waiter, timeout, False)
        finally:
            self._waiters.discard(waiter)
            self.waiting -= 1


def resolve(waiter: asyncio.Future[T], value: T) -> None:
    """On the loop: end a wait (one that was cancelled, or already ended, stays as it is)."""
    if not waiter.done():
        waiter.set_result(value)


async def resolved_within(waiter: asyncio.Future[T], timeout: float, timed_out: T) -> T:
    """The future's value once something resolves it (`resolve`), or `timed_out` after
    `timeout` seconds. A plain future, not `asyncio.wait_for` on an event, which wakes its
    waiter three turns of the loop later, through a task of its own."""
    timer = asyncio.get_running_loop().call_later(timeout, resolve, waiter, timed_out)
    try:
        return await waiter
    finally:
        timer.cancel()
