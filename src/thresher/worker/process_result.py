"""How a task's process run ended (`ProcessResult`), and the facts read at its end: the words for
a spawn that failed, and the process's own peak memory."""

from __future__ import annotations

import resource
import sys
from dataclasses import dataclass

__all__ = ["ProcessResult", "spawn_error", "task_peak_rss"]


@dataclass(frozen=True)
class ProcessResult:
    """How a process run ended. A failed run is a value, never an exception."""

    exit_code: int | None
    """The exit status; None when the process never started or was ended by a signal."""
    signal: int | None
    """The signal that ended the process, if one did."""
    peak_rss_bytes: int | None
    """Peak resident memory of the direct child (and of the children it waited for); None when
    it stayed within what the worker itself held, which Linux cannot tell apart (see
    `task_peak_rss`)."""
    duration_s: float
    """From the spawn to the exit of the direct child."""
    canceled: bool
    """``cancel()`` was called while the process ran."""
    timed_out: bool
    """The process was stopped because ``max_runtime_s`` passed."""
    error: str | None
    """Why the process could not be run at all, e.g. ``executable not found: 'blendr'``."""
    cpu_s: float | None = None
    """CPU time (user and system) of the direct child and the children it waited for."""

    @property
    def succeeded(self) -> bool:
        """Exited with status 0 on its own: not canceled, not timed out."""
        return (
            self.exit_code == 0 and not self.canceled and not self.timed_out and self.error is None
        )


def task_peak_rss(usage: object) -> int | None:
    """The reaped child's peak RSS (its `wait4` rusage), when it is the task's own.

    Linux charges a child, at its exec, with the peak RSS of the memory it was spawned from:
    the worker's (`echo` was reported at 93 MiB). So the figure is the task's own only above the
    worker's own peak (which never falls, so read after the reap it bounds what was charged);
    at or below it the task's peak is not known, and None says so rather than the worker's."""
    maxrss: int = getattr(usage, "ru_maxrss", 0)
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if maxrss <= own:
        return None
    return maxrss * (1 if sys.platform == "darwin" else 1024)


def spawn_error(exc: OSError | ValueError, *, program: str, cwd: str | None) -> str:
    """What a failed spawn of `program` in `cwd` says."""
    if isinstance(exc, ValueError):
        return f"invalid arguments or environment: {exc}"
    # subprocess names the working directory as the failing file when chdir failed.
    if cwd is not None and exc.filename == cwd:
        if isinstance(exc, FileNotFoundError):
            return f"working directory does not exist: {cwd!r}"
        if isinstance(exc, NotADirectoryError):
            return f"working directory is not a directory: {cwd!r}"
        if isinstance(exc, PermissionError):
            return f"permission denied for working directory: {cwd!r}"
        return f"cannot enter working directory {cwd!r}: {exc.strerror}"
    if isinstance(exc, FileNotFoundError):
        return f"executable not found: {program!r}"
    if isinstance(exc, PermissionError):
        return f"permission denied: {program!r}"
    return f"cannot start {program!r}: {exc.strerror or exc}"
