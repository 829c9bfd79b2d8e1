"""A worker's lanes as threads: each runs the work handed to it, one piece after another.

The agent's event loop decides what a lane runs and hands it over at once, also while the lane
is busy (a short task held ahead); the lane's thread starts the next piece the moment the last
one ends, without a round trip through the event loop. What ended is handed back to the loop in
batches: one wake-up of the loop for however many pieces ended since the last one.

A wake-up of the loop costs both threads CPU (a write to the loop's self-pipe, a turn on the
GIL), so a lane that still holds much of what it was handed does not wake the loop for each piece
it ends: the loop hears at once when a lane has used a third of what it held when the loop last
looked (the worker then asks for more), and otherwise within ``linger_s``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from thresher.worker.poll_policy import ran_low

__all__ = ["Done", "LaneThreads"]

log = logging.getLogger("thresher.worker")


_FEW = 2
"""A lane holding no more pieces than this wakes the loop for each one that ends."""

IDLE_AFTER_S = 0.05
"""How long a lane left with nothing stays idle before it prepares for what may come (a spare
job folder, `when_idle`). At once, the preparation took the GIL from the loop while the loop
reported the piece's end: from a one-task job's exit seen to its report sent, 1.6 ms against
0.6 ms without it (`bench/latency.py`, traced). Work handed meanwhile starts at once, without
it."""


@dataclass(frozen=True)
class Done:
    """A piece of work a lane ran: what it returned, or the exception it raised."""

    lane: int
    key: object
    value: object = None
    error: BaseException | None = None


@dataclass
class _Piece:
    key: object
    work: Callable[[], object]


class LaneThreads:
    """One thread per lane. :meth:`hand` and :meth:`withdraw` may be called from any thread;
    ``on_done`` is called on the event loop given to :meth:`start`, with every :class:`Done`
    since its last call, in the order the pieces ended: at once when a lane is left with at most
    two thirds of the pieces it held when the loop last looked (or with none), else within
    ``linger_s``."""

    def __init__(
        self,
        lanes: int,
        *,
        on_done: Callable[[list[Done]], None],
        linger_s: float = 0.05,
        when_idle: Callable[[], None] | None = None,
        idle_after_s: float = IDLE_AFTER_S,
    ) -> None:
        self._on_done = on_done
        # Run by a lane's thread when it starts and when it has ended a piece and held no other
        # for `idle_after_s`: preparation for what may come (off the path from a hand-over to
        # its start, and from a piece's end to its report).
        self._when_idle = when_idle
        self._idle_after_s = idle_after_s
        self._linger_s = linger_s
        self._lock = threading.Lock()
        self._queues: list[deque[_Piece]] = [deque() for _ in range(lanes)]
        self._ready = [threading.Condition(self._lock) for _ in range(lanes)]
        # Pieces each lane held (not started) when the loop last looked, or more if handed since.
        self._marks = [0] * lanes
        self._done: list[Done] = []
        self._wake: Literal["now", "later"] | None = None  # the loop's wake-up on its way
        self._timer: asyncio.TimerHandle | None = None  # on the loop: the "later" delivery
        self._closing = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._threads: list[threading.Thread] = []

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        for lane in range(len(self._queues)):
            thread = threading.Thread(
                target=self._serve, args=(lane,), name=f"lane-{lane}", daemon=True
            )
            self._threads.append(thread)
            thread.start()

    def hand(self, lane: int, key: object, work: Callable[[], object]) -> None:
        """Queue ``work`` on ``lane``; it runs after what the lane was handed before."""
        with self._lock:
            queue = self._queues[lane]
            queue.append(_Piece(key, work))
            self._marks[lane] = max(self._marks[lane], len(queue))
            self._ready[lane].notify()

    def withdraw(self, lane: int, key: object) -> bool:
        """Take back a piece the lane has not started; False if it started (or is unknown)."""
        with self._lock:
            queue = self._queues[lane]
            for piece in queue:
                if piece.key == key:
                    queue.remove(piece)
                    return True
        return False

    def close(self, timeout: float | None = None) -> None:
        """Let each lane end what it runs, drop what it has not started, and join the threads."""
        with self._lock:
            self._closing = True
            for queue, ready in zip(self._queues, self._ready, strict=True):
                queue.clear()
                ready.notify()
        for thread in self._threads:
            thread.join(timeout)

    def _serve(self, lane: int) -> None:
        queue, ready = self._queues[lane], self._ready[lane]
        self._idle()
        while True:
            with self._lock:
                while not queue and not self._closing:
                    ready.wait()
                if self._closing:
                    return
                piece = queue.popleft()
            try:
                done = Done(lane, piece.key, value=piece.work())
            except Exception as exc:  # the agent turns it into the attempt's failure
                log.exception("lane %s: work failed", lane)
                done = Done(lane, piece.key, error=exc)
            self._finished(done)
            if self._stays_idle(queue, ready):
                self._idle()

    def _stays_idle(self, queue: deque[_Piece], ready: threading.Condition) -> bool:
        """After a piece: whether the lane is still without work `idle_after_s` later (not
        closing); work handed or `close` meanwhile end the wait."""
        with self._lock:
            ready.wait_for(lambda: bool(queue) or self._closing, self._idle_after_s)
            return not queue and not self._closing

    def _idle(self) -> None:
        if self._when_idle is not None:
            try:
                self._when_idle()
            except Exception:
                log.exception("a lane's preparation while idle failed")

    def _finished(self, done: Done) -> None:
        with self._lock:
            self._done.append(done)
            if self._wake == "now":
                return  # the loop is on its way: it takes this one too
            mark, left = self._marks[done.lane], len(self._queues[done.lane])
            now = mark <= _FEW or ran_low(left, mark)
            if not now and self._wake == "later":
                return
            self._wake = "now" if now else "later"
        if self._loop is not None:
            with contextlib.suppress(RuntimeError):  # a closed loop: the worker is going away
                self._loop.call_soon_threadsafe(self._deliver if now else self._deliver_later)

    def _deliver_later(self) -> None:
        if self._timer is None and self._loop is not None:
            self._timer = self._loop.call_later(self._linger_s, self._deliver)

    def _deliver(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        with self._lock:
            batch, self._done = self._done, []
            self._wake = None
            self._marks = [len(queue) for queue in self._queues]
        if batch:
            self._on_done(batch)
