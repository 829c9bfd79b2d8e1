"""The one thread that runs the farm's use cases, so the event loop only moves bytes.

Every store call and every decision over the farm's in-memory state (the dispatch index, the
leases not yet written, the known tokens) happens on this thread, one use case after another,
as they did on the event loop before; the loop meanwhile goes on serving other requests, held
polls and `/healthz`, whatever the database does (a lock held by another process, a slow
query, a server restarting)."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")


class FarmThread:
    """Runs use cases one at a time on a thread of their own."""

    def __init__(self) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="thresher-farm")

    async def run(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """`fn(*args, **kwargs)` on the farm thread; its result or its exception."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(fn, *args, **kwargs))

    def close(self) -> None:
        """Finish what was handed over, then stop the thread."""
        self._executor.shutdown(wait=True)
