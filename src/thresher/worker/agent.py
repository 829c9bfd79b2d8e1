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
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from thresher.client import AgentClient, APIError, ThresherError, TransportError
from thresher.schemas import api
from thresher.worker.engines import EngineRun, EngineTaskError, WorkerEngines
from thresher.worker.nimby import State as NimbyState
from thresher.worker.nimby import nimby_path, read_nimby
from thresher.worker.openjd_lane import OpenJDLanes, OpenJDResult
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
    # OpenJD jobs (issue 5): the worker's path mapping rules (pathmapping-1.0 rules), and how
    # long a lane keeps an idle job's session open for that job's next task.
    path_mapping_rules: tuple[dict[str, str], ...] = ()
    openjd_idle_s: float = 5.0


@dataclass
class _Held:
    assignment: api.AssignmentOut
    runner: ProcessRunner | None = None
    stop: threading.Event = field(
        default_factory=threading.Event
    )  # set from the loop, read in lanes
    stale: bool = False
    engine_run: EngineRun | None = None  # engine jobs: reads the output, decides the outcome
    lane: int | None = None  # the lane it runs on, once started
    cancel: Callable[[], None] | None = None  # OpenJD tasks: the session's own cancel


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
        self.engines = WorkerEngines(self.client, config.work_dir / "engines")
        self.openjd = OpenJDLanes(
            config.work_dir, self.outbox, path_mapping_rules=config.path_mapping_rules
        )
        self._free_lanes: list[int] = list(range(self.lanes))
        # Output reaches the controller in the order it was written: a report and a poll that
        # carry lines are never in flight at once (see _poll_forever).
        self._send_lock = asyncio.Lock()
        # NIMBY set on this machine (see worker/nimby.py), checked every `nimby_check_s`.
        self.nimby: NimbyState | None = read_nimby(nimby_path(config.work_dir))
        self._nimby_changed = asyncio.Event()
        self._idle_timers: dict[int, asyncio.TimerHandle] = {}
        self.heartbeat_s = 5.0
        self.worker_id: int | None = None
        self._wake = asyncio.Event()
        self._poll_held = asyncio.Event()  # set while a poll is held open at the controller
        self._pool = ThreadPoolExecutor(max_workers=self.lanes, thread_name_prefix="lane")
        self._tasks: set[asyncio.Task[None]] = set()
        self.on_event: Callable[[str, int], None] | None = None  # for tests: ("started", id)

    # -- lifecycle ------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        await self._register(stop)
        flusher = asyncio.create_task(self._flush_forever(stop))
        watcher = asyncio.create_task(self._watch_nimby(stop))
        try:
            await self._poll_forever(stop)
        finally:
            for task in (flusher, watcher):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await self._shutdown()

    # -- NIMBY from this machine ----------------------------------------------------------------

    def check_nimby(self) -> None:
        """Take in the NIMBY file: a stop kills what runs here (its tasks are requeued)."""
        state = read_nimby(nimby_path(self.config.work_dir))
        if state == self.nimby:
            return
        log.warning("NIMBY on this machine: %s", state or "resumed")
        self.nimby = state
        if state == "stopped":
            for attempt_id in list(self.state.held):
                self._kill(attempt_id, stale=False)
        self._nimby_changed.set()

    async def _watch_nimby(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await _wait(stop, 0.5)
            self.check_nimby()

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
            elif held.cancel is not None:
                held.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for timer in self._idle_timers.values():
            timer.cancel()
        await asyncio.get_running_loop().run_in_executor(self._pool, self.openjd.close_all)
        with contextlib.suppress(ThresherError):
            await self._send_report()
        self._pool.shutdown(wait=False, cancel_futures=True)
        await self.client.aclose()

    # -- polling --------------------------------------------------------------------------------

    def _wants(self) -> tuple[list[int], list[int]]:
        """The lanes free for a task now, and the lanes that may hold one more short task
        ahead (a lane repeated for each); nothing while NIMBY holds this machine."""
        if self.nimby is not None:
            return [], []
        queued = Counter(self._lane_of(a) for a in self.state.pending)
        free = [n for n in range(self.lanes) if n in self._free_lanes and not queued[n]]
        ahead: list[int] = []
        for lane in range(self.lanes):
            ahead += [lane] * max(0, self.config.ahead_per_lane - queued[lane])
        if queued[None]:  # claimed without a lane (an older controller): count them anywhere
            free = free[queued[None] :]
            ahead = ahead[queued[None] :]
        return free, ahead

    def _lane_of(self, attempt_id: int) -> int | None:
        lane = self.state.held[attempt_id].assignment.lane
        return lane if lane is not None and 0 <= lane < self.lanes else None

    async def _poll_forever(self, stop: asyncio.Event) -> None:
        delay = 0.2
        while not stop.is_set():
            want, ahead = self._wants()
            wait_s = self.config.hold_s if want else 0.0
            async with self._send_lock:  # a report sent during the last hold lands first
                output, finished = self.outbox.drain()
                if wait_s and output:
                    # Lines go ahead of a held poll, so the reports sent during the hold (later
                    # lines) cannot overtake them.
                    output = await self._send_lines(output)
            body = api.PollIn(
                want=len(want),
                ahead=len(ahead),
                lanes=want,
                ahead_lanes=ahead,
                nimby=self.nimby,
                wait_s=wait_s,
                running=[
                    api.RunningIn(attempt_id=a, token=h.assignment.token)
                    for a, h in self.state.held.items()
                ],
                output=output,
                finished=finished,
            )
            self._wake.clear()
            self._nimby_changed.clear()
            if wait_s > 0:
                self._poll_held.set()
            try:
                poll = asyncio.create_task(self.client.poll(body))
                stopping = asyncio.create_task(stop.wait())
                nimby = asyncio.create_task(self._nimby_changed.wait())
                done, _ = await asyncio.wait(
                    {poll, stopping, nimby}, return_when=asyncio.FIRST_COMPLETED
                )
                for waiter in (stopping, nimby):
                    waiter.cancel()
                if poll not in done:
                    poll.cancel()
                    self.outbox.put_back(output, finished)
                    if stop.is_set():
                        return
                    continue  # NIMBY changed here: tell the controller at once
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
                self._poll_held.clear()
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
        elif held.cancel is not None:
            held.cancel()
        elif attempt_id in self.state.pending:
            self.state.pending.remove(attempt_id)
            self._finished(attempt_id, None, ran=False)

    # -- reporting while a poll is held ---------------------------------------------------------

    async def _flush_forever(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            # Between polls the next poll carries the reports: wait for one to be held first,
            # so a queued finish does not spin this loop.
            if not self._poll_held.is_set():
                await _wait_any(stop, self._poll_held, self.heartbeat_s)
                continue
            await _wait_any(stop, self.outbox.has_finishes, self.config.flush_every_s)
            if self._poll_held.is_set() and not self.outbox.empty():
                with contextlib.suppress(TransportError):
                    await self._send_report()

    async def _send_report(self) -> None:
        async with self._send_lock:
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

    async def _send_lines(self, output: list[api.OutputBatch]) -> list[api.OutputBatch]:
        """Report output lines now; what could not be sent is returned (to go with the poll)."""
        try:
            answer = await self.client.report(api.ReportIn(output=output))
        except ThresherError:
            return output
        self._apply(answer)
        return []

    # -- lanes ----------------------------------------------------------------------------------

    def _start_pending(self) -> None:
        for attempt_id in list(self.state.pending):
            if self.state.running >= self.lanes or not self._free_lanes:
                break
            lane = self._lane_of(attempt_id)
            if lane is not None and lane not in self._free_lanes:
                continue  # claimed ahead for a lane still busy: it waits for that lane
            self.state.pending.remove(attempt_id)
            self.state.running += 1
            self.state.held[attempt_id].lane = self._take_lane(self.state.held[attempt_id])
            task = asyncio.create_task(self._run_attempt(self.state.held[attempt_id]))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _take_lane(self, held: _Held) -> int:
        """A free lane: for an OpenJD task one holding its job's session if there is one, else
        preferably one holding no session (so no other job's session is closed)."""
        a = held.assignment
        free = self._free_lanes
        if a.lane is not None and a.lane in free:  # the lane the controller chose it for
            free.remove(a.lane)
            timer = self._idle_timers.pop(a.lane, None)
            if timer is not None:
                timer.cancel()
            return a.lane
        same = [n for n in free if a.kind == "openjd" and self.openjd.job_on(n) == a.job_id]
        empty = [n for n in free if self.openjd.job_on(n) is None]
        lane = (same or empty or free)[0]
        free.remove(lane)
        timer = self._idle_timers.pop(lane, None)
        if timer is not None:
            timer.cancel()
        return lane

    def _release_lane(self, lane: int) -> None:
        self._free_lanes.append(lane)
        if self.openjd.job_on(lane) is not None:
            loop = asyncio.get_running_loop()
            self._idle_timers[lane] = loop.call_later(
                self.config.openjd_idle_s, self._close_idle, lane
            )

    def _close_idle(self, lane: int) -> None:
        """The lane kept its job's session idle long enough: exit it (the lane waits)."""
        self._idle_timers.pop(lane, None)
        if lane not in self._free_lanes or self.openjd.job_on(lane) is None:
            return
        self._free_lanes.remove(lane)

        async def close() -> None:
            try:
                await asyncio.get_running_loop().run_in_executor(
                    self._pool, self.openjd.close, lane
                )
            finally:
                self._free_lanes.append(lane)
                self._start_pending()
                self._wake.set()

        task = asyncio.create_task(close())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run_openjd(self, held: _Held) -> None:
        a, lane = held.assignment, held.lane
        assert lane is not None
        held.cancel = lambda: self.openjd.cancel(lane)
        if self.on_event:
            self.on_event("started", a.attempt_id)
        result = await asyncio.get_running_loop().run_in_executor(
            self._pool, self.openjd.run, lane, a, held.stop
        )
        self._finished(a.attempt_id, None, ran=True, openjd=result)

    async def _run_attempt(self, held: _Held) -> None:
        a = held.assignment
        attempt_id = a.attempt_id
        if a.kind == "openjd":
            await self._run_openjd(held)
            return
        try:
            if a.kind == "engine":
                held.engine_run = await self.engines.start(
                    a, self.outbox, work_dir=self.config.work_dir
                )
                command = held.engine_run.command
            else:
                command = build_command(a, work_dir=self.config.work_dir, base_env=dict(os.environ))
        except EngineTaskError as exc:  # engine code failed: that task fails, with its traceback
            for row in [*exc.details.rstrip().splitlines(), exc.message]:
                self.outbox.add_line(attempt_id, a.token, "system", row)
            self._finished(attempt_id, None, ran=True, failure=exc.message)
            return
        except Exception as exc:  # a broken payload fails the task, never the worker
            self.outbox.add_line(attempt_id, a.token, "system", f"cannot build the command: {exc}")
            self._finished(attempt_id, None, ran=True, failure=f"cannot build the command: {exc}")
            return
        lock = threading.Lock()

        engine_run = held.engine_run

        def on_line(stream: str, text: str) -> None:
            with lock:
                self.outbox.add_line(attempt_id, a.token, stream, text)
            if engine_run is not None:
                engine_run.on_line(stream, text)

        runner = ProcessRunner(
            command.argv,
            env=command.env,
            cwd=command.cwd,
            on_line=on_line,
            max_runtime_s=a.max_runtime_s,
            grace_s=self.config.grace_s,
        )
        held.runner = runner
        if engine_run is not None:
            engine_run.cancel = runner.cancel  # an engine failing while parsing stops its run
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
        failure: str | None = None,
        openjd: OpenJDResult | None = None,
    ) -> None:
        """An attempt ended (or was dropped before it started): queue its finish report."""
        if ran:
            self.state.running -= 1
        held = self.state.held.get(attempt_id)
        if ran and held is not None and held.lane is not None:
            self._release_lane(held.lane)
        if held is None or held.stale:
            self.state.held.pop(attempt_id, None)
        else:
            status, text = finish_status(result, stop_requested=held.stop.is_set())
            if held.engine_run is not None:
                status, text = held.engine_run.outcome(status, text)
            if failure is not None:
                status, text = "failed", failure
            exit_code = result.exit_code if result else None
            duration_s = result.duration_s if result else None
            if openjd is not None:  # an OpenJD task: its session said how it ended
                status, text = openjd.status, openjd.message
                exit_code, duration_s = openjd.exit_code, openjd.duration_s
            a = held.assignment
            self.outbox.add_finish(
                api.FinishIn(
                    attempt_id=attempt_id,
                    token=a.token,
                    status=status,
                    exit_code=exit_code,
                    peak_rss_bytes=result.peak_rss_bytes if result else None,
                    duration_s=duration_s,
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
