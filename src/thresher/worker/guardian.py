"""A worker's task processes die with it, even when it is killed with SIGKILL.

Each task runs in a process group (and session) of its own, which the worker kills when the task
ends; but a worker that is killed outright kills nothing, and its tasks would run on as orphans
beside the re-run of their tasks elsewhere. So each worker starts one guardian: a small process
in a session of its own (a terminal's Ctrl-C, sent to the worker's foreground group, does not
reach it) that reads a pipe from the worker. The worker writes `+PGID` when a task's group
starts and `-PGID` once it has killed that group (its leader still unreaped, so the id cannot
have been reused), a few bytes and one `write` each. Only the worker holds the pipe's write end;
when the worker dies, however it dies, the guardian reads the end of the pipe, sends SIGTERM to
every group still named, SIGKILL after the grace, and exits. A worker that stops on its own ends
its tasks first and closes the pipe with no group named.

This file runs as the guardian's program too (`python -I -S guardian.py GRACE`): it imports
nothing of Thresher's, so the guardian starts in a few milliseconds and holds a few MiB.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import time

__all__ = ["Guardian"]

log = logging.getLogger("thresher.worker")


class Guardian:
    """The worker's side: `enter` and `leave` name task groups (thread-safe: each is one write
    of a few bytes to a pipe, which is atomic); `close` ends the guardian."""

    def __init__(self, proc: subprocess.Popen[bytes], fd: int) -> None:
        self._proc = proc
        self._fd = fd

    @classmethod
    def start(cls, *, grace_s: float) -> Guardian | None:
        """Start the guardian; None (logged) where it cannot run."""
        read_end, write_end = os.pipe()  # both close-on-exec: no task inherits the write end
        try:
            proc = subprocess.Popen(
                [sys.executable, "-I", "-S", os.path.abspath(__file__), str(grace_s)],
                stdin=read_end,
                start_new_session=True,
            )
        except OSError as exc:
            os.close(write_end)
            log.error("no guardian (%s): a killed worker leaves its tasks running", exc)
            return None
        finally:
            os.close(read_end)
        return cls(proc, write_end)

    @property
    def pid(self) -> int:
        return self._proc.pid

    def enter(self, pgid: int) -> None:
        """A task's process group started."""
        self._say(b"+%d\n" % pgid)

    def leave(self, pgid: int) -> None:
        """A task's process group was killed; its leader is not yet reaped."""
        self._say(b"-%d\n" % pgid)

    def close(self) -> None:
        """End the guardian (it kills any group still named) and reap it."""
        fd, self._fd = self._fd, -1
        if fd >= 0:
            os.close(fd)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._proc.wait(timeout=5)

    def _say(self, message: bytes) -> None:
        fd = self._fd
        if fd < 0:
            return
        try:
            os.write(fd, message)
        except OSError as exc:  # the guardian is gone: say so once, run on without it
            self._fd = -1
            with contextlib.suppress(OSError):
                os.close(fd)
            log.error("the guardian is gone (%s): a killed worker leaves its tasks running", exc)


READ_EVERY_S = 0.2


def _guard(grace_s: float) -> None:
    """The guardian's program: follow the groups named on stdin; at its end, end them."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    groups: set[int] = set()
    pending = b""
    while chunk := os.read(0, 65536):
        *lines, pending = (pending + chunk).split(b"\n")
        for line in lines:
            if line[:1] == b"+":
                groups.add(int(line[1:]))
            elif line[:1] == b"-":
                groups.discard(int(line[1:]))
        # Read in batches: a reader blocked on the pipe is woken by every write, and each
        # wake-up costs the worker a context switch per task (short tasks run by thousands).
        # The pipe holds what a fifth of a second writes, and a dead worker is seen as late.
        time.sleep(READ_EVERY_S)
    if not groups:
        return
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pgid in groups:
            with contextlib.suppress(OSError):
                os.killpg(pgid, sig)
        deadline = time.monotonic() + grace_s
        while sig == signal.SIGTERM and time.monotonic() < deadline and _any_alive(groups):
            time.sleep(0.05)  # a poll with a deadline: the groups are not our children


def _any_alive(groups: set[int]) -> bool:
    for pgid in groups:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            continue
        except OSError:
            return True
        return True
    return False


if __name__ == "__main__":
    _guard(float(sys.argv[1]) if len(sys.argv) > 1 else 10.0)
