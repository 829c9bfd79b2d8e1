"""Turning an assignment into a command, and a process result into a finish report."""

from __future__ import annotations

import contextlib
import itertools
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from thresher.core import placeholders
from thresher.schemas import api
from thresher.worker.process import ProcessResult


@dataclass(frozen=True)
class Command:
    argv: list[str]
    env: dict[str, str]
    cwd: str


def build_command(a: api.AssignmentOut, *, work_dir: Path, base_env: Mapping[str, str]) -> Command:
    """The argv, environment and working directory of a command job's task."""
    return CommandBuilder(work_dir=work_dir, base_env=base_env).build(a)


class CommandBuilder:
    """Builds command jobs' tasks (see :func:`build_command`), doing the work that is the same
    for every task of a job once per job: the environment merged with the job's, the working
    directory made. Thread-safe: lanes build their tasks in their own threads.

    A job's own working directory (``jobs/<job id>`` under the work dir) is a spare directory
    made ahead of need and renamed into place (`make_spare`: a lane does it when it has nothing
    to run): a rename takes tens of microseconds where making a directory can take most of a
    millisecond (0.8 ms on ext4 in the benchmark's VM), on the path from a new job's first
    assignment to its process. A spare is an empty directory named ``.spare-*`` beside the
    jobs' ones; those left by a worker that was killed are removed by the next one."""

    def __init__(self, *, work_dir: Path, base_env: Mapping[str, str], jobs_kept: int = 64) -> None:
        self._work_dir = work_dir
        self._base_env = dict(base_env)
        self._jobs_kept = jobs_kept
        # (job id, the job's env and cwd as sent) -> (merged environment, working directory)
        self._jobs: dict[tuple[int, str | None], tuple[dict[str, str], str, dict[str, str]]] = {}
        self._lock = threading.Lock()  # guards the spare
        self._spare: Path | None = None
        self._making = False  # a spare is being made (by one lane; the others need not)
        self._spares = itertools.count()

    def build(self, a: api.AssignmentOut) -> Command:
        commands = a.payload.get("commands")
        if not isinstance(commands, list) or a.block >= len(commands):
            raise ValueError(f"job {a.job_id} has no command for block {a.block}")
        argv = placeholders.expand([str(x) for x in commands[a.block]], a.frames)
        env, cwd = self._job(a)
        env = dict(env)
        env.update(
            THRESHER_JOB_ID=str(a.job_id),
            THRESHER_BLOCK=str(a.block),
            THRESHER_TASK=str(a.index),
            THRESHER_FRAMES=",".join(str(f) for f in a.frames),
        )
        return Command(argv=argv, env=env, cwd=cwd)

    def forget(self, job_id: int) -> None:
        """Make the job's setup again for its next task (its working directory may be gone)."""
        for key in [k for k in self._jobs if k[0] == job_id]:
            self._jobs.pop(key, None)

    def make_spare(self) -> None:
        """Make a spare working directory for the next new job, unless there is one (any
        thread; a failure is left for that job's own `mkdir` to meet)."""
        with self._lock:
            if self._spare is not None or self._making:
                return
            self._making = True
        path: Path | None = None
        try:
            jobs = self._work_dir / "jobs"
            if next(self._spares) == 0:
                for old in jobs.glob(".spare-*"):  # a killed worker's (empty: rmdir only)
                    with contextlib.suppress(OSError):
                        old.rmdir()
            path = jobs / f".spare-{os.getpid()}-{next(self._spares)}"
            with contextlib.suppress(OSError):
                path.mkdir(parents=True)
        finally:
            with self._lock:
                self._making = False
                if path is not None and path.is_dir():
                    self._spare = path

    def close(self) -> None:
        """Remove the spare (the worker is stopping)."""
        with self._lock:
            spare, self._spare = self._spare, None
        if spare is not None:
            with contextlib.suppress(OSError):
                spare.rmdir()

    def _job_dir(self, cwd: Path) -> None:
        """Make a job's own working directory: the spare renamed, else made."""
        if cwd.is_dir():  # made for an earlier task of the job (forgotten since)
            return
        with self._lock:
            spare, self._spare = self._spare, None
        if spare is not None:
            try:
                os.rename(spare, cwd)  # never over a directory with anything in it
                return
            except OSError:
                with contextlib.suppress(OSError):
                    spare.rmdir()
        cwd.mkdir(parents=True, exist_ok=True)

    def _job(self, a: api.AssignmentOut) -> tuple[dict[str, str], str]:
        key = (a.job_id, a.cwd)
        known = self._jobs.get(key)
        if known is not None and known[2] == a.env:
            return known[0], known[1]
        if a.cwd:
            cwd = a.cwd
            Path(cwd).mkdir(parents=True, exist_ok=True)
        else:
            cwd = str(self._work_dir / "jobs" / str(a.job_id))
            self._job_dir(Path(cwd))
        env = {**self._base_env, **a.env, "PWD": cwd}  # not the worker's own $PWD
        if len(self._jobs) >= self._jobs_kept:
            self._jobs.clear()  # rarely more than a few jobs at once run on one worker
        self._jobs[key] = (env, cwd, dict(a.env))
        return env, cwd


FinishStatus = Literal["succeeded", "failed", "timed_out", "canceled"]


def finish_status(
    result: ProcessResult | None, *, stop_requested: bool
) -> tuple[FinishStatus, str | None]:
    """(status, message) for the finish report."""
    if result is None:
        return "canceled", "stopped before it started"
    if result.error:
        return "failed", result.error
    if result.timed_out:
        return "timed_out", f"ran past its maximum of {result.duration_s:.0f}s"
    if result.canceled or (stop_requested and not result.succeeded):
        return "canceled", "canceled"
    if result.succeeded:
        return "succeeded", None
    if result.signal is not None:
        return "failed", f"killed by signal {result.signal}"
    return "failed", f"exit code {result.exit_code}"
