"""The one thread that runs the farm's use cases, so the event loop only moves bytes.

Every store call and every decision over the farm's in-memory state (the dispatch index, the
leases not yet written, the known tokens) happens on this thread, one use case after another,
as they did on the event loop before; the loop meanwhile goes on serving other requests, held
polls and `/healthz`, whatever the database does (a lock held by another process, a slow
query, a server restarting)."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import queue
import random
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, ParamSpec, TypeVar

from thresher.core.errors import Contended, Unavailable

P = ParamSpec("P")
T = TypeVar("T")
log = logging.getLogger("thresher.controller")

#: How often a use case the database rolled back for a conflict (a deadlock between two
#: controllers' polls, a serialisation failure) runs again before the caller gets a 503.
CONTENDED_TRIES = 5


def retrying(fn: Callable[[], T], *, tries: int = CONTENDED_TRIES) -> T:
    """`fn()`, run again after a short random pause when the database rolled it back for a
    conflict with another transaction (`Contended`). A use case is one transaction, so a
    rolled-back run left nothing behind; the pause grows with each try and is random, so the
    two sides of a deadlock do not meet again."""
    for attempt in range(1, tries + 1):
        try:
            return fn()
        except Contended:
            if attempt == tries:
                raise
            log.info("a transaction was rolled back for a conflict; try %d of %d", attempt, tries)
            time.sleep(random.uniform(0.001, 0.005) * 2 ** (attempt - 1))
    raise AssertionError("unreachable")


#: Under load the farm thread hands the answers of the calls it ran in a row back to the loop
#: together, at most this long after the first of them was ready: one wake-up of the loop (a
#: system call, and the GIL handed over) for several calls instead of one each.
SETTLE_WITHIN_S = 0.002


#: At most this many calls of one `run_together` function run as one call: a group of polls
#: shares one transaction (BEGIN and COMMIT, the tokens' read, on PostgreSQL the blocks'
#: counters journaled once) and its finishes' statements (`controller/reports.py`); its cost is
#: its first poll's wait for the group's commit. On PostgreSQL it was 8 while every poll
#: updated its block's row twice (the row's versions of one transaction had to fit its page);
#: the block's counters now go to a journal and its cursor moves by reserved ranges, so the
#: row is written a few times a minute whatever the group's size (`bench/dispatch.py` reports
#: the blocks table's updates and size).
TOGETHER_MAX = 32


Together = Callable[[list[Any]], Sequence[object]]
"""A function of several calls' items, giving each item's outcome (a value or an exception)."""


class _Call:
    """A call handed to the farm thread: run in the caller's context, its outcome settled on
    the caller's loop (`future`), or nobody waits (`future` None). A call of `run_together`
    has its function in `together` and its argument in `item`."""

    __slots__ = ("context", "error", "fn", "future", "item", "together", "value")

    def __init__(
        self,
        fn: Callable[[], object],
        context: contextvars.Context | None,
        future: asyncio.Future[object] | None,
        *,
        together: Together | None = None,
        item: object = None,
    ) -> None:
        self.fn, self.context, self.future = fn, context, future
        self.together, self.item = together, item
        self.value: object = None
        self.error: BaseException | None = None


def _settle(calls: list[_Call]) -> None:
    """On the loop: the outcomes of calls the farm thread ran (a caller that gave up, e.g.
    its request cancelled, finds its future cancelled and is skipped)."""
    for call in calls:
        future = call.future
        if future is None or future.done():
            continue
        if call.error is not None:
            future.set_exception(call.error)
        else:
            future.set_result(call.value)
        call.error = None  # no reference cycle through the traceback


def _unused() -> None:
    """The `fn` of a `run_together` call (its function is `together`)."""


class FarmThread:
    """Runs use cases one at a time on a thread of their own. Calls queued while one runs are
    run next, and their answers go back to the loop together (`SETTLE_WITHIN_S`), at the
    latest before the last of them runs."""

    def __init__(self, *, together_max: int = TOGETHER_MAX) -> None:
        self._together_max = together_max
        self._queue: queue.SimpleQueue[_Call | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._serve, name="thresher-farm_0", daemon=True)
        self._started = False
        self._start_lock = threading.Lock()
        self._closed = False
        # Told (on this thread) whenever a call found the database unavailable, wherever in the
        # call that was: a token's look-up before the use case as much as the use case itself.
        self.on_unavailable: Callable[[], None] | None = None

    def _noting(self, call: Callable[[], T]) -> T:
        try:
            return retrying(call)
        except Unavailable:
            if self.on_unavailable is not None:
                self.on_unavailable()
            raise

    def _put(self, call: _Call) -> None:
        if self._closed:
            raise RuntimeError("the farm thread is closed")
        if not self._started:
            with self._start_lock:
                if not self._started:
                    self._thread.start()
                    self._started = True
        self._queue.put(call)

    async def run(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """`fn(*args, **kwargs)` on the farm thread; its result or its exception."""
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        # In a copy of the caller's context: the request id reaches the use case's log lines.
        context = contextvars.copy_context()
        self._put(_Call(functools.partial(fn, *args, **kwargs), context, future))  # type: ignore[arg-type]
        return await future

    async def run_together(self, together: Together, item: object) -> Any:
        """`together([item])[0]` on the farm thread, its value or its exception; calls of the
        same function queued one right after another (up to `together_max`) run as one call of
        it, `together([item, item2, ...])`, each caller getting its own outcome. The group
        runs in the first call's context (its request id in the log lines)."""
        future: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        context = contextvars.copy_context()
        self._put(_Call(_unused, context, future, together=together, item=item))
        return await future

    def post(self, fn: Callable[[], object]) -> None:
        """Run `fn()` on the farm thread, after what was handed over before; nobody waits."""
        self._put(_Call(fn, None, None))

    def _serve(self) -> None:
        pending: dict[asyncio.AbstractEventLoop, list[_Call]] = {}
        first_at = 0.0
        carried: _Call | None = None  # taken from the queue behind a group, runs next
        while True:
            if carried is not None:
                call: _Call | None = carried
                carried = None
            else:
                try:
                    call = self._queue.get(block=not pending)
                except queue.Empty:  # nothing more queued: answer what ran
                    self._hand_back(pending)
                    continue
            if call is None:
                self._hand_back(pending)
                return
            if pending and self._queue.empty():
                # The last call queued: the answers ready go back before it runs, not after
                # (it may take far longer than they waited: a report's transaction, 9 ms
                # on PostgreSQL, held a job's wait that had run before it).
                self._hand_back(pending)
            if call.together is not None:
                ran, carried = self._group(call)
                self._together(ran)
            else:
                self._one(call)
                ran = [call]
            for done in ran:
                if done.future is None:
                    continue
                if not pending:
                    first_at = time.monotonic()
                pending.setdefault(done.future.get_loop(), []).append(done)
            # also after a posted call: a run of them must not hold back the answers ready
            if pending and time.monotonic() - first_at >= SETTLE_WITHIN_S:
                self._hand_back(pending)

    def _group(self, first: _Call) -> tuple[list[_Call], _Call | None]:
        """`first` and the calls of the same function queued right behind it; and the call
        taken from the queue that is not one of them (it runs next), if any."""
        group = [first]
        while len(group) < self._together_max:
            try:
                call = self._queue.get_nowait()
            except queue.Empty:
                return group, None
            if call is None:  # close(): nothing can be queued after it, so it goes back last
                self._queue.put(None)
                return group, None
            if call.together != first.together:
                return group, call
            group.append(call)
        return group, None

    def _together(self, group: list[_Call]) -> None:
        first = group[0]
        assert first.together is not None
        assert first.context is not None
        run = functools.partial(first.together, [call.item for call in group])
        try:
            outcomes = first.context.run(self._noting, run)
        except BaseException as exc:  # the group failed as a whole: every caller hears it
            for call in group:
                call.error = exc
            return
        if self.on_unavailable is not None and any(isinstance(o, Unavailable) for o in outcomes):
            self.on_unavailable()  # an outcome, not raised: the outage is noted all the same
        for call, outcome in zip(group, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                call.error = outcome
            else:
                call.value = outcome

    def _one(self, call: _Call) -> None:
        try:
            if call.context is not None:
                call.value = call.context.run(self._noting, call.fn)
            else:
                call.fn()
        except BaseException as exc:  # handed to the caller, or logged when nobody waits
            if call.future is None:
                log.exception("a call posted to the farm thread failed")
            else:
                call.error = exc

    @staticmethod
    def _hand_back(pending: dict[asyncio.AbstractEventLoop, list[_Call]]) -> None:
        for loop, calls in pending.items():
            if not loop.is_closed():
                loop.call_soon_threadsafe(_settle, calls)
        pending.clear()

    def close(self) -> None:
        """Finish what was handed over, then stop the thread."""
        if self._closed:
            return
        self._closed = True
        if self._started:
            self._queue.put(None)
            self._thread.join()
