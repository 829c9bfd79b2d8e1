"""A task's own peak memory, sampled while it runs.

The kernel's figure for a reaped child (`wait4`'s `ru_maxrss`) starts at the memory of the
process it was forked from: the worker's, so a task that prints one line reported the worker's
93 MiB. That figure is used only when it is above the worker's own peak (`task_peak_rss`).
Otherwise the task's processes are read from /proc every `SAMPLE_EVERY_S` while it runs, the
first `FIRST_SAMPLE_S` after its spawn: the peak of their summed resident memory (shared pages
count in each process), and its main process's own high-water mark (`VmHWM`, which starts afresh
at exec). A task that ends before the first sample has no peak (None): too short to matter.
A sample walks every process of the machine for the task's descendants (a few milliseconds of
the lane's thread on a busy machine), so none is taken at the spawn: then it would only delay
a short task's start and the sight of its end, and measure a process that has just exec'd.
"""

from __future__ import annotations

import contextlib
import time

import psutil

#: Seconds between two samples of a task's memory.
SAMPLE_EVERY_S = 0.5
#: Seconds from the spawn to the first sample.
FIRST_SAMPLE_S = 0.1


class TaskMemory:
    """The peak memory of the process `pid` and its descendants, from samples."""

    def __init__(
        self, pid: int, *, every_s: float = SAMPLE_EVERY_S, first_s: float = FIRST_SAMPLE_S
    ) -> None:
        self.every_s = every_s
        self.peak: int | None = None
        self.next_at = time.monotonic() + first_s
        self._pid = pid
        # Made at the first sample (reading /proc): the pid is still the task's then, as its
        # parent has not reaped it.
        self._main: psutil.Process | None = None

    def due_in(self, now: float) -> float:
        """Seconds until the next sample is due (0: now)."""
        return max(0.0, self.next_at - now)

    def sample(self, now: float) -> None:
        """Read the processes' memory now; keep the peak."""
        self.next_at = now + self.every_s
        main = self._main
        if main is None:
            try:
                main = self._main = psutil.Process(self._pid)
            except psutil.Error:  # the task ended meanwhile
                return
        try:
            processes = [main, *main.children(recursive=True)]
            high_water = _own_high_water(main.pid)
        except psutil.Error:  # the task ended meanwhile
            return
        total = 0
        for process in processes:
            with contextlib.suppress(psutil.Error):
                total += process.memory_info().rss
        found = max(total, high_water or 0)
        if found and (self.peak is None or found > self.peak):
            self.peak = found


def _own_high_water(pid: int) -> int | None:
    """The process's peak resident memory since its exec (VmHWM), in bytes."""
    try:
        with open(f"/proc/{pid}/status", "rb") as status:
            for line in status:
                if line.startswith(b"VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def peak_of(sampled: int | None, reaped: int | None) -> int | None:
    """The task's peak: the reaped figure when it is the task's own (see `task_peak_rss`),
    else the sampled one."""
    candidates = [x for x in (sampled, reaped) if x is not None]
    return max(candidates) if candidates else None
