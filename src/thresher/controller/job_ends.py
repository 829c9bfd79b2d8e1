"""A job's end pushed to whoever waits for it: `GET /api/v1/jobs/{job_id}/wait`.

A request waiting for a job's end registers here, then reads the job (no transaction is held
while it waits). The use case that makes a job final (`Jobs._stamp_if_final`) names it to the
unit of work, which tells `JobEnds.ended` once its transaction has committed; the waiters of
that job, and only they, are woken on the loop and read the job again. Other controllers on
one PostgreSQL hear of the end in their peers' NOTIFY (`controller/peers.py`), which carries
the ids of the jobs that ended. Registering before the read means no end is missed: an end
committed before the registration is in what the read sees, one after it wakes the waiter."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from thresher.controller.jobs import FINAL_JOB
from thresher.core.model import JobRecord

if TYPE_CHECKING:  # farm.py builds a JobEnds: only the type is named here
    from thresher.controller.auth import Caller
    from thresher.controller.farm import Farm

#: The longest one wait may be held, seconds (a 422 naming `timeout_s` beyond).
MAX_WAIT_S = 60.0


class JobEnds:
    """The requests waiting for jobs to end, by job id (they live on the event loop)."""

    def __init__(self) -> None:
        self._waiters: dict[int, set[asyncio.Event]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self.closing = False
        #: Told of the jobs that ended here, to tell the other controllers (set by `Peers`).
        self.announce: Callable[[list[int]], None] | None = None

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop, self._loop_thread = loop, threading.get_ident()

    def watch(self, job_id: int) -> asyncio.Event:
        """On the loop: an event set when job `job_id` may have ended."""
        if self._loop is None:
            self.bind(asyncio.get_running_loop())
        event = asyncio.Event()
        self._waiters.setdefault(job_id, set()).add(event)
        return event

    def unwatch(self, job_id: int, event: asyncio.Event) -> None:
        waiters = self._waiters.get(job_id)
        if waiters is not None:
            waiters.discard(event)
            if not waiters:
                del self._waiters[job_id]

    def ended(self, job_ids: Iterable[int] | None, *, announce: bool = True) -> None:
        """Jobs ended (committed): wake their waiters. Any thread. `None`: any job may have
        ended (a peer's list too long to send, notifications missed): every waiter reads again."""
        ids = None if job_ids is None else list(job_ids)
        if announce and self.announce is not None and ids:
            self.announce(ids)
        if not self._waiters:  # nobody waits (the usual case): no wake-up of the loop
            return
        if ids is not None and not any(i in self._waiters for i in ids):
            return
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        if threading.get_ident() == self._loop_thread:
            self._wake(ids)
        else:
            loop.call_soon_threadsafe(self._wake, ids)

    def _wake(self, ids: list[int] | None) -> None:
        keys = list(self._waiters) if ids is None else ids
        for job_id in keys:
            for event in self._waiters.get(job_id, ()):
                event.set()

    def close(self) -> None:
        """The server is stopping: every wait answers now."""
        self.closing = True
        self.ended(None, announce=False)


async def wait_for_end(farm: Farm, caller: Caller, job_id: int, timeout_s: float) -> JobRecord:
    """The job once it is final, or as it is when `timeout_s` has passed (or the server
    stops); NotFound where the caller may not see it, as `GET /jobs/{id}`."""
    ends = farm.job_ends
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    event = ends.watch(job_id)  # before the read: see the module's docstring
    farm.metrics.job_waits.inc()
    try:
        while True:
            event.clear()
            job = await farm.call(farm.jobs.get, caller, job_id)
            remaining = deadline - loop.time()
            if job.status in FINAL_JOB or remaining <= 0 or ends.closing:
                return job
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), remaining)
    finally:
        ends.unwatch(job_id, event)
        farm.metrics.job_waits.dec()
