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
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from thresher.client import AgentClient, APIError, ThresherError, TransportError
from thresher.schemas import api
from thresher.worker.engines import EngineRun, EngineTaskError, WorkerEngines
from thresher.worker.lanes import Done, LaneThreads
from thresher.worker.nimby import State as NimbyState
from thresher.worker.nimby import nimby_path, read_nimby
from thresher.worker.openjd_lane import OpenJDLanes, OpenJDResult
from thresher.worker.outbox import Outbox
from thresher.worker.process import ProcessResult, ProcessRunner
from thresher.worker.tasks import Command, CommandBuilder, finish_status

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
    # Finishes wait for the answer to a poll younger than this rather than go in a report, while
    # polls come back with work.
    report_after_s: float = 0.05
    # OpenJD jobs (issue 5): the worker's path mapping rules (pathmapping-1.0 rules), and how
    # long a lane keeps an idle job's session open for that job's next task.
    path_mapping_rules: tuple[dict[str, str], ...] = ()
    openjd_idle_s: float = 5.0


@dataclass
class _Held:
    assignment: api.AssignmentOut
    runner: ProcessRunner | None = None  # set in the lane's thread
    stop: threading.Event = field(
        default_factory=threading.Event
    )  # set from the loop, read in lanes
    stale: bool = False
    engine_run: EngineRun | None = None  # engine jobs: reads the output, decides the outcome
    lane: int | None = None  # the lane it was given to (it counts in that lane's load)
    cancel: Callable[[], None] | None = None  # OpenJD tasks: the session's own cancel


@dataclass
class _State:
    held: dict[int, _Held] = field(default_factory=dict)
    pending: list[int] = field(default_factory=list)  # claimed for no lane, waiting for one


@dataclass(frozen=True)
class _Failed:
    """A task that failed before its process ran; ``details`` go to its log first."""

    message: str
    details: tuple[str, ...] = ()


_CLOSE = "close"  # the key of a lane's piece of work that closes its idle OpenJD session


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
        # A lane is free when nothing was given to it; its load counts the attempts given to
        # it (running, and held ahead in its thread's queue) that have not ended.
        self._free_lanes: list[int] = list(range(self.lanes))
        self._load = [0] * self.lanes
        # A lane's load right after the last poll handed it tasks: a lane handed more short
        # tasks than it asked for (the controller sizes them by their run time) polls again
        # when it has used half of them, asking to be topped up.
        self._topped = [0] * self.lanes
        self._lane_threads = LaneThreads(self.lanes, on_done=self._on_lane_done)
        self._commands = CommandBuilder(work_dir=config.work_dir, base_env=os.environ)
        self._idle = asyncio.Event()  # set while no lane has an attempt
        self._idle.set()
        self._flush_timer: asyncio.TimerHandle | None = None
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
        self._poll_sent_at = 0.0
        self._work_came = False  # the last poll's answer had work in it
        self._loop: asyncio.AbstractEventLoop | None = None
        # Requests sent and finishes they carried, logged at the end (requests per task are
        # what short tasks cost the controller and this worker most).
        self.sent: Counter[str] = Counter()
        self._tasks: set[asyncio.Task[None]] = set()
        self.on_event: Callable[[str, int], None] | None = None  # for tests: ("started", id)

    # -- lifecycle ------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        self._loop = asyncio.get_running_loop()
        self._lane_threads.start(self._loop)
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
        for attempt_id, held in list(self.state.held.items()):
            held.stop.set()
            if held.lane is not None and self._lane_threads.withdraw(held.lane, attempt_id):
                self._load_down(held.lane)  # not started: left unreported, as a pending one
                held.lane = None
            elif held.runner is not None:
                held.runner.cancel()
            elif held.cancel is not None:
                held.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self._idle.wait()  # what ran has ended and its finish is in the outbox
        for timer in self._idle_timers.values():
            timer.cancel()
        if self._flush_timer is not None:
            self._flush_timer.cancel()
        await asyncio.to_thread(self._lane_threads.close)
        await asyncio.to_thread(self.openjd.close_all)
        with contextlib.suppress(ThresherError):
            await self._send_report()
        await self.client.aclose()
        log.info("sent %s", ", ".join(f"{n} {what}" for what, n in sorted(self.sent.items())))

    # -- polling --------------------------------------------------------------------------------

    def _wants(self) -> tuple[list[int], list[int]]:
        """The lanes free for a task now, and the lanes that may hold one more short task
        ahead (a lane repeated for each); nothing while NIMBY holds this machine."""
        if self.nimby is not None:
            return [], []
        free = [n for n in range(self.lanes) if n in self._free_lanes]
        ahead: list[int] = []
        for lane in range(self.lanes):
            ahead += [lane] * self._missing(lane)
        unplaced = len(self.state.pending)
        if unplaced:  # claimed without a lane (an older controller): count them anywhere
            free = free[unplaced:]
            ahead = ahead[unplaced:]
        return free, ahead

    def _missing(self, lane: int) -> int:
        """How many more short tasks the lane may hold ahead of the one it runs: up to
        `ahead_per_lane`, and one more ask once it has used half of a larger batch (the
        controller then tops it up to what covers a fraction of a second)."""
        missing = max(0, self.config.ahead_per_lane - max(0, self._load[lane] - 1))
        if not missing and self._batched(lane) and self._load[lane] < self._topped[lane]:
            return 1  # a poll goes anyway: top up every lane that used some of its batch
        return missing

    def _batched(self, lane: int) -> bool:
        """The lane was handed more short tasks than it asked for (sized by their run time)."""
        return (
            self.config.ahead_per_lane > 0 and self._topped[lane] > self.config.ahead_per_lane + 1
        )

    def _half_used(self, lane: int) -> bool:
        """The lane was handed a batch of short tasks and has used half of it."""
        return self._batched(lane) and self._load[lane] * 2 <= self._topped[lane]

    def _refill_due(self) -> bool:
        """Worth a poll now: a lane is free, or one has used up half the tasks it holds ahead
        (so one poll carries many finishes and claims, yet the lanes never run dry)."""
        if self.nimby is not None:
            return False
        if self._free_lanes:
            return True
        low = max(1, (self.config.ahead_per_lane + 1) // 2)
        ahead = self.config.ahead_per_lane
        return any(
            self._half_used(lane) or ahead - max(0, self._load[lane] - 1) >= low
            for lane in range(self.lanes)
        )

    def _lane_of(self, held: _Held) -> int | None:
        lane = held.assignment.lane
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
                self._poll_sent_at = time.monotonic()
                self._poll_held.set()
            try:
                self.sent["polls"] += 1
                self.sent["finishes"] += len(finished)
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
            self._answered(answer)
            if answer.assignments and self._refill_due():
                continue  # there may be more work: ask again at once
            want, _ = self._wants()
            if not want:
                # Busy: the next poll goes when a lane runs low, when finishes have waited
                # flush_every_s, or at the heartbeat.
                self._rearm()
                await _wait_any(stop, self._wake, self.heartbeat_s)

    def _rearm(self) -> None:
        """After an answer: a wake-up set while the poll was out (a lane ran low) is dropped
        unless a poll is still due, as the answer may have topped the lanes up; finishes that
        came meanwhile go within `flush_every_s`."""
        if not self._wake.is_set() or self._refill_due():
            return
        self._wake.clear()
        if self._flush_timer is None and self._loop is not None and not self.outbox.empty():
            self._flush_timer = self._loop.call_later(self.config.flush_every_s, self._flush_due)

    def _settle(self, finished: list[api.FinishIn]) -> None:
        """Reported finishes are acknowledged: forget those attempts."""
        for fin in finished:
            self.state.held.pop(fin.attempt_id, None)

    def _answered(self, answer: api.PollOut) -> None:
        """A poll's answer: apply it, and remember whether work came (see `_report_after`)."""
        self._work_came = bool(answer.assignments)
        self._apply(answer)

    def _apply(self, answer: api.PollOut) -> None:
        self.sent["assignments"] += len(answer.assignments)
        self.heartbeat_s = answer.heartbeat_s
        for attempt_id in answer.stale:
            self._kill(attempt_id, stale=True)
        for attempt_id in answer.stop:
            self._kill(attempt_id, stale=False)
        topped: set[int] = set()
        for assignment in answer.assignments:
            held = _Held(assignment)
            self.state.held[assignment.attempt_id] = held
            lane = self._lane_of(held)
            if lane is None:
                self.state.pending.append(assignment.attempt_id)
            else:  # its lane runs it next, also while it runs another one now
                self._give(held, lane)
                topped.add(lane)
        for lane in topped:
            self._topped[lane] = self._load[lane]
        self._start_pending()

    def _kill(self, attempt_id: int, *, stale: bool) -> None:
        held = self.state.held.get(attempt_id)
        if held is None:
            return
        held.stop.set()
        held.stale = held.stale or stale
        if stale:
            self.outbox.forget(attempt_id)
        if held.lane is not None and self._lane_threads.withdraw(held.lane, attempt_id):
            self._finished(attempt_id, None)  # given to its lane, not started there
            self._after_finish()
        elif held.runner is not None:
            held.runner.cancel()
        elif held.cancel is not None:
            held.cancel()
        elif attempt_id in self.state.pending:
            self.state.pending.remove(attempt_id)
            self._finished(attempt_id, None)
            self._after_finish()
        # Otherwise its lane is about to start it, and sees the stop before it does.

    # -- reporting while a poll is held ---------------------------------------------------------

    async def _flush_forever(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            # Between polls the next poll carries the reports: wait for one to be held first,
            # so a queued finish does not spin this loop.
            if not self._poll_held.is_set():
                await _wait_any(stop, self._poll_held, self.heartbeat_s)
                continue
            await _wait_any(stop, self.outbox.has_finishes, self.config.flush_every_s)
            # A poll sent a moment ago mostly comes back at once, with work; the next poll then
            # carries these reports: one request instead of two.
            young = self._poll_sent_at + self._report_after() - time.monotonic()
            if young > 0:
                await _wait(stop, young)
            if self._poll_held.is_set() and not self.outbox.empty():
                with contextlib.suppress(TransportError):
                    await self._send_report()

    def _report_after(self) -> float:
        """How long a poll may have been out and still be expected back with work at once (the
        finishes then ride on the next poll): `report_after_s` while polls come back with work,
        else none (the poll is held for want of work: report now)."""
        return self.config.report_after_s if self._work_came else 0.0

    async def _send_report(self) -> None:
        async with self._send_lock:
            output, finished = self.outbox.drain()
            if not output and not finished:
                return
            self.sent["reports"] += 1
            self.sent["finishes"] += len(finished)
            try:
                answer = await self.client.report(api.ReportIn(output=output, finished=finished))
            except ThresherError:
                self.outbox.put_back(output, finished)
                raise
        self._settle(finished)
        self._apply(answer)

    async def _send_lines(self, output: list[api.OutputBatch]) -> list[api.OutputBatch]:
        """Report output lines now; what could not be sent is returned (to go with the poll)."""
        self.sent["reports"] += 1
        try:
            answer = await self.client.report(api.ReportIn(output=output))
        except ThresherError:
            return output
        self._apply(answer)
        return []

    # -- lanes ----------------------------------------------------------------------------------

    def _start_pending(self) -> None:
        """Give the attempts claimed for no lane to free lanes."""
        for attempt_id in list(self.state.pending):
            if not self._free_lanes:
                break
            self.state.pending.remove(attempt_id)
            held = self.state.held[attempt_id]
            self._give(held, self._pick_lane(held))

    def _pick_lane(self, held: _Held) -> int:
        """A free lane: for an OpenJD task one holding its job's session if there is one, else
        preferably one holding no session (so no other job's session is closed)."""
        a = held.assignment
        free = self._free_lanes
        same = [n for n in free if a.kind == "openjd" and self.openjd.job_on(n) == a.job_id]
        empty = [n for n in free if self.openjd.job_on(n) is None]
        return (same or empty or free)[0]

    def _give(self, held: _Held, lane: int) -> None:
        """The lane runs the attempt after what it was given before (a short task held ahead
        waits in the lane's thread, which starts it the moment the last one ends)."""
        if lane in self._free_lanes:
            self._free_lanes.remove(lane)
            timer = self._idle_timers.pop(lane, None)
            if timer is not None:
                timer.cancel()
        held.lane = lane
        self._load[lane] += 1
        self._idle.clear()
        a = held.assignment
        if a.kind == "openjd":
            held.cancel = lambda: self.openjd.cancel(lane)
            self._lane_threads.hand(lane, a.attempt_id, lambda: self._run_openjd(held, lane))
        elif a.kind == "engine":
            task = asyncio.create_task(self._prepare_engine(held, lane))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        else:
            self._lane_threads.hand(lane, a.attempt_id, lambda: self._run_command(held))

    def _load_down(self, lane: int) -> None:
        self._load[lane] -= 1
        if self._load[lane] == 0:
            self._topped[lane] = 0
            self._release_lane(lane)
        if not any(self._load):
            self._idle.set()

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
        self._lane_threads.hand(lane, _CLOSE, lambda: self.openjd.close(lane))

    # -- in a lane's thread ---------------------------------------------------------------------

    def _run_openjd(self, held: _Held, lane: int) -> OpenJDResult:
        a = held.assignment
        self._started(a.attempt_id)
        return self.openjd.run(lane, a, held.stop)

    def _run_command(self, held: _Held) -> ProcessResult | _Failed | None:
        if held.stop.is_set():
            return None
        try:
            command = self._commands.build(held.assignment)
        except Exception as exc:  # a broken payload fails the task, never the worker
            return _Failed(f"cannot build the command: {exc}")
        result = self._run_process(held, command)
        if result is not None and result.error is not None:
            self._commands.forget(held.assignment.job_id)  # made again for the next task
        return result

    def _run_process(self, held: _Held, command: Command) -> ProcessResult | None:
        a = held.assignment
        attempt_id, token, add_line = a.attempt_id, a.token, self.outbox.add_line
        engine_run = held.engine_run
        if engine_run is None:

            def on_line(stream: str, text: str) -> None:
                add_line(attempt_id, token, stream, text)

        else:
            parse = engine_run.on_line

            def on_line(stream: str, text: str) -> None:
                add_line(attempt_id, token, stream, text)
                parse(stream, text)

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
        if held.stop.is_set():
            return None
        self._started(attempt_id)

        def spawned() -> None:
            if held.stop.is_set():  # a cancel that came before the spawn was a no-op: repeat it
                runner.cancel()

        return runner.run(on_spawn=spawned)

    def _started(self, attempt_id: int) -> None:
        if self.on_event is not None and self._loop is not None:
            self._loop.call_soon_threadsafe(self.on_event, "started", attempt_id)

    # -- back on the event loop -----------------------------------------------------------------

    async def _prepare_engine(self, held: _Held, lane: int) -> None:
        a = held.assignment
        try:
            held.engine_run = await self.engines.start(
                a, self.outbox, work_dir=self.config.work_dir
            )
        except EngineTaskError as exc:  # engine code failed: that task fails, with its traceback
            failed = _Failed(exc.message, tuple(exc.details.rstrip().splitlines()))
            self._on_lane_done([Done(lane, a.attempt_id, value=failed)])
            return
        except Exception as exc:  # a broken payload fails the task, never the worker
            failed = _Failed(f"cannot build the command: {exc}")
            self._on_lane_done([Done(lane, a.attempt_id, value=failed)])
            return
        command = held.engine_run.command
        self._lane_threads.hand(lane, a.attempt_id, lambda: self._run_process(held, command))

    def _on_lane_done(self, batch: list[Done]) -> None:
        """Lanes ended these pieces of work: queue the finish reports, poll when it is due."""
        for done in batch:
            if done.key == _CLOSE:  # an idle OpenJD session was closed: the lane may be free
                if self._load[done.lane] == 0 and done.lane not in self._free_lanes:
                    self._free_lanes.append(done.lane)
                continue
            assert isinstance(done.key, int)
            value = done.value
            if done.error is not None:
                value = _Failed(f"the worker failed to run it: {done.error}")
            if isinstance(value, OpenJDResult):
                self._finished(done.key, None, openjd=value)
            elif isinstance(value, _Failed):
                held = self.state.held.get(done.key)
                if held is not None:
                    a = held.assignment
                    for row in (*value.details, value.message):
                        self.outbox.add_line(a.attempt_id, a.token, "system", row)
                self._finished(done.key, None, failure=value.message)
            else:
                assert value is None or isinstance(value, ProcessResult)
                self._finished(done.key, value)
        self._after_finish()

    def _after_finish(self) -> None:
        self._start_pending()
        if self._refill_due():
            self._wake.set()
        elif self._flush_timer is None and self._loop is not None:
            self._flush_timer = self._loop.call_later(self.config.flush_every_s, self._flush_due)

    def _flush_due(self) -> None:
        """Finishes have waited long enough for the lanes to run low: poll now."""
        self._flush_timer = None
        if not self.outbox.empty():
            self._wake.set()

    def _finished(
        self,
        attempt_id: int,
        result: ProcessResult | None,
        *,
        failure: str | None = None,
        openjd: OpenJDResult | None = None,
    ) -> None:
        """An attempt ended (or was dropped before it started): queue its finish report."""
        held = self.state.held.get(attempt_id)
        if held is not None and held.lane is not None:
            self._load_down(held.lane)
            held.lane = None
        if held is None or held.stale:
            self.state.held.pop(attempt_id, None)
            return
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
                message=text,
            )
        )


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


async def _wait_any(stop: asyncio.Event, other: asyncio.Event, seconds: float) -> None:
    waiters = {asyncio.create_task(stop.wait()), asyncio.create_task(other.wait())}
    _, pending = await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
