"""The worker agent: polls the controller, runs leased attempts on its lanes, reports back.

One poll at a time is the worker's heartbeat and claim. While a poll is held open waiting for
work, finishes and output go out through `report`, so nothing waits for the hold to end. When the
controller cannot be reached, running tasks go on and their output and finishes are kept in the
outbox until it answers again; each finish is then reported once.

When to poll and what to ask for is decided in `worker.poll_policy`; this module does the I/O
around those decisions: requests, timers, and handing attempts to the lanes' threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections import Counter
from collections.abc import Awaitable, Callable
from functools import partial

from thresher.client import AgentClient, ThresherError
from thresher.core.clock import Clock, SystemClock
from thresher.schemas import api
from thresher.worker.agent_config import AgentConfig as AgentConfig
from thresher.worker.agent_config import keep_token
from thresher.worker.engines import WorkerEngines
from thresher.worker.executor import Executor
from thresher.worker.guardian import Guardian
from thresher.worker.launch import Launcher
from thresher.worker.meters import Meters
from thresher.worker.nimby import State as NimbyState
from thresher.worker.nimby import nimby_path, read_nimby
from thresher.worker.outbox import Outbox
from thresher.worker.poll_policy import Ask, retry_after
from thresher.worker.sync import SiteSync
from thresher.worker.volumes import ShareResolver

log = logging.getLogger("thresher.worker")


class Agent:
    """Runs until `stop` is set; then stops what runs, reports it, says goodbye, and returns.

    Each of its loops (polling, reporting, watching NIMBY) outlives a failed round: the failure
    is logged with the wait before the next round, which grows with failures in a row (see
    `retry_after`), and the loop goes on."""

    def __init__(
        self,
        config: AgentConfig,
        *,
        client: AgentClient | None = None,
        clock: Clock | None = None,
        jitter: Callable[[], float] | None = None,
    ) -> None:
        self.config = config
        self.policy = config.poll_policy
        self.client = client or AgentClient(
            config.controller_url,
            config.token,
            enrol_code=config.enrol_code,
            ca_file=config.ca_file,
            # enrolled by code (now or before): the token it gets next is kept for next time
            keep_token=partial(keep_token, config.token_file)
            if config.enrol_code or config.token_file.exists()
            else None,
        )
        self.clock: Clock = clock or SystemClock()
        self._jitter = jitter or random.Random().random
        self.outbox = Outbox()
        self.executor = Executor(
            config.facts.lanes,
            work_dir=config.work_dir,
            outbox=self.outbox,
            engines=WorkerEngines(self.client, config.work_dir / "engines"),
            on_finish=self._after_finish,
            grace_s=config.grace_s,
            openjd_idle_s=config.openjd_idle_s,
            path_mapping_rules=config.path_mapping_rules,
            shares=ShareResolver(self.client, site=config.facts.site, os_name=config.facts.os),
            sync=SiteSync(self.client, site=config.facts.site, os_name=config.facts.os),
            launcher=Launcher(
                lane_gpus={k: tuple(v) for k, v in config.facts.lane_gpus.items()},
                containers=config.containers,
            ),
        )
        self._flush_timer: asyncio.TimerHandle | None = None
        # Output reaches the controller in the order it was written: a report and a poll that
        # carry lines are never in flight at once (see _poll_round).
        self._send_lock = asyncio.Lock()
        # NIMBY set on this machine (see worker/nimby.py), checked every half second.
        self.nimby: NimbyState | None = read_nimby(nimby_path(config.work_dir))
        self._nimby_changed = asyncio.Event()
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
        self._sample: dict[str, float] | None = None  # read, not yet sent with a poll
        self._meters: Meters | None = None
        self._idle_samples = True  # the controller takes samples on their own (idle worker)

    # -- lifecycle ------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        self._loop = asyncio.get_running_loop()
        self.outbox.bind(self._loop)
        guardian = Guardian.start(grace_s=self.config.grace_s) if self.config.guardian else None
        self.executor.start(self._loop, guard=guardian)
        try:
            await self._run(stop)
        finally:
            if guardian is not None:
                guardian.close()  # every task has ended: nothing is left for it to kill

    async def _run(self, stop: asyncio.Event) -> None:
        await self._register(stop)
        # Reports go on while the lanes stop their tasks (their last output may be large).
        reporting = asyncio.Event()
        flusher = asyncio.create_task(self._forever("report", self._flush_round, reporting))
        watcher = asyncio.create_task(self._forever("NIMBY watch", self._nimby_round, stop))
        sampler = asyncio.create_task(self._forever("sample", self._sample_round, stop))
        try:
            await self._forever("poll", self._poll_round, stop)
        finally:
            watcher.cancel()
            sampler.cancel()
            try:
                await self.executor.close()  # what ran has ended and its finish is in the outbox
            finally:
                reporting.set()
                for task in (flusher, watcher, sampler):
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
                await self._last_words()

    def check_nimby(self) -> None:
        """Take in the NIMBY file: a stop kills what runs here (its tasks are requeued)."""
        state = read_nimby(nimby_path(self.config.work_dir))
        if state == self.nimby:
            return
        log.warning("NIMBY on this machine: %s", state or "resumed")
        self.nimby = state
        if state == "stopped":
            for attempt_id in list(self.executor.held):
                self.executor.kill(attempt_id, stale=False)
        self._nimby_changed.set()

    async def _nimby_round(self, stop: asyncio.Event) -> None:
        await _wait(stop, 0.5)
        self.check_nimby()

    async def _sample_round(self, stop: asyncio.Event) -> None:
        """Read the meters (in a thread: nvidia-smi and plugins may take a while); the next
        poll carries the newest reading, or, while a poll is held, a request of its own."""
        if self.config.sample_every_s <= 0:
            await stop.wait()
            return
        if self._meters is None:
            self._meters = await asyncio.to_thread(Meters.for_worker, self.config.work_dir)
        self._sample = await asyncio.to_thread(self._meters.read)
        if self._poll_held.is_set() and self._idle_samples:  # idle: no poll goes for a while
            await self._send_sample()
        await _wait(stop, self.config.sample_every_s)

    async def _send_sample(self) -> None:
        sample, self._sample = self._sample, None
        if sample is None:
            return
        self.sent["samples"] += 1
        if not await self.client.sample(sample):  # an older controller: polls carry them
            self._idle_samples = False

    async def _forever(
        self,
        what: str,
        round_: Callable[[asyncio.Event], Awaitable[None]],
        stop: asyncio.Event,
    ) -> None:
        """Run `round_` until `stop` is set; a round that fails is logged and the next one
        waits (longer with each failure in a row)."""
        failures = 0
        while not stop.is_set():
            try:
                await round_(stop)
            except Exception as exc:
                failures += 1
                delay = retry_after(failures, jitter=self._jitter())
                self._failed(what, exc, failures=failures, delay=delay)
                await _wait(stop, delay)
            else:
                failures = 0

    def _failed(self, what: str, exc: Exception, *, failures: int, delay: float) -> None:
        """Log a failed round; a failed request also tells the outbox the controller does not
        take output now."""
        again = f"failure {failures} in a row" if failures > 1 else "first failure"
        if isinstance(exc, ThresherError):
            self.outbox.set_reachable(False, f"the controller did not take it ({exc})")
            log.warning("%s failed: %s; retrying in %.1fs (%s)", what, exc, delay, again)
        else:  # a fault of the worker's own: with its traceback
            log.error("%s failed; retrying in %.1fs (%s)", what, delay, again, exc_info=exc)

    async def _register(self, stop: asyncio.Event) -> None:
        failures = 0
        while not stop.is_set():
            try:
                out = await self.client.register(self.config.facts)
            except Exception as exc:
                failures += 1
                delay = retry_after(failures, jitter=self._jitter())
                self._failed("register", exc, failures=failures, delay=delay)
                await _wait(stop, delay)
                continue
            self.worker_id, self.heartbeat_s = out.worker_id, out.heartbeat_s
            log.info("registered as %s (worker %s)", self.config.facts.name, out.worker_id)
            return

    async def _last_words(self) -> None:
        """After the lanes stopped: report what ended, then say goodbye, so the controller
        takes this worker offline and requeues what it still held at once."""
        if self._flush_timer is not None:
            self._flush_timer.cancel()
        try:
            while not self.outbox.empty():
                await self._send_report()
        except ThresherError as exc:
            log.warning("could not report the last finishes and output: %s", exc)
        if self.worker_id is not None:
            try:
                said = await self.client.goodbye()
            except ThresherError as exc:
                log.warning("could not say goodbye (%s): the controller waits for the lease", exc)
            else:
                log.warning(
                    "said goodbye to the controller"
                    if said
                    else "the controller knows no goodbye (an older one): it waits for the lease"
                )
        await self.client.aclose()
        log.info("sent %s", ", ".join(f"{n} {what}" for what, n in sorted(self.sent.items())))

    # -- polling --------------------------------------------------------------------------------

    def ask(self) -> Ask:
        """What the next poll asks for (see `PollPolicy.ask`)."""
        return self.policy.ask(self.executor.loads, nimby=self.nimby is not None)

    async def _poll_round(self, stop: asyncio.Event) -> None:
        """One poll, its answer applied, and the wait until the next one is due. A poll that
        comes back at once carries the lines and finishes. One that will be held sends them
        first in a report: the lines, so that the reports sent during the hold, of later lines,
        cannot overtake them; the finishes, so that they are committed (and a job they end is
        seen done) without waiting for the poll's claim, which on an idle farm may find
        nothing; the poll then names what is still held."""
        ask = self.ask()
        wait_s = self.policy.hold(ask)
        answer: api.PollOut | None = None
        async with self._send_lock:
            output, finished = self.outbox.drain()
            if wait_s > 0 and (output or finished):
                await self._report(output, finished)  # put back if it was not taken
            elif wait_s == 0:
                answer = await self._polled(ask, 0.0, output, finished, stop)
        if wait_s > 0:
            ask = self.ask()  # the report's answer may have stopped attempts
            answer = await self._polled(ask, self.policy.hold(ask), [], [], stop)
            finished = []
        if answer is None:  # stopping, or NIMBY changed here: tell the controller at once
            return
        self.outbox.set_reachable(True)
        self.executor.settle(finished)
        self._answered(answer)
        wait = self.policy.next_poll_in(
            self.executor.loads,
            nimby=self.nimby is not None,
            answer_had_work=self._work_came,
            answer_was_short=len(answer.assignments) < len(ask.lanes) + len(ask.ahead_lanes),
            heartbeat_s=self.heartbeat_s,
        )
        if wait > 0:
            self._rearm()
            await _wait_any(stop, (self._wake,), wait)

    async def _polled(
        self,
        ask: Ask,
        wait_s: float,
        output: list[api.OutputBatch],
        finished: list[api.FinishIn],
        stop: asyncio.Event,
    ) -> api.PollOut | None:
        """Send a poll carrying `output` and `finished`; they are put back if it failed or
        was given up (None)."""
        body = api.PollIn(
            lanes=list(ask.lanes),
            ahead_lanes=list(ask.ahead_lanes),
            nimby=self.nimby,
            wait_s=wait_s,
            running=self.executor.running(),
            output=output,
            finished=finished,
            sample=self._sample,
        )
        self._sample = None
        try:
            answer = await self._send_poll(body, stop)
        except BaseException:
            self.outbox.put_back(output, finished)
            raise
        if answer is None:
            self.outbox.put_back(output, finished)
        return answer

    async def _send_poll(self, body: api.PollIn, stop: asyncio.Event) -> api.PollOut | None:
        """The poll's answer; None when `stop` is set or NIMBY changed here before it came."""
        self._wake.clear()
        self._nimby_changed.clear()
        if body.wait_s > 0:
            self._poll_sent_at = self.clock.now()
            self._poll_held.set()
        try:
            self.sent["polls"] += 1
            self.sent["finishes"] += len(body.finished)
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
                return None
            return poll.result()
        finally:
            self._poll_held.clear()

    def _rearm(self) -> None:
        """After an answer: a wake-up set while the poll was out (a lane ran low) is dropped
        unless a poll is still due, as the answer may have topped the lanes up; finishes that
        came meanwhile go within `flush_every_s`."""
        if not self._wake.is_set():
            return
        due_in = self.policy.finishes_due_in(self.executor.loads, nimby=self.nimby is not None)
        if due_in == 0:
            return
        self._wake.clear()
        if not self.outbox.empty():
            self._arm_flush(due_in)

    def _answered(self, answer: api.PollOut) -> None:
        """A poll's answer: apply it, and remember whether work came (see `report_in`)."""
        self._work_came = bool(answer.assignments)
        self._apply(answer)

    def _apply(self, answer: api.PollOut) -> None:
        self.sent["assignments"] += len(answer.assignments)
        self.heartbeat_s = answer.heartbeat_s
        for attempt_id in answer.stale:
            self.executor.kill(attempt_id, stale=True)
        for attempt_id in answer.stop:
            self.executor.kill(attempt_id, stale=False)
        self.executor.take(answer.assignments)

    # -- reporting -----------------------------------------------------------------------------

    async def _flush_round(self, stop: asyncio.Event) -> None:
        """Send a report when output piles up (see `Outbox.backlog`), and while a poll is held
        when finishes came (or output waited `flush_every_s`); between polls the next poll
        carries them, so this waits for one to be held first."""
        backlog = self.outbox.backlog
        if not backlog.is_set():
            if not self._poll_held.is_set():
                await _wait_any(stop, (self._poll_held, backlog), self.heartbeat_s)
                return
            finishes = self.outbox.has_finishes
            await _wait_any(stop, (finishes, backlog), self.policy.flush_every_s)
            wait = self._report_wait()
            if wait > 0 and not backlog.is_set():
                await _wait_any(stop, (backlog,), wait)
            if not self._poll_held.is_set() and not backlog.is_set():
                return
        if not self.outbox.empty():
            await self._send_report()

    def _report_wait(self) -> float:
        """How long queued finishes wait for the held poll's answer before a report."""
        return self.policy.report_in(
            now=self.clock.now(), poll_sent_at=self._poll_sent_at, answer_had_work=self._work_came
        )

    async def _send_report(self) -> None:
        async with self._send_lock:
            output, finished = self.outbox.drain()
            if output or finished:
                await self._report(output, finished)

    async def _report(self, output: list[api.OutputBatch], finished: list[api.FinishIn]) -> None:
        """Report output and finishes (the send lock held); put back if they were not taken."""
        self.sent["reports"] += 1
        self.sent["finishes"] += len(finished)
        try:
            answer = await self.client.report(api.ReportIn(output=output, finished=finished))
        except BaseException:
            self.outbox.put_back(output, finished)
            raise
        self.outbox.set_reachable(True)
        self.executor.settle(finished)
        self._apply(answer)

    # -- after finishes -----------------------------------------------------------------------

    def _after_finish(self) -> None:
        due_in = self.policy.finishes_due_in(self.executor.loads, nimby=self.nimby is not None)
        if due_in == 0:
            self._wake.set()
        else:
            self._arm_flush(due_in)

    def _arm_flush(self, delay: float) -> None:
        if self._flush_timer is None and self._loop is not None:
            self._flush_timer = self._loop.call_later(delay, self._flush_due)

    def _flush_due(self) -> None:
        """Finishes have waited long enough for the lanes to run low: poll now."""
        self._flush_timer = None
        if not self.outbox.empty():
            self._wake.set()


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


async def _wait_any(stop: asyncio.Event, others: tuple[asyncio.Event, ...], seconds: float) -> None:
    """Until `stop` or one of `others` is set, or `seconds` pass."""
    if stop.is_set() or any(event.is_set() for event in others):
        return
    waiters = {asyncio.create_task(event.wait()) for event in (stop, *others)}
    _, pending = await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
