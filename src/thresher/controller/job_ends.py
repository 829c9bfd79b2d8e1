"""A job's end pushed to whoever waits for it: `GET /api/v1/jobs/{job_id}/wait`.

A request waiting for a job's end registers here, then reads the job (no transaction is held
while it waits). The use case that makes a job final (`Jobs._stamp_if_final`) names it to the
unit of work, which tells `JobEnds.ended` once its transaction has committed; the waiters of
that job, and only they, are woken on the loop and read the job again. Other controllers on
one PostgreSQL hear of the end in their peers' NOTIFY (`controller/peers.py`), which carries
the ids of the jobs that ended. Registering before the read means no end is missed: an end
committed before the registration is in what the read sees, one after it wakes the waiter.

The end of a job is told on the farm thread right after the commit that ended it, with the job's
record as that commit left it (`Jobs._stamp_if_final` read it in the transaction and stamped its
finish time: nothing else of it changes there), else the job is read there once; either way it is
handed to all its waiters with the wake-up, so a waiter answers without a trip of its own to the
farm thread (which by then is often busy with the worker's next poll). Each waiter's own first read
checked that its caller may see the job. An end heard from a peer (on the listening thread) only
wakes the waiters, which read the job themselves."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING

from thresher.controller.jobs import FINAL_JOB
from thresher.controller.notifier import resolve, resolved_within
from thresher.controller.visibility import check_visible
from thresher.core.model import JobRecord

if TYPE_CHECKING:  # farm.py builds a JobEnds: only the type is named here
    from thresher.controller.auth import Caller
    from thresher.controller.farm import Farm

#: The longest one wait may be held, seconds (a 422 naming `timeout_s` beyond).
MAX_WAIT_S = 60.0


class Waiter:
    """One request waiting for a job's end (on the loop): `woken` once it may have ended;
    `job` is the job as read right after the commit that ended it, when that was read for it.
    A wake-up resolves the future the request awaits, so it runs in the loop's next turn (not
    through `asyncio.wait_for` on an event, three turns later)."""

    __slots__ = ("_future", "job", "woken")

    def __init__(self) -> None:
        self.woken = False
        self.job: JobRecord | None = None
        self._future: asyncio.Future[None] | None = None

    def wake(self) -> None:
        self.woken = True
        if self._future is not None:
            resolve(self._future, None)

    async def wait(self, timeout_s: float) -> None:
        """Until woken (since `woken` was last cleared) or `timeout_s` has passed."""
        if self.woken:
            return
        self._future = future = asyncio.get_running_loop().create_future()
        try:
            await resolved_within(future, timeout_s, None)
        finally:
            self._future = None


class JobEnds:
    """The requests waiting for jobs to end, by job id (they live on the event loop)."""

    def __init__(self) -> None:
        self._waiters: dict[int, set[Waiter]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self.closing = False
        #: Told of the jobs that ended here, to tell the other controllers (set by `Peers`).
        self.announce: Callable[[list[int]], None] | None = None
        #: Reads a job on the farm thread (its ident in `_read_thread`): learnt from the first
        #: read of a wait (see `wait_for_end`), so `ended` on that thread can hand the job over.
        self._read: Callable[[int], JobRecord] | None = None
        self._read_thread: int | None = None

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop, self._loop_thread = loop, threading.get_ident()

    def watch(self, job_id: int) -> Waiter:
        """On the loop: a waiter woken when job `job_id` may have ended."""
        if self._loop is None:
            self.bind(asyncio.get_running_loop())
        waiter = Waiter()
        self._waiters.setdefault(job_id, set()).add(waiter)
        return waiter

    def unwatch(self, job_id: int, waiter: Waiter) -> None:
        waiters = self._waiters.get(job_id)
        if waiters is not None:
            waiters.discard(waiter)
            if not waiters:
                del self._waiters[job_id]

    def reads_with(self, read: Callable[[int], JobRecord]) -> None:
        """On the farm thread: `read(job_id)` reads a job there (after a commit)."""
        self._read, self._read_thread = read, threading.get_ident()

    def ended(
        self,
        job_ids: Iterable[int] | None,
        records: Mapping[int, JobRecord] | None = None,
        *,
        announce: bool = True,
    ) -> None:
        """Jobs ended (committed): wake their waiters. Any thread. `None`: any job may have
        ended (a peer's list too long to send, notifications missed): every waiter reads again.
        On the farm thread, each waited-for job is handed to its waiters: its record as the
        commit left it, from `records` (the use case that ended it had it), else read here
        once."""
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
            self._wake(ids, {})
        else:
            loop.call_soon_threadsafe(self._wake, ids, self._read_ended(ids, records or {}))

    def _read_ended(
        self, ids: list[int] | None, records: Mapping[int, JobRecord]
    ) -> dict[int, JobRecord]:
        """On the farm thread, right after the commit: the waited-for jobs among `ids`."""
        read = self._read
        if ids is None or read is None or threading.get_ident() != self._read_thread:
            return {}
        found: dict[int, JobRecord] = {}
        for job_id in ids:
            if job_id in records:
                found[job_id] = records[job_id]
            elif job_id in self._waiters:  # a waiter leaving meanwhile costs one read at most
                with contextlib.suppress(Exception):  # gone, or the store away: it reads itself
                    found[job_id] = read(job_id)
        return found

    def _wake(self, ids: list[int] | None, jobs: dict[int, JobRecord]) -> None:
        keys = list(self._waiters) if ids is None else ids
        for job_id in keys:
            job = jobs.get(job_id)
            for waiter in self._waiters.get(job_id, ()):
                if job is not None:
                    waiter.job = job
                waiter.wake()

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
    waiter = ends.watch(job_id)  # before the read: see the module's docstring
    farm.metrics.job_waits.inc()
    read = farm.call(_first_read, farm, caller, job_id)
    try:
        while True:
            waiter.woken = False
            job = await read
            remaining = deadline - loop.time()
            if job is None:  # certainly not final (the first read), and the caller may see it
                if remaining <= 0 or ends.closing:
                    return await farm.call(farm.jobs.get, caller, job_id)
            elif job.status in FINAL_JOB or remaining <= 0 or ends.closing:
                return job
            await waiter.wait(remaining)
            handed, waiter.job = waiter.job, None
            if handed is not None and handed.status in FINAL_JOB:
                return handed  # read on the farm thread after the commit that ended it
            read = farm.call(farm.jobs.get, caller, job_id)
    finally:
        ends.unwatch(job_id, waiter)
        farm.metrics.job_waits.dec()


def _first_read(farm: Farm, caller: Caller, job_id: int) -> JobRecord | None:
    """On the farm thread: the job, if the caller may see it, or None when it certainly is
    not final (its tasks run or wait: its record is not read); JobEnds learns to read
    there."""
    farm.job_ends.reads_with(farm.store.jobs.get)
    owner, unsettled = farm.store.snapshot.job_standing(job_id)
    check_visible(farm.store, caller, job_id, owner)
    return None if unsettled else farm.store.jobs.get(job_id)
