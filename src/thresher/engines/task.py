"""The values passed between the worker and an engine: the task to run and the prepared command."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from thresher.engines.platforms import local_os, normalize_os


@dataclass(frozen=True)
class EngineTask:
    """One task of an engine job, as the worker hands it to an engine.

    Paths (``input``, ``inputs``, ``output``) are as the submitter wrote them; the engine base maps
    them for this machine in :meth:`Engine.prepare`. ``frames`` are the task's frames in render
    order (a chunk), ``job_range`` the whole job's first and last frame (POV-Ray's clock and
    FFmpeg's frame count need it; it defaults to the task's own span). ``parameters`` are the job's
    engine parameters, merged with the engine's defaults by ``prepare``. ``workdir`` is a
    directory on this machine that belongs to the task (converted inputs go there, and it is the
    process's working directory). ``os_name`` is this worker's OS, ``lane`` the worker lane
    running the task and ``gpu_ids`` the GPUs the lane may use.
    """

    job_id: str
    index: int
    frames: tuple[int, ...]
    workdir: str
    input: str | None = None
    inputs: tuple[str, ...] = ()
    output: str | None = None
    parameters: Mapping[str, Any] = field(default_factory=dict)
    block: str = ""
    job_range: tuple[int, int] | None = None
    os_name: str = field(default_factory=local_os)
    lane: int = 0
    gpu_ids: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "frames", tuple(int(f) for f in self.frames))
        object.__setattr__(self, "inputs", tuple(str(i) for i in self.inputs))
        object.__setattr__(self, "gpu_ids", tuple(int(g) for g in self.gpu_ids))
        object.__setattr__(self, "os_name", normalize_os(self.os_name))
        if self.job_range is not None:
            first, last = (int(v) for v in self.job_range)
            object.__setattr__(self, "job_range", (first, last))

    @property
    def first_frame(self) -> int:
        """The task's first frame; ``ValueError`` for a task without frames."""
        if not self.frames:
            raise ValueError(f"task {self.job_id}/{self.index} has no frames")
        return self.frames[0]

    @property
    def last_frame(self) -> int:
        """The task's last frame; ``ValueError`` for a task without frames."""
        if not self.frames:
            raise ValueError(f"task {self.job_id}/{self.index} has no frames")
        return self.frames[-1]

    @property
    def range_first(self) -> int:
        """The job's first frame (the task's own first frame when ``job_range`` is unset)."""
        return self.job_range[0] if self.job_range is not None else min(self.frames)

    @property
    def range_last(self) -> int:
        """The job's last frame (the task's own last frame when ``job_range`` is unset)."""
        return self.job_range[1] if self.job_range is not None else max(self.frames)


@dataclass(frozen=True)
class PreparedCommand:
    """Everything the worker needs to start the process for one task.

    ``argv`` is the full argument vector (no shell), ``env`` the complete environment,
    ``cwd`` the working directory. ``converted_input`` is the converted copy of the input that the
    command line uses, when input conversion made one. ``task`` is the task as seen on this
    machine (paths mapped, converted input substituted). ``notes`` are human-readable lines
    worth writing to the task's log (e.g. why an input was not converted).
    """

    argv: tuple[str, ...]
    env: Mapping[str, str]
    cwd: str
    converted_input: str | None
    task: EngineTask
    notes: tuple[str, ...] = ()
