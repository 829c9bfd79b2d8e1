"""The values passed between the worker and an engine: the task to run and the prepared command."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from thresher.engines.platforms import local_os, normalize_os


@dataclass(frozen=True)
class Staging:
    """Where an attempt renders: ``staged``, a hidden folder inside ``folder`` (the output's
    folder, where its files go once the attempt succeeded). Both are local paths."""

    folder: str
    staged: str

    def final(self, path: str) -> str:
        """Where a file written at `path` (inside ``staged``) ends up; other paths unchanged."""
        rel = os.path.relpath(path, self.staged) if os.path.isabs(path) else None
        if rel is None or rel in (os.curdir, os.pardir) or rel.startswith(os.pardir + os.sep):
            return path
        return os.path.join(self.folder, rel)


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
    running the task and ``gpu_ids`` the GPUs the lane may use. ``staging``, when the worker
    gives one, names the hidden folder inside the output's folder the application writes into
    instead (see :func:`thresher.engines.output.staging_for`); the worker moves the files into
    place once the attempt succeeded.
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
    staging: str | None = None

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
    worth writing to the task's log (e.g. why an input was not converted). ``staging`` is
    where the command writes its outputs, when the task asked for a staging folder and the
    command names it (None: it writes where the job's output says).
    """

    argv: tuple[str, ...]
    env: Mapping[str, str]
    cwd: str
    converted_input: str | None
    task: EngineTask
    notes: tuple[str, ...] = ()
    staging: Staging | None = None
