"""An attempt on this worker: what the agent holds of it, how a lane's thread runs a command
task, and the finish report it ends with."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from thresher.engines import Staging
from thresher.schemas import api
from thresher.worker.engines import EngineRun
from thresher.worker.openjd_lane import OpenJDResult
from thresher.worker.outbox import Outbox
from thresher.worker.process import GroupGuard, ProcessResult, ProcessRunner
from thresher.worker.tasks import Command, CommandBuilder, finish_status

__all__ = ["Failed", "Held", "finish_report", "run_command", "run_process"]


@dataclass
class Held:
    """An attempt the controller gave this worker, from its assignment until its finish is
    acknowledged. The event loop owns it; `runner` is set in the lane's thread and `stop` is
    set from the loop and read in the lane's."""

    assignment: api.AssignmentOut
    runner: ProcessRunner | None = None
    stop: threading.Event = field(default_factory=threading.Event)
    stale: bool = False  # the controller no longer counts it as this worker's: never report it
    engine_run: EngineRun | None = None  # engine jobs: reads the output, decides the outcome
    lane: int | None = None  # the lane it was given to, until it ends there
    cancel: Callable[[], None] | None = None  # OpenJD tasks: the session's own cancel
    # Away from the main site: the assignment as given and when it started, for its outputs
    # to go back there once it succeeded (worker/sync.py).
    upload: tuple[api.AssignmentOut, float] | None = None
    launch: Callable[[Command], Command] | None = None  # its lane's GPUs, its job's container
    # Engine jobs with an output: the folder it renders into, moved into place once it
    # succeeded (worker/staging.py).
    staging: Staging | None = None
    cleanup: Callable[[ProcessResult | None], None] | None = None  # after its process ended


@dataclass(frozen=True)
class Failed:
    """A task that failed before its process ran; ``details`` go to its log first. `definition`:
    the task's own definition is at fault (its engine, its command), not this worker."""

    message: str
    details: tuple[str, ...] = ()
    definition: bool = True


def run_command(
    held: Held,
    *,
    commands: CommandBuilder,
    outbox: Outbox,
    grace_s: float,
    guard: GroupGuard | None = None,
) -> ProcessResult | Failed | None:
    """In the lane's thread: build a command task's command and run it (None: stopped before
    it started)."""
    if held.stop.is_set():
        return None
    try:
        command = commands.build(held.assignment)
    except Exception as exc:  # a broken payload fails the task, never the worker
        return Failed(f"cannot build the command: {exc}")
    result = run_process(held, command, outbox=outbox, grace_s=grace_s, guard=guard)
    if result is not None and result.error is not None:
        commands.forget(held.assignment.job_id)  # made again for the next task
    return result


def run_process(
    held: Held,
    command: Command,
    *,
    outbox: Outbox,
    grace_s: float,
    guard: GroupGuard | None = None,
) -> ProcessResult | None:
    """In the lane's thread: run the attempt's process, its lines going to the outbox (and to
    its engine's parser). None: stopped before it started."""
    a = held.assignment
    attempt_id, token, add_line = a.attempt_id, a.token, outbox.add_line
    if held.launch is not None:
        command = held.launch(command)
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
        grace_s=grace_s,
        guard=guard,
    )
    held.runner = runner
    if engine_run is not None:
        engine_run.cancel = runner.cancel  # an engine failing while parsing stops its run
    if held.stop.is_set():
        return None

    def spawned() -> None:
        if held.stop.is_set():  # a cancel that came before the spawn was a no-op: repeat it
            runner.cancel()

    result = runner.run(on_spawn=spawned)
    if held.cleanup is not None:
        held.cleanup(result)
    return result


def finish_report(
    held: Held,
    result: ProcessResult | None,
    *,
    failure: Failed | None = None,
    openjd: OpenJDResult | None = None,
) -> api.FinishIn:
    """How the attempt ended, as the controller hears it: from its process's result (None: it
    never ran), read by its engine if it has one; a failure before it ran, or its OpenJD
    session's word, overrides that."""
    status, text = finish_status(result, stop_requested=held.stop.is_set())
    if held.engine_run is not None:
        status, text = held.engine_run.outcome(status, text)
    if failure is not None:
        status, text = "failed", failure.message
    exit_code = result.exit_code if result else None
    duration_s = result.duration_s if result else None
    if openjd is not None:
        status, text = openjd.status, openjd.message
        exit_code, duration_s = openjd.exit_code, openjd.duration_s
    return api.FinishIn(
        attempt_id=held.assignment.attempt_id,
        token=held.assignment.token,
        status=status,
        exit_code=exit_code,
        peak_rss_bytes=result.peak_rss_bytes if result else None,
        cpu_s=result.cpu_s if result else None,
        duration_s=duration_s,
        message=text,
        before_start=failure.definition if failure else bool(result and result.error),
    )
