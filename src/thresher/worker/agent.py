"""The worker agent: polls the controller, runs leased attempts on its lanes, reports back.

One poll at a time is the worker's heartbeat and claim. While a poll is held open waiting for
work, finishes and output go out through `report`, so nothing waits for the hold to end. When the
controller cannot be reached, running tasks go on and their output and finishes are kept in the
outbox until it answers again; each finish is then reported once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from thresher.client import AgentClient, APIError, ThresherError, TransportError
from thresher.schemas import api
from thresher.worker.outbox import Outbox
from thresher.worker.process import ProcessResult, ProcessRunner
from thresher.worker.tasks import build_command, finish_status

log = logging.getLogger("thresher.worker")


@dataclass(frozen=True)
class AgentConfig:
    controller_url: str
    token: str
    facts: api.RegisterIn
    work_dir: Path
    ahead_per_lane: int = 1
    grace_s: float = 10.0
    hold_s: float = 20.0
    flush_every_s: float = 0.25


@dataclass
class _Held:
    assignment: api.AssignmentOut
    runner: ProcessRunner | None = None
    stop: threading.Event = field(
        default_factory=threading.Event
    )  # set from the loop, read in lanes
    stale: bool = False


@dataclass
class _State:
    held: dict[int, _Held] = field(default_factory=dict)
    pending: list[int] = field(default_factory=list)  # claimed ahead, not started yet
    running: int = 0


class Agent:
    """Runs until `stop` is set; then cancels what runs, reports it, and returns."""

    def __init__(self, config: AgentConfig, *, client: AgentClient | None = None) -> None:
        self.config = config
        self.client = client or AgentClient(config.controller_url, config.token)
        self.lanes = config.facts.lanes
        self.state = _State()
        self.outbox = Outbox()
        self.heartbeat_s = 5.0
        self.worker_id: int | None = None
        self._wake = asyncio.Event()
        self._polling_held = False
        self._pool = ThreadPoolExecutor(max_workers=self.lanes, thread_name_prefix="lane")
        self._tasks: set[asyncio.Task[None]] = set()
        self.on_event: Callable[[str, int], None] | None = None  # for tests: ("started", id)

    # -- lifecycle ------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        await self._register(stop)
        flusher = asyncio.create_task(self._flush_forever(stop))
        try:
            await self._poll_forever(stop)
        finally:
            flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await flusher
            await self._shutdown()

    async def _register(self, stop: asyncio.Event) -> None:
        delay = 0.2
        while not stop.is_set():
            try:
                out = await self.client.register(self.config.facts)
            except TransportError as exc:
                log.warning("cannot register yet: %s", exc)
                await _wait(stop, delay)
                delay = min(delay * 2, 5.0)
                continue
            self.worker_id, self.heartbeat_s = out.worker_id, out.heartbeat_s
            log.info("registered as %s (worker %s)", self.config.facts.name, out.worker_id)
            return

    async def _shutdown(self) -> None:
        for held in self.state.held.values():
            if held.runner is not None:
                held.runner.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        with contextlib.suppress(ThresherError):
            await self._send_report()
        self._pool.shutdown(wait=False, cancel_futures=True)
        await self.client.aclose()

    # -- polling --------------------------------------------------------------------------------

    def _wants(self) -> tuple[int, int]:
        held = self.state.running + len(self.state.pending)
        want = max(0, self.lanes - held)
        capacity = self.lanes * (1 + self.config.ahead_per_lane)
        return want, max(0, capacity - held - want)

    async def _poll_forever(self, stop: asyncio.Event) -> None:
        delay = 0.2
        while not stop.is_set():
            want, ahead = self._wants()
            wait_s = self.config.hold_s if want else 0.0
            output, finished = self.outbox.drain()
            body = api.PollIn(
                want=want,
                ahead=ahead,
                wait_s=wait_s,
                running=[
                    api.RunningIn(attempt_id=a, token=h.assignment.token)
                    for a, h in self.state.held.items()
                ],
                output=output,
                finished=finished,
            )
            self._wake.clear()
            self._polling_held = wait_s > 0
            try:
                poll = asyncio.create_task(self.client.poll(body))
                done, _ = await asyncio.wait(
                    {poll, asyncio.create_task(stop.wait())}, return_when=asyncio.FIRST_COMPLETED
                )
                if poll not in done:
                    poll.cancel()
                    self.outbox.put_back(output, finished)
                    return
                answer = poll.result()
            except TransportError as exc:
                self.outbox.put_back(output, finished)
                log.warning("controller unreachable (%s); retrying in %.1fs", exc, delay)
                await _wait(stop, delay)
                delay = min(delay * 2, 5.0)
                continue
            except APIError as exc:
                self.outbox.put_back(output, finished)
                log.error("poll refused: %s", exc)
                await _wait(stop, 2.0)
                continue
            finally:
                self._polling_held = False
            delay = 0.2
            self._settle(finished)
            self._apply(answer)
            want, ahead = self._wants()
            if (want or ahead) and answer.assignments:
                continue  # there may be more work: ask again at once
            if not want:
                await _wait_any(stop, self._wake, self.heartbeat_s)

    def _settle(self, finished: list[api.FinishIn]) -> None:
        """Reported finishes are acknowledged: forget those attempts."""
        for fin in finished:
            self.state.held.pop(fin.attempt_id, None)

    def _apply(self, answer: api.PollOut) -> None:
        self.heartbeat_s = answer.heartbeat_s
        for attempt_id in answer.stale:
            self._kill(attempt_id, stale=True)
        for attempt_id in answer.stop:
            self._kill(attempt_id, stale=False)
        for assignment in answer.assignments:
            self.state.held[assignment.attempt_id] = _Held(assignment)
            self.state.pending.append(assignment.attempt_id)
        self._start_pending()

    def _kill(self, attempt_id: int, *, stale: bool) -> None:
        held = self.state.held.get(attempt_id)
        if held is None:
            return
        held.stop.set()
        held.stale = held.stale or stale
        if stale:
            self.outbox.forget(attempt_id)
        if held.runner is not None:
            held.runner.cancel()
        elif attempt_id in self.state.pending:
            self.state.pending.remove(attempt_id)
            self._finished(attempt_id, None, ran=False)

    # -- reporting while a poll is held ---------------------------------------------------------

    async def _flush_forever(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await _wait_any(stop, self.outbox.has_finishes, self.config.flush_every_s)
            if self._polling_held and not self.outbox.empty():
                with contextlib.suppress(TransportError):
                    await self._send_report()

    async def _send_report(self) -> None:
        output, finished = self.outbox.drain()
        if not output and not finished:
            return
        try:
            answer = await self.client.report(api.ReportIn(output=output, finished=finished))
        except ThresherError:
            self.outbox.put_back(output, finished)
            raise
        self._settle(finished)
        self._apply(answer)

    # -- lanes ----------------------------------------------------------------------------------

    def _start_pending(self) -> None:
        while self.state.pending and self.state.running < self.lanes:
            attempt_id = self.state.pending.pop(0)
            self.state.running += 1
            task = asyncio.create_task(self._run_attempt(self.state.held[attempt_id]))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _run_attempt(self, held: _Held) -> None:
        a = held.assignment
        attempt_id = a.attempt_id
        try:
            command = build_command(a, work_dir=self.config.work_dir, base_env=dict(os.environ))
        except Exception as exc:  # a broken payload fails the task, never the worker
            self.outbox.add_line(attempt_id, a.token, "system", f"cannot build the command: {exc}")
            self._finished(attempt_id, None, ran=True, message=f"cannot build the command: {exc}")
            return
        lock = threading.Lock()

        def on_line(stream: str, text: str) -> None:
            with lock:
                self.outbox.add_line(attempt_id, a.token, stream, text)

        runner = ProcessRunner(
            command.argv,
            env=command.env,
            cwd=command.cwd,
            on_line=on_line,
            max_runtime_s=a.max_runtime_s,
            grace_s=self.config.grace_s,
        )
        held.runner = runner
        if self.on_event:
            self.on_event("started", attempt_id)

        def run() -> ProcessResult | None:
            if held.stop.is_set():
                return None
            runner.start()
            if held.stop.is_set():  # a cancel that came before start() was a no-op: repeat it
                runner.cancel()
            return runner.wait()

        result = await asyncio.get_running_loop().run_in_executor(self._pool, run)
        self._finished(attempt_id, result, ran=True)

    def _finished(
        self,
        attempt_id: int,
        result: ProcessResult | None,
        *,
        ran: bool,
        message: str | None = None,
    ) -> None:
        """An attempt ended (or was dropped before it started): queue its finish report."""
        if ran:
            self.state.running -= 1
        held = self.state.held.get(attempt_id)
        if held is None or held.stale:
            self.state.held.pop(attempt_id, None)
        else:
            status, text = finish_status(result, stop_requested=held.stop.is_set())
            a = held.assignment
            self.outbox.add_finish(
                api.FinishIn(
                    attempt_id=attempt_id,
                    token=a.token,
                    status=status,
                    exit_code=result.exit_code if result else None,
                    peak_rss_bytes=result.peak_rss_bytes if result else None,
                    duration_s=result.duration_s if result else None,
                    message=message or text,
                )
            )
        self._start_pending()
        self._wake.set()


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


async def _wait_any(stop: asyncio.Event, other: asyncio.Event, seconds: float) -> None:
    waiters = {asyncio.create_task(stop.wait()), asyncio.create_task(other.wait())}
    _, pending = await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
