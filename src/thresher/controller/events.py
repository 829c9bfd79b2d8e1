"""Server-sent events for the web monitor: job, task, worker and log changes, pushed as they
are committed.

One look at the store per batch of changes serves every open stream: the hub hears of a
change from the notifier (after each commit that may have made work, and from the workers'
polls: output, claims, samples); it looks at once when it has not looked for `min_interval_s`,
else when that much has passed since its last look (so a busy farm costs at most a few looks a
second, and a quiet one answers at once). A look asks the store what moved since the last one
(`store.monitor.changes`), diffs the job and worker digests, computes once what the events
carry (a changed job's summary, a followed block's task runs: `event_data`), and puts each
event, encoded once, in every interested client's bounded queue. A client whose queue is full
cannot keep up: it is dropped (its page reconnects and reloads). With no client open the hub
looks at nothing."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from thresher.controller.auth import ANY_JOB, Caller
from thresher.controller.event_data import block_runs, job_summary
from thresher.controller.visibility import check_visible, may_see
from thresher.core.clock import Clock
from thresher.core.errors import NotFound
from thresher.store.monitor import Changes, Mark
from thresher.store.store import Store

log = logging.getLogger("thresher.controller.events")
Event = tuple[str, dict[str, Any]]
Run = Callable[..., Awaitable[Any]]


@dataclass(eq=False)  # one per stream, kept in a set by identity
class Client:
    """One open stream. `job`: the job whose tasks and log lines it wants (others' it skips)."""

    job: int | None
    caller: Caller | None = None  # None: sees every job (tests, the benchmark)
    queue: asyncio.Queue[bytes | None] = field(default_factory=lambda: asyncio.Queue(256))
    dropped: bool = False
    visible: set[int] = field(default_factory=set)  # jobs it may see, of those that changed

    def wants(self, kind: str, data: dict[str, Any]) -> bool:
        """Worker events go to every stream; job events to those that may see the job (its
        owner, the owner's groups, wranglers, admins); task, runs and log events to those
        following their job."""
        if kind == "worker":
            return True
        if self.sees_all or data.get("job_id") in self.visible:
            return kind == "job" or data.get("job_id") == self.job
        return False

    @property
    def sees_all(self) -> bool:
        return self.caller is None or self.caller.role in ANY_JOB


class Tickets:
    """Short-lived, one-use tickets for `EventSource` (which cannot send a header): a page
    trades its token for one, so the long-lived token never goes in a URL."""

    def __init__(self, ttl_s: float = 60.0) -> None:
        self.ttl_s = ttl_s
        self._tickets: dict[str, tuple[Caller, float]] = {}

    def issue(self, caller: Caller) -> str:
        now = time.monotonic()
        self._tickets = {t: v for t, v in self._tickets.items() if v[1] > now}
        ticket = secrets.token_urlsafe(24)
        self._tickets[ticket] = (caller, now + self.ttl_s)
        return ticket

    def redeem(self, ticket: str) -> Caller | None:
        found = self._tickets.pop(ticket, None)
        if found is None or found[1] < time.monotonic():
            return None
        return found[0]


class EventHub:
    """Fans the farm's changes out to the open streams (see the module's docstring)."""

    def __init__(
        self, store: Store, clock: Clock, run: Run, *, min_interval_s: float = 0.25
    ) -> None:
        self.store, self.clock, self.run = store, clock, run
        self.min_interval_s = min_interval_s
        self.clients: set[Client] = set()
        self.tickets = Tickets()
        self.looks = 0  # how many times the store was asked (for tests and the benchmark)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._dirty = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._mark = Mark()
        self._jobs: dict[int, tuple[Any, ...]] = {}
        self._workers: dict[int, tuple[Any, ...]] = {}
        self._sent_tasks: dict[tuple[int, int, int], str] = {}

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._task = loop.create_task(self._forever())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for client in list(self.clients):
            self._drop(client)

    def poke(self, *_: object) -> None:
        """Something changed (any thread): look soon, if anyone watches."""
        if not self.clients or self._loop is None or self._loop.is_closed():
            return
        if self._dirty.is_set():  # a look is due already (saves waking the loop again)
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop:
            self._dirty.set()
        else:
            self._loop.call_soon_threadsafe(self._dirty.set)

    async def open(self, job: int | None, caller: Caller | None = None) -> Client:
        """A new stream. The first one takes the baseline the next changes are diffed from.
        A stream that follows a job the caller may not see is refused (404)."""
        if job is not None and caller is not None:
            await self.run(self._check_visible, caller, job)
        if not self.clients:
            await self.run(self._baseline)
        client = Client(job, caller)
        if job is not None:
            client.visible.add(job)
        self.clients.add(client)
        return client

    def close(self, client: Client) -> None:
        self.clients.discard(client)

    def _drop(self, client: Client) -> None:
        """End a client's stream: what it has not read is dropped, then the end is queued."""
        client.dropped = True
        self.clients.discard(client)
        while not client.queue.empty():
            client.queue.get_nowait()
        client.queue.put_nowait(None)

    def _baseline(self) -> None:
        now = self.clock.now()
        log_id, sample_id = self.store.monitor.last_ids()
        self._mark = Mark(at=now, log_id=log_id, sample_id=sample_id)
        changes, _ = self.store.monitor.changes(self._mark, now=now)
        self._jobs, self._workers = changes.jobs, changes.workers
        self._sent_tasks.clear()

    async def _forever(self) -> None:
        last = -self.min_interval_s
        while True:
            await self._dirty.wait()
            wait = last + self.min_interval_s - time.monotonic()
            if wait > 0:  # looked a moment ago: what comes meanwhile goes in the next look
                await asyncio.sleep(wait)
            self._dirty.clear()
            last = time.monotonic()
            if not self.clients:
                continue
            try:
                events = await self.run(self._look)
            except Exception:  # the stream must outlive a failed look (database restarting)
                log.exception("looking for changes failed")
                continue
            self._fan_out(events)

    def _fan_out(self, events: list[Event]) -> None:
        encoded = [(kind, data, encode(kind, data)) for kind, data in events]  # once for all
        for client in list(self.clients):
            for kind, data, message in encoded:
                if not client.wants(kind, data):
                    continue
                try:
                    client.queue.put_nowait(message)
                except asyncio.QueueFull:
                    log.warning("an event stream could not keep up: dropped")
                    self._drop(client)
                    break

    def _look(self) -> list[Event]:
        """The events since the last look (on the farm thread)."""
        self.looks += 1
        now = self.clock.now()
        # Look a second back: a transaction that stamped a task before the last look may have
        # committed after it. What was sent already is not sent again.
        changes, mark = self.store.monitor.changes(self._mark, now=now)
        changed = [j for j, digest in changes.jobs.items() if self._jobs.get(j) != digest]
        # Task moves only of the jobs that changed and that a stream follows: a move always
        # changes its block's counters, so a job whose digest stayed has none.
        followed = {c.job for c in list(self.clients) if c.job is not None}
        moved = self.store.monitor.moved([j for j in changed if j in followed], self._mark.at)
        self._mark = Mark(at=now - 1.0, log_id=mark.log_id, sample_id=mark.sample_id)
        events = self._job_events(changed)
        events += self._runs_events(moved, truncated=len(moved) >= 1000, jobs=events)
        return events + self._diff(changes, moved)

    def _check_visible(self, caller: Caller, job_id: int) -> None:
        check_visible(self.store, caller, job_id, self.store.jobs.get(job_id).spec.owner)

    def _job_events(self, changed: list[int]) -> list[Event]:
        """A `job` event per changed job, with its summary (none when it was deleted); each
        stream learns which of them its caller may see (a deleted one: those that saw it)."""
        events: list[Event] = []
        owners: dict[int, str] = {}
        wave, seen = list(changed), set(changed)
        while wave:
            ended = []
            for job_id in wave:
                try:
                    job = self.store.jobs.get(job_id)
                except NotFound:
                    ended.append(job_id)
                    events.append(("job", {"job_id": job_id, "job": None}))
                    continue
                if job.finished_at is not None:
                    ended.append(job_id)
                owners[job_id] = job.spec.owner
                events.append(("job", {"job_id": job_id, "job": job_summary(job)}))
            # The jobs waiting on those that ended change state too (waiting -> queued, or
            # never run), though their own counters did not move: one read for the wave.
            wave = (
                [j for j in self.store.jobs.waiting_on_any(ended) if j not in seen] if ended else []
            )
            seen.update(wave)
        for client in list(self.clients):
            if client.sees_all or client.caller is None:
                continue
            for job_id, owner in owners.items():
                if may_see(self.store, client.caller, owner):
                    client.visible.add(job_id)
                else:
                    client.visible.discard(job_id)
        return events

    def _runs_events(
        self, moved: list[tuple[int, int, int, str]], *, truncated: bool, jobs: list[Event]
    ) -> list[Event]:
        """A `runs` event per block of a followed job whose tasks moved: its task grid."""
        blocks = {(job_id, block) for job_id, block, _, _ in moved}
        if truncated:  # more moved than were read: every block of those jobs
            for _, data in jobs:
                if data["job"] is not None and any(j == data["job_id"] for j, _ in blocks):
                    blocks |= {(data["job_id"], b["index"]) for b in data["job"]["blocks"]}
        return [("runs", block_runs(self.store, j, b)) for j, b in sorted(blocks)]

    def _diff(self, changes: Changes, moved: list[tuple[int, int, int, str]]) -> list[Event]:
        events: list[Event] = []
        for job_id in self._jobs.keys() - changes.jobs.keys():
            events.append(("job", {"job_id": job_id, "gone": True}))
        self._jobs = changes.jobs
        for worker_id, digest in changes.workers.items():
            sample = changes.samples.get(worker_id)
            moved_on = self._workers.get(worker_id) != digest
            if moved_on or sample is not None:
                data = {"worker_id": worker_id, "sample": sample, "state_changed": moved_on}
                events.append(("worker", data))
        self._workers = changes.workers
        if len(self._sent_tasks) > 50_000:
            self._sent_tasks.clear()
        for job_id, block, index, status in moved:
            if self._sent_tasks.get((job_id, block, index)) != status:
                self._sent_tasks[(job_id, block, index)] = status
                events.append(
                    ("task", {"job_id": job_id, "block": block, "index": index, "status": status})
                )
        for job_id, block, index, attempt, last in changes.logs:
            events.append(
                (
                    "log",
                    {
                        "job_id": job_id,
                        "block": block,
                        "index": index,
                        "attempt_id": attempt,
                        "last_line": last,
                    },
                )
            )
        return events


def encode(kind: str, data: dict[str, Any]) -> bytes:
    """One server-sent event."""
    return f"event: {kind}\ndata: {json.dumps(data)}\n\n".encode()


async def stream(
    hub: EventHub, client: Client, *, keepalive_s: float = 15.0
) -> AsyncIterator[bytes]:
    """The text/event-stream of one client, until it is dropped or goes away."""
    try:
        yield b"retry: 1000\nevent: hello\ndata: {}\n\n"
        while True:
            try:
                item = await asyncio.wait_for(client.queue.get(), keepalive_s)
            except TimeoutError:
                yield b": keepalive\n\n"  # lets proxies and the browser see the stream alive
                continue
            if item is None:
                return
            # What else is queued goes in the same write: a look that moved many tasks costs
            # one send per client, not one per event.
            chunk = [item]
            while not client.queue.empty():
                more = client.queue.get_nowait()
                if more is None:
                    yield b"".join(chunk)
                    return
                chunk.append(more)
            yield b"".join(chunk)
    finally:
        hub.close(client)
