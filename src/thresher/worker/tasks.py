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
    commands = a.payload.get("commands")
    if not isinstance(commands, list) or a.block >= len(commands):
        raise ValueError(f"job {a.job_id} has no command for block {a.block}")
    argv = placeholders.expand([str(x) for x in commands[a.block]], a.frames)
    env = {**base_env, **a.env}
    env.update(
        THRESHER_JOB_ID=str(a.job_id),
        THRESHER_BLOCK=str(a.block),
        THRESHER_TASK=str(a.index),
        THRESHER_FRAMES=",".join(str(f) for f in a.frames),
    )
    cwd = a.cwd or str(work_dir / "jobs" / str(a.job_id))
    Path(cwd).mkdir(parents=True, exist_ok=True)
    return Command(argv=argv, env=env, cwd=cwd)


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
