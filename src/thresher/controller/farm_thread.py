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
import random
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

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


class FarmThread:
    """Runs use cases one at a time on a thread of their own."""

    def __init__(self) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="thresher-farm")
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

    async def run(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """`fn(*args, **kwargs)` on the farm thread; its result or its exception."""
        loop = asyncio.get_running_loop()
        call = functools.partial(fn, *args, **kwargs)
        # In a copy of the caller's context: the request id reaches the use case's log lines.
        context = contextvars.copy_context()
        return await loop.run_in_executor(self._executor, context.run, self._noting, call)

    def post(self, fn: Callable[[], object]) -> None:
        """Run `fn()` on the farm thread, after what was handed over before; nobody waits."""
        self._executor.submit(fn)

    def close(self) -> None:
        """Finish what was handed over, then stop the thread."""
        self._executor.shutdown(wait=True)
