"""The attempts this worker holds, run on its lanes.

The agent hands over the attempts each answer brings (each names the lane it was claimed for) and
the stops and stale attempts it names; the executor gives each attempt to its lane's thread at
once, also while the lane is busy (a short task held ahead), keeps every lane's `LaneLoad`, and
puts each attempt's finish in the outbox when it ends, then tells the agent (`on_finish`), which
decides when a poll carries them. A lane holding an OpenJD job's session closes it after it has
stayed idle `openjd_idle_s`.

Everything here runs on the agent's event loop, except the work handed to the lanes' threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Callable, Coroutine, Mapping, Sequence
from pathlib import Path
from typing import Any

from thresher.core.volumes import VolumeError
from thresher.schemas import api
from thresher.worker.attempts import Failed, Held, finish_report, run_command, run_process
from thresher.worker.engines import EngineTaskError, WorkerEngines
from thresher.worker.lanes import Done, LaneThreads
from thresher.worker.launch import Launcher
from thresher.worker.openjd_lane import OpenJDLanes, OpenJDResult
from thresher.worker.outbox import Outbox
from thresher.worker.poll_policy import LaneLoad, closed, closing, ended, given, topped_up
from thresher.worker.process import GroupGuard, ProcessResult
from thresher.worker.staging import StagingLedger, discard, settle
from thresher.worker.sync import SiteSync
from thresher.worker.tasks import Command, CommandBuilder
from thresher.worker.volumes import ShareResolver, needs_shares

__all__ = ["Executor"]

_CLOSE = "close"  # the key of a lane's piece of work that closes its idle OpenJD session


class Executor:
    """Runs held attempts on `lanes` lanes; :meth:`start` it on the event loop first."""

    def __init__(
        self,
        lanes: int,
        *,
        work_dir: Path,
        outbox: Outbox,
        engines: WorkerEngines,
        on_finish: Callable[[], None],
        grace_s: float = 10.0,
        openjd_idle_s: float = 5.0,
        path_mapping_rules: Sequence[Mapping[str, str]] = (),
        shares: ShareResolver | None = None,
        sync: SiteSync | None = None,
        launcher: Launcher | None = None,
    ) -> None:
        self.held: dict[int, Held] = {}  # by attempt id, until its finish is acknowledged
        self.loads = [LaneLoad() for _ in range(lanes)]
        self.openjd = OpenJDLanes(
            work_dir,
            outbox,
            path_mapping_rules=path_mapping_rules,
            lane_env=launcher.lane_env if launcher is not None else None,
        )
        self._work_dir = work_dir
        self._outbox = outbox
        self._engines = engines
        self._on_finish = on_finish
        self._grace_s = grace_s
        self._openjd_idle_s = openjd_idle_s
        self._commands = CommandBuilder(work_dir=work_dir, base_env=os.environ)
        self._threads = LaneThreads(
            lanes, on_done=self.on_lane_done, when_idle=self._commands.make_spare
        )
        self._idle = asyncio.Event()  # set while no lane has an attempt
        self._idle.set()
        self._idle_timers: dict[int, asyncio.TimerHandle] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._guard: GroupGuard | None = None
        self._shares = shares  # share=NAME/... paths resolved to this site's roots
        self._sync = sync  # away from the main site: inputs synced first, outputs sent back
        self.launcher = launcher or Launcher()
        self._ledger = StagingLedger(work_dir)  # attempts' staging folders, until settled

    def start(self, loop: asyncio.AbstractEventLoop, *, guard: GroupGuard | None = None) -> None:
        """Start the lanes' threads; `guard` is told of every task's process group. The
        staging folders a killed worker of this work directory left are removed meanwhile."""
        self._guard = guard
        self._threads.start(loop)
        self._spawn(self._sweep_staging())

    async def _sweep_staging(self) -> None:
        await asyncio.to_thread(self._ledger.sweep)

    def running(self) -> list[api.RunningIn]:
        """Every attempt held, for a poll (the controller's lease on each goes on)."""
        return [api.RunningIn(attempt_id=a, token=h.assignment.token) for a, h in self.held.items()]

    def take(self, assignments: Sequence[api.AssignmentOut]) -> None:
        """Give each new attempt to the lane it was claimed for; those lanes then hold a batch
        (see `topped_up`)."""
        topped: set[int] = set()
        for assignment in assignments:
            held = Held(assignment)
            self.held[assignment.attempt_id] = held
            lane = assignment.lane
            if lane is None or not 0 <= lane < len(self.loads):
                self._refuse(held, f"the controller gave it to no lane of this worker ({lane})")
            else:  # its lane runs it next, also while it runs another one now
                self._give(held, lane)
                topped.add(lane)
        for lane in topped:
            self.loads[lane] = topped_up(self.loads[lane])

    def settle(self, finished: Sequence[api.FinishIn]) -> None:
        """Reported finishes are acknowledged: forget those attempts."""
        for fin in finished:
            self.held.pop(fin.attempt_id, None)

    def kill(self, attempt_id: int, *, stale: bool) -> None:
        """Stop the attempt. A stale one (no longer this worker's) is never reported."""
        held = self.held.get(attempt_id)
        if held is None:
            return
        held.stop.set()
        held.stale = held.stale or stale
        if stale:
            self._outbox.forget(attempt_id)
        if held.lane is not None and self._threads.withdraw(held.lane, attempt_id):
            self._finished(attempt_id, None)  # given to its lane, not started there
            self._on_finish()
        elif held.runner is not None:
            held.runner.cancel()
        elif held.cancel is not None:
            held.cancel()
        # Otherwise its lane is about to start it, and sees the stop before it does.

    async def close(self) -> None:
        """Cancel what runs and wait for it to end (its finish in the outbox); what was held
        ahead and not started is dropped unreported, for its lease to end."""
        for attempt_id, held in list(self.held.items()):
            held.stop.set()
            if held.lane is not None and self._threads.withdraw(held.lane, attempt_id):
                self._lane_ended(held.lane)
                held.lane = None
            elif held.runner is not None:
                held.runner.cancel()
            elif held.cancel is not None:
                held.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self._idle.wait()
        while pending := [t for t in self._tasks if not t.done()]:
            # the outputs of what just ended: moved into place, or removed
            await asyncio.gather(*pending, return_exceptions=True)
        for timer in self._idle_timers.values():
            timer.cancel()
        await asyncio.to_thread(self._threads.close)
        self._commands.close()
        await asyncio.to_thread(self.openjd.close_all)

    def on_lane_done(self, batch: list[Done]) -> None:
        """Lanes ended these pieces of work: queue the finish reports, then tell the agent."""
        for done in batch:
            if done.key == _CLOSE:  # an idle OpenJD session was closed: the lane may be free
                self.loads[done.lane] = closed(self.loads[done.lane])
                continue
            assert isinstance(done.key, int)
            value = done.value
            if done.error is not None:
                value = Failed(f"the worker failed to run it: {done.error}", definition=False)
            if isinstance(value, OpenJDResult):
                self._finished(done.key, None, openjd=value)
            elif isinstance(value, Failed):
                held = self.held.get(done.key)
                if held is not None:
                    a = held.assignment
                    for row in (*value.details, value.message):
                        self._outbox.add_line(a.attempt_id, a.token, "system", row)
                self._finished(done.key, None, failure=value)
            else:
                assert value is None or isinstance(value, ProcessResult)
                self._finished(done.key, value)
        self._on_finish()

    # -- inside ---------------------------------------------------------------------------------

    def _refuse(self, held: Held, message: str) -> None:
        a = held.assignment
        self._outbox.add_line(a.attempt_id, a.token, "system", message)
        self._finished(a.attempt_id, None, failure=Failed(message, definition=False))
        self._on_finish()

    def _give(self, held: Held, lane: int) -> None:
        """The lane runs the attempt after what it was given before (a short task held ahead
        waits in the lane's thread, which starts it the moment the last one ends)."""
        timer = self._idle_timers.pop(lane, None)
        if timer is not None:
            timer.cancel()
        held.lane = lane
        held.launch = lambda command: self._launch(held, command)
        held.cleanup = lambda result: self.launcher.cleanup(held.assignment, result)
        self.loads[lane] = given(self.loads[lane])
        self._idle.clear()
        if self._shares is not None and needs_shares(held.assignment):
            self._spawn(self._resolve_shares(held, lane, self._shares))
        else:
            self._hand(held, lane)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _resolve_shares(self, held: Held, lane: int, shares: ShareResolver) -> None:
        """Resolve the attempt's share paths, then run it; a path that escapes its volume
        root (or names a volume without a root here) fails the task."""
        a = held.assignment
        try:
            held.assignment = await shares.resolve(a)
        except Exception as exc:  # VolumeError, or the controller away: the task fails
            reason = exc.message if isinstance(exc, VolumeError) else f"{type(exc).__name__}: {exc}"
            failed = Failed(f"cannot resolve its share paths: {reason}")
            self.on_lane_done([Done(lane, a.attempt_id, value=failed)])
            return
        if self._sync is not None:
            try:
                if await self._sync.before(a, self._say(a), await shares.volumes()):
                    held.upload = (a, time.time())
            except Exception as exc:  # the sync failed: so does the task, saying why
                failed = Failed(f"the download sync failed: {type(exc).__name__}: {exc}")
                self.on_lane_done([Done(lane, a.attempt_id, value=failed)])
                return
        if not held.stop.is_set():
            self._hand(held, lane)
        else:
            self.on_lane_done([Done(lane, a.attempt_id, value=None)])

    def _hand(self, held: Held, lane: int) -> None:
        a = held.assignment
        if a.kind == "openjd":
            held.cancel = lambda: self.openjd.cancel(lane)
            self._threads.hand(lane, a.attempt_id, lambda: self.openjd.run(lane, a, held.stop))
        elif a.kind == "engine":
            self._spawn(self._prepare_engine(held, lane))
        else:
            commands, outbox, grace_s, guard = (
                self._commands,
                self._outbox,
                self._grace_s,
                self._guard,
            )
            self._threads.hand(
                lane,
                a.attempt_id,
                lambda: run_command(
                    held, commands=commands, outbox=outbox, grace_s=grace_s, guard=guard
                ),
            )

    async def _prepare_engine(self, held: Held, lane: int) -> None:
        a = held.assignment
        try:
            held.engine_run = await self._engines.start(
                a, self._outbox, work_dir=self._work_dir, gpu_ids=self.launcher.gpus(lane)
            )
        except EngineTaskError as exc:  # engine code failed: that task fails, with its traceback
            failed = Failed(exc.message, tuple(exc.details.rstrip().splitlines()))
            self.on_lane_done([Done(lane, a.attempt_id, value=failed)])
            return
        except Exception as exc:  # a broken payload fails the task, never the worker
            failed = Failed(f"cannot build the command: {exc}")
            self.on_lane_done([Done(lane, a.attempt_id, value=failed)])
            return
        staging = held.engine_run.prepared.staging
        if staging is not None:
            held.staging = staging
            try:
                await asyncio.to_thread(self._ledger.note, a.attempt_id, staging)
            except OSError as exc:  # the work directory: this worker's fault, not the task's
                await asyncio.to_thread(discard, staging)
                failed = Failed(f"cannot note its staging folder: {exc}", definition=False)
                self.on_lane_done([Done(lane, a.attempt_id, value=failed)])
                return
        command, outbox, grace_s, guard = (
            held.engine_run.command,
            self._outbox,
            self._grace_s,
            self._guard,
        )
        self._threads.hand(
            lane,
            a.attempt_id,
            lambda: run_process(held, command, outbox=outbox, grace_s=grace_s, guard=guard),
        )

    def _launch(self, held: Held, command: Command) -> Command:
        """In the lane's thread: the command with its lane's GPUs, in its job's container."""
        run = held.engine_run
        if run is None:
            return self.launcher.command(held.assignment, command)
        task = run.prepared.task
        inputs = [p for p in (task.input, *task.inputs) if p]
        outputs = [task.output] if task.output else []
        if run.prepared.staging is not None:
            outputs = [run.prepared.staging.staged]  # all it writes; moved out by the worker
        return self.launcher.command(held.assignment, command, inputs=inputs, outputs=outputs)

    def _lane_ended(self, lane: int) -> None:
        self.loads[lane] = ended(self.loads[lane])
        if self.loads[lane].load == 0 and self.openjd.job_on(lane) is not None:
            loop = asyncio.get_running_loop()
            self._idle_timers[lane] = loop.call_later(self._openjd_idle_s, self._close_idle, lane)
        if all(load.load == 0 for load in self.loads):
            self._idle.set()

    def _close_idle(self, lane: int) -> None:
        """The lane kept its job's session idle long enough: exit it (the lane waits)."""
        self._idle_timers.pop(lane, None)
        if not self.loads[lane].free or self.openjd.job_on(lane) is None:
            return
        self.loads[lane] = closing(self.loads[lane])
        self._threads.hand(lane, _CLOSE, lambda: self.openjd.close(lane))

    def _finished(
        self,
        attempt_id: int,
        result: ProcessResult | None,
        *,
        failure: Failed | None = None,
        openjd: OpenJDResult | None = None,
    ) -> None:
        """An attempt ended (or was dropped before it started): queue its finish report."""
        held = self.held.get(attempt_id)
        if held is not None and held.lane is not None:
            self._lane_ended(held.lane)
            held.lane = None
        if held is None or held.stale:
            self.held.pop(attempt_id, None)
            if held is not None and held.staging is not None:
                self._spawn(self._settle_outputs(held, None))
            return
        report = finish_report(held, result, failure=failure, openjd=openjd)
        if held.staging is not None:
            self._spawn(self._settle_outputs(held, report))  # finished once they are in place
        elif held.upload is not None and report.status == "succeeded":
            self._spawn(self._send_back(held, report, None))  # finished once they are back
        else:
            self._outbox.add_finish(report)

    def _say(self, a: api.AssignmentOut) -> Callable[[str], None]:
        return lambda text: self._outbox.add_line(a.attempt_id, a.token, "system", text)

    async def _settle_outputs(self, held: Held, report: api.FinishIn | None) -> None:
        """Move a succeeded attempt's files from its staging folder into the output folder
        (then send exactly those back to the output site, if it is another), or remove the
        staging folder of one that did not succeed; then report it (None: never reported)."""
        assert held.staging is not None
        staging, a = held.staging, held.assignment
        succeeded = report is not None and report.status == "succeeded"
        moved: list[Path] = []
        try:
            moved = await asyncio.to_thread(
                settle, staging, succeeded=succeeded, ledger=self._ledger, attempt_id=a.attempt_id
            )
        except OSError as exc:
            message = f"its outputs could not be moved into {staging.folder}: {exc}"
            self._say(a)(message)
            if report is not None:
                report = report.model_copy(update={"status": "failed", "message": message})
        if report is None:
            return
        if held.upload is not None and report.status == "succeeded":
            await self._send_back(held, report, moved)
            return
        if not held.stale:
            self._outbox.add_finish(report)
        self._on_finish()

    async def _send_back(
        self, held: Held, report: api.FinishIn, moved: Sequence[Path] | None
    ) -> None:
        """Send the task's outputs (`moved` into place from its staging folder, else what it
        wrote in its output folder) to the output site, then report it (failed if they could
        not go)."""
        assert held.upload is not None
        assert self._sync is not None
        assert self._shares is not None
        given, started = held.upload
        try:
            volumes = await self._shares.volumes()
            await self._sync.after(given, volumes, started, self._say(given), written=moved)
        except Exception as exc:
            message = f"its outputs could not go back to the output site: {exc}"
            self._say(given)(f"[sync] {message}")
            report = report.model_copy(update={"status": "failed", "message": message})
        if not held.stale:
            self._outbox.add_finish(report)
        self._on_finish()
