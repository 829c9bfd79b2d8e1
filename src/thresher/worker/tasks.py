"""Turning an assignment into a command, and a process result into a finish report."""

from __future__ import annotations

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
    directory made. Thread-safe: lanes build their tasks in their own threads."""

    def __init__(self, *, work_dir: Path, base_env: Mapping[str, str], jobs_kept: int = 64) -> None:
        self._work_dir = work_dir
        self._base_env = dict(base_env)
        self._jobs_kept = jobs_kept
        # (job id, the job's env and cwd as sent) -> (merged environment, working directory)
        self._jobs: dict[tuple[int, str | None], tuple[dict[str, str], str, dict[str, str]]] = {}

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

    def _job(self, a: api.AssignmentOut) -> tuple[dict[str, str], str]:
        key = (a.job_id, a.cwd)
        known = self._jobs.get(key)
        if known is not None and known[2] == a.env:
            return known[0], known[1]
        cwd = a.cwd or str(self._work_dir / "jobs" / str(a.job_id))
        Path(cwd).mkdir(parents=True, exist_ok=True)
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
