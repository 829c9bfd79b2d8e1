"""Run one task's process: an argv list in its own process group, output streamed as lines.

The runner is thread-based so the asyncio agent can hand it to a thread pool (spawning through
``subprocess`` in threads is cheaper than asyncio's subprocess API, see DESIGN section 5).

What happens to a run:

- ``start()`` spawns the argv (never through a shell) in a new session, so the task and everything
  it starts share one process group. A bad executable or working directory is not an exception:
  it becomes a :class:`ProcessResult` with ``error`` set.
- One thread per stream reads stdout and stderr and hands each line to ``on_line``.
- A reaper thread waits for the direct child with ``os.wait4`` (its rusage gives peak memory).
  Once the child has exited, whatever is left of its process group is killed: the task's processes
  end with the task, and a background child holding the pipes open cannot hang the run.
- ``cancel()`` and ``max_runtime_s`` send SIGTERM to the group, then SIGKILL after ``grace_s``.

Only Linux is supported by the agent; the code sticks to POSIX calls where it can.
"""

from __future__ import annotations

import codecs
import contextlib
import logging
import os
import re
import select
import signal as signals
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "MAX_LINE_BYTES",
    "TRUNCATED_SUFFIX",
    "LineSplitter",
    "ProcessResult",
    "ProcessRunner",
]

logger = logging.getLogger(__name__)

MAX_LINE_BYTES = 64 * 1024
"""Longest line delivered, in bytes of output; the rest of a longer line is dropped."""

TRUNCATED_SUFFIX = " …[truncated]"
"""Appended to a line cut at :data:`MAX_LINE_BYTES`."""

_READ_SIZE = 64 * 1024
_TERMINATOR = re.compile(rb"\r\n?|\n")
# os.waitid is missing on macOS before Python 3.13; there the leftovers are killed after the reap.
_CAN_WAIT_UNREAPED = hasattr(os, "waitid")

Stream = Literal["stdout", "stderr"]


@dataclass(frozen=True)
class ProcessResult:
    """How a process run ended. A failed run is a value, never an exception."""

    exit_code: int | None
    """The exit status; None when the process never started or was ended by a signal."""
    signal: int | None
    """The signal that ended the process, if one did."""
    peak_rss_bytes: int  # os.wait4's ru_maxrss: includes the spawning worker's size at spawn
    """Peak resident memory of the direct child (and of the children it waited for)."""
    duration_s: float
    """From the spawn to the exit of the direct child."""
    canceled: bool
    """``cancel()`` was called while the process ran."""
    timed_out: bool
    """The process was stopped because ``max_runtime_s`` passed."""
    error: str | None
    """Why the process could not be run at all, e.g. ``executable not found: 'blendr'``."""

    @property
    def succeeded(self) -> bool:
        """Exited with status 0 on its own: not canceled, not timed out."""
        return (
            self.exit_code == 0 and not self.canceled and not self.timed_out and self.error is None
        )


class LineSplitter:
    """Split a byte stream into text lines; feed it chunks as they arrive.

    A line ends at ``\\n``, ``\\r\\n`` or a lone ``\\r`` (POV-Ray and ffmpeg separate progress
    updates with carriage returns). Bytes are decoded as UTF-8, invalid bytes replaced. A line
    longer than ``max_line_bytes`` is delivered cut to that size with :data:`TRUNCATED_SUFFIX`
    as soon as it overflows, and the rest of it is dropped.

    Empty lines: a blank line ended by ``\\n`` or ``\\r\\n`` is delivered as ``""``; the empty
    pieces a lone ``\\r`` produces (``"\\r\\r"``, a leading ``"\\r"``) are dropped.
    """

    def __init__(self, max_line_bytes: int = MAX_LINE_BYTES) -> None:
        self._max = max_line_bytes
        self._buf = bytearray()
        self._discarding = False  # this line was already delivered truncated
        self._cr_pending = False  # the last chunk ended in "\r": a leading "\n" completes "\r\n"
        self._cr_empty = False  # ...and the line that "\r" ended was empty

    def feed(self, data: bytes) -> list[str]:
        """Take the next chunk of the stream; return the lines it completes."""
        lines: list[str] = []
        if not data:
            return lines
        pos = 0
        if self._cr_pending:
            self._cr_pending = False
            if data[0] == 0x0A:
                pos = 1
                if self._cr_empty:
                    lines.append("")
            self._cr_empty = False
        view = memoryview(data)
        for match in _TERMINATOR.finditer(data, pos):
            self._take(view[pos : match.start()], lines)
            pos = match.end()
            if match.end() - match.start() == 1 and data[match.start()] == 0x0D:
                self._end_line(lines, blank_is_line=False, at_chunk_end=pos == len(data))
            else:
                self._end_line(lines, blank_is_line=True, at_chunk_end=False)
        self._take(view[pos:], lines)
        return lines

    def flush(self) -> list[str]:
        """End of stream: return the last line if it had no terminator, and reset."""
        lines = [self._buf.decode("utf-8", "replace")] if self._buf else []
        self._buf.clear()
        self._discarding = self._cr_pending = self._cr_empty = False
        return lines

    def _take(self, piece: memoryview, lines: list[str]) -> None:
        if self._discarding or not piece:
            return
        room = self._max - len(self._buf)
        if len(piece) <= room:
            self._buf += piece
            return
        self._buf += piece[:room]
        # final=False leaves out a multi-byte character cut in half by the limit.
        decoder = codecs.getincrementaldecoder("utf-8")("replace")
        lines.append(decoder.decode(bytes(self._buf), final=False) + TRUNCATED_SUFFIX)
        self._buf.clear()
        self._discarding = True

    def _end_line(self, lines: list[str], *, blank_is_line: bool, at_chunk_end: bool) -> None:
        was_empty = not self._buf and not self._discarding
        if self._buf:
            lines.append(self._buf.decode("utf-8", "replace"))
            self._buf.clear()
        elif was_empty and blank_is_line:
            lines.append("")
        self._discarding = False
        if at_chunk_end:
            # Only the next chunk tells a lone "\r" from the first half of "\r\n".
            self._cr_pending = True
            self._cr_empty = was_empty


class ProcessRunner:
    """Run one argv in its own process group; stream its lines; report how it ended.

    ``on_line(stream, text)`` is called from the reader threads with ``stream`` ``"stdout"`` or
    ``"stderr"`` and the line without its terminator (see :class:`LineSplitter`). Calls are
    serialised (never two at once) and in order within a stream; an exception it raises is logged
    and the run goes on. Every line has been delivered when :meth:`wait` returns a result.

    ``env`` is the whole environment of the process: nothing else is inherited. ``cwd`` None keeps
    the current directory. ``drain_timeout_s`` bounds the wait for output once the process group is
    gone, for a process that escaped the group (``setsid``) but still holds the pipes.

    Raises ``ValueError`` for an empty argv and ``RuntimeError`` when started twice or waited on
    before start; everything about the process itself ends up in the :class:`ProcessResult`.
    """

    def __init__(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str],
        cwd: str | None,
        on_line: Callable[[str, str], None],
        max_runtime_s: float | None = None,
        grace_s: float = 10.0,
        drain_timeout_s: float = 2.0,
    ) -> None:
        if not argv:
            raise ValueError("argv must name a program")
        self._argv = list(argv)
        self._env = dict(env)
        self._cwd = cwd
        self._on_line = on_line
        self._max_runtime_s = max_runtime_s
        self._grace_s = grace_s
        self._drain_timeout_s = drain_timeout_s

        self._lock = threading.Lock()  # guards the state below and every signal sent
        self._callback_lock = threading.Lock()
        self._started = False
        self._proc: subprocess.Popen[bytes] | None = None
        self._exited = False  # the child has exited: no more signals to its group
        self._stop_reason: Literal["canceled", "timed_out"] | None = None
        self._timers: list[threading.Timer] = []
        self._readers: list[threading.Thread] = []
        self._wake_r = self._wake_w = -1
        self._started_at = 0.0
        self._result: ProcessResult | None = None
        self._done = threading.Event()

    @property
    def pid(self) -> int | None:
        """The process id (also its process group id) once started; None before or on error."""
        return self._proc.pid if self._proc is not None else None

    def start(self) -> None:
        """Spawn the process. A spawn failure becomes the result; it is never raised."""
        proc = self._spawn()
        if proc is not None:
            self._thread(self._reap, proc).start()

    def _spawn(self) -> subprocess.Popen[bytes] | None:
        with self._lock:
            if self._started:
                raise RuntimeError("a ProcessRunner runs once")
            self._started = True
            self._started_at = time.monotonic()
            try:
                # The pipe that wakes abandoned readers exists before the process, so running
                # out of fds is a spawn failure rather than an orphaned process.
                self._wake_r, self._wake_w = os.pipe()
                proc = subprocess.Popen(
                    self._argv,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    env=self._env,
                    cwd=self._cwd,
                    close_fds=True,
                    start_new_session=True,
                )
            except (OSError, ValueError) as exc:
                self._close_wake_pipe()
                self._finish_unstarted(self._spawn_error(exc))
                return None
            self._proc = proc
            assert proc.stdout is not None
            assert proc.stderr is not None
            self._readers = [
                self._thread(self._read, "stdout", proc.stdout.fileno()),
                self._thread(self._read, "stderr", proc.stderr.fileno()),
            ]
            if self._max_runtime_s is not None:
                self._start_timer(self._max_runtime_s, self._stop, "timed_out")
        for reader in self._readers:
            reader.start()
        return proc

    def cancel(self) -> None:
        """SIGTERM the process group, SIGKILL it after ``grace_s``.

        Thread-safe and idempotent; a no-op before start and after the process has exited.
        """
        self._stop("canceled")

    def wait(self, timeout: float | None = None) -> ProcessResult | None:
        """Block until the run is over and every line delivered; None if ``timeout`` passes."""
        if not self._started:
            raise RuntimeError("wait() before start()")
        if not self._done.wait(timeout):
            return None
        return self._result

    def run(self) -> ProcessResult:
        """Start the process and wait for its result (reaping it in the calling thread)."""
        proc = self._spawn()
        if proc is not None:
            self._reap(proc)
        result = self.wait()
        assert result is not None
        return result

    # -- stopping ---------------------------------------------------------------------------

    def _stop(self, reason: Literal["canceled", "timed_out"]) -> None:
        with self._lock:
            if self._proc is None or self._exited or self._stop_reason is not None:
                return
            self._stop_reason = reason
            self._signal_group(signals.SIGTERM)
            self._start_timer(self._grace_s, self._kill)

    def _kill(self) -> None:
        with self._lock:
            if not self._exited:
                self._signal_group(signals.SIGKILL)

    def _signal_group(self, sig: int) -> None:
        # Callers hold self._lock and have checked the leader is not yet reaped, so the group id
        # cannot have been reused by an unrelated process.
        assert self._proc is not None
        # ESRCH: the group is gone already; EPERM: only members we may not signal are left.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._proc.pid, sig)

    def _start_timer(self, delay: float, action: Callable[..., None], *args: object) -> None:
        timer = threading.Timer(delay, action, args)
        timer.daemon = True
        self._timers.append(timer)
        timer.start()

    # -- threads ----------------------------------------------------------------------------

    def _thread(self, target: Callable[..., None], *args: object) -> threading.Thread:
        name = f"thresher-process-{target.__name__.strip('_')}"
        return threading.Thread(target=target, args=args, name=name, daemon=True)

    def _read(self, stream: Stream, fd: int) -> None:
        splitter = LineSplitter()
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        poller.register(self._wake_r, select.POLLIN)
        while True:
            ready = {ready_fd for ready_fd, _ in poller.poll()}
            if self._wake_r in ready:
                break  # abandoned: something outside the group still holds the pipe
            data = os.read(fd, _READ_SIZE)
            if not data:
                break
            self._deliver(stream, splitter.feed(data))
        self._deliver(stream, splitter.flush())

    def _deliver(self, stream: Stream, lines: list[str]) -> None:
        if not lines:
            return
        with self._callback_lock:
            for line in lines:
                try:
                    self._on_line(stream, line)
                except Exception:
                    logger.exception("on_line failed for a %s line of %r", stream, self._argv[0])

    def _reap(self, proc: subprocess.Popen[bytes]) -> None:
        status: int | None = None
        peak_rss = 0
        try:
            if _CAN_WAIT_UNREAPED:
                # Wait without reaping: the zombie keeps the group id from being reused while
                # the leftovers are killed.
                os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)
                self._kill_leftovers()
            _, status, usage = os.wait4(proc.pid, 0)
            # Popen must not reap the pid again (it may belong to someone else by then).
            proc.returncode = os.waitstatus_to_exitcode(status)
            peak_rss = usage.ru_maxrss * (1 if sys.platform == "darwin" else 1024)
            if not _CAN_WAIT_UNREAPED:
                self._kill_leftovers()
        except ChildProcessError:
            # Reaped elsewhere (SIGCHLD ignored in this process): the status is lost.
            proc.returncode = -1
        finally:
            duration = time.monotonic() - self._started_at
            with self._lock:
                self._exited = True  # no timer may start or signal from now on
            try:
                self._wind_down(proc)
            finally:
                self._finish(status, peak_rss, duration)

    def _kill_leftovers(self) -> None:
        with self._lock:
            self._signal_group(signals.SIGKILL)  # what the task left behind ends with it
            self._exited = True

    def _wind_down(self, proc: subprocess.Popen[bytes]) -> None:
        with self._lock:
            timers = list(self._timers)
        for timer in timers:
            timer.cancel()
            timer.join()
        deadline = time.monotonic() + self._drain_timeout_s
        for reader in self._readers:
            reader.join(max(0.0, deadline - time.monotonic()))
        if any(reader.is_alive() for reader in self._readers):
            os.write(self._wake_w, b"x")
            for reader in self._readers:
                reader.join()
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()
        self._close_wake_pipe()

    def _close_wake_pipe(self) -> None:
        for fd in (self._wake_r, self._wake_w):
            if fd >= 0:
                os.close(fd)
        self._wake_r = self._wake_w = -1

    # -- results ----------------------------------------------------------------------------

    def _finish(self, status: int | None, peak_rss: int, duration: float) -> None:
        exit_code = sig = None
        error = None
        if status is None:
            error = "exit status lost: the process was reaped elsewhere"
        else:
            code = os.waitstatus_to_exitcode(status)
            if code < 0:
                sig = -code
            else:
                exit_code = code
        self._result = ProcessResult(
            exit_code=exit_code,
            signal=sig,
            peak_rss_bytes=peak_rss,
            duration_s=duration,
            canceled=self._stop_reason == "canceled",
            timed_out=self._stop_reason == "timed_out",
            error=error,
        )
        self._done.set()

    def _finish_unstarted(self, error: str) -> None:
        self._result = ProcessResult(
            exit_code=None,
            signal=None,
            peak_rss_bytes=0,
            duration_s=time.monotonic() - self._started_at,
            canceled=False,
            timed_out=False,
            error=error,
        )
        self._done.set()

    def _spawn_error(self, exc: OSError | ValueError) -> str:
        program = self._argv[0]
        if isinstance(exc, ValueError):
            return f"invalid arguments or environment: {exc}"
        # subprocess names the working directory as the failing file when chdir failed.
        if self._cwd is not None and exc.filename == self._cwd:
            if isinstance(exc, FileNotFoundError):
                return f"working directory does not exist: {self._cwd!r}"
            if isinstance(exc, NotADirectoryError):
                return f"working directory is not a directory: {self._cwd!r}"
            if isinstance(exc, PermissionError):
                return f"permission denied for working directory: {self._cwd!r}"
            return f"cannot enter working directory {self._cwd!r}: {exc.strerror}"
        if isinstance(exc, FileNotFoundError):
            return f"executable not found: {program!r}"
        if isinstance(exc, PermissionError):
            return f"permission denied: {program!r}"
        return f"cannot start {program!r}: {exc.strerror or exc}"
