"""Run one task's process: an argv list in its own process group, output streamed as lines.

The runner is synchronous and starts no thread of its own for a run: :meth:`ProcessRunner.run`
spawns the process and then watches it from the calling thread (a worker lane's thread), so a
task costs a spawn and a few system calls, not a set of threads (see docs/performance.md).

What happens to a run:

- The argv is spawned (never through a shell) in a new session, so the task and everything it
  starts share one process group; its ``$PWD`` is its working directory. A bad executable or
  working directory is not an exception: it becomes a :class:`ProcessResult` with ``error`` set.
  A ``guard`` (the worker's guardian) is told of the group from its spawn until it is killed, so
  the group dies with a worker that is killed outright.
- ``poll()`` in the watching thread reads stdout and stderr as they become readable, hands each
  line to ``on_line``, and waits for the exit of the direct child on a pidfd (Linux 5.3+;
  elsewhere a helper thread waits for it), keeping the maximum run time; after the exit it
  drains the pipes.
- Once the child has exited, whatever is left of its process group is killed while the child is
  still a zombie (so the group id cannot have been reused), then the child is reaped with
  ``os.wait4`` (its rusage gives peak memory, when it is the task's own: see
  :func:`~thresher.worker.process_result.task_peak_rss`). A background child holding the pipes
  open cannot hang the run; one that left the group is abandoned after ``drain_timeout_s``.
- ``cancel()`` (from any thread) and ``max_runtime_s`` send SIGTERM to the group, then SIGKILL
  after ``grace_s`` (from a timer thread, which only a stopped run has).

A :meth:`ProcessRunner.run` that nobody stops costs the spawn and a few system calls: two pipes,
a pidfd, the group's kill, the reap, and with a guard two writes of a few bytes; it makes no
thread, event or extra file descriptor.

Only Linux is supported by the agent; the code sticks to POSIX calls where it can.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import select
import signal as signals
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Literal, Protocol

from thresher.worker.lines import MAX_LINE_BYTES, TRUNCATED_SUFFIX, LineSplitter
from thresher.worker.process_result import ProcessResult, spawn_error, task_peak_rss
from thresher.worker.spawn import spawn
from thresher.worker.task_memory import TaskMemory, peak_of

__all__ = [
    "MAX_LINE_BYTES",
    "TRUNCATED_SUFFIX",
    "GroupGuard",
    "LineSplitter",
    "ProcessResult",
    "ProcessRunner",
]

logger = logging.getLogger(__name__)

_READ_SIZE = 64 * 1024
# os.waitid is missing on macOS before Python 3.13; there the leftovers are killed after the reap.
_CAN_WAIT_UNREAPED = hasattr(os, "waitid")
_NO_PIDFD_POLL_MS = 50  # without a pidfd, how often the watch looks whether the child exited

Stream = Literal["stdout", "stderr"]


class GroupGuard(Protocol):
    """Told of each task's process group (see `worker.guardian`): from its spawn until it was
    killed, its leader not yet reaped."""

    def enter(self, pgid: int) -> None: ...

    def leave(self, pgid: int) -> None: ...


class ProcessRunner:
    """Run one argv in its own process group; stream its lines; report how it ended.

    ``on_line(stream, text)`` is called from the thread that watches the process (the caller of
    :meth:`run`, or the one thread :meth:`start` starts) with ``stream`` ``"stdout"`` or
    ``"stderr"`` and the line without its terminator (see :class:`LineSplitter`). Calls are never
    two at once and are in order within a stream; an exception it raises is logged and the run
    goes on. Every line has been delivered when :meth:`run` or :meth:`wait` returns a result.

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
        guard: GroupGuard | None = None,
    ) -> None:
        if not argv:
            raise ValueError("argv must name a program")
        self._argv = list(argv)
        # The task's $PWD is its working directory (else a program that trusts $PWD over
        # getcwd, as Blender does, resolves relative paths against the worker's).
        if cwd is not None and env.get("PWD") != cwd:
            env = {**env, "PWD": cwd}
        self._env = env
        self._guard = guard
        self._cwd = cwd
        self._on_line = on_line
        self._max_runtime_s = max_runtime_s
        self._grace_s = grace_s
        self._drain_timeout_s = drain_timeout_s

        self._lock = threading.Lock()  # guards the state below and every signal sent
        self._started = False
        self._pid: int | None = None  # the child's, also its process group's
        self._exited = False  # the child has exited: no more signals to its group
        self._stop_reason: Literal["canceled", "timed_out"] | None = None
        self._killer: threading.Timer | None = None  # a stopped run's SIGKILL after the grace
        self._pipes: dict[int, Stream] = {}
        self._pidfd = -1
        self._exit_seen = False  # only where there is no pidfd: the waiter says so
        self._reaped_status: tuple[int, int | None] | None = None  # (status, peak RSS) reaped early
        self._cpu_s: float | None = None  # the reaped child's CPU time (user + system)
        self._watcher: threading.Thread | None = None  # start(): the thread that watches
        self._waiter: threading.Thread | None = None  # only without pidfd: waits for the exit
        self._started_at = 0.0
        self._result: ProcessResult | None = None
        self._done: threading.Event | None = None  # start(): set once the result is

    @property
    def pid(self) -> int | None:
        """The process id (also its process group id) once started; None before or on error."""
        return self._pid

    def run(self, *, on_spawn: Callable[[], None] | None = None) -> ProcessResult:
        """Start the process and watch it from the calling thread until it is over.

        ``on_spawn`` is called in this thread once the process exists, before it is watched
        (so a cancel that came before the spawn, a no-op then, can be repeated)."""
        if self._spawn():
            if on_spawn is not None:
                on_spawn()
            self._watch()
        assert self._result is not None
        return self._result

    def start(self) -> None:
        """Spawn the process and watch it from a new thread; :meth:`wait` for the result. A spawn
        failure becomes the result; it is never raised."""
        self._done = threading.Event()
        if self._spawn():
            self._watcher = threading.Thread(
                target=self._watch, name="thresher-process", daemon=True
            )
            self._watcher.start()

    def cancel(self) -> None:
        """SIGTERM the process group, SIGKILL it after ``grace_s``.

        Thread-safe and idempotent; a no-op before start and after the process has exited.
        """
        self._stop("canceled")

    def wait(self, timeout: float | None = None) -> ProcessResult | None:
        """Block until the run is over and every line delivered; None if ``timeout`` passes."""
        if not self._started or self._done is None:
            raise RuntimeError("wait() before start()")
        if not self._done.wait(timeout):
            return None
        watcher = self._watcher
        if watcher is not None and watcher is not threading.current_thread():
            watcher.join()  # it has set the result; let it end, so no thread outlives the run
        return self._result

    # -- spawning ---------------------------------------------------------------------------

    def _spawn(self) -> bool:
        """Start the process; False (and the result set) when it could not be started."""
        with self._lock:
            if self._started:
                raise RuntimeError("a ProcessRunner runs once")
            self._started = True
            self._started_at = time.monotonic()
            fds: list[int] = []
            try:
                # The pipes exist before the process, so running out of fds is a spawn failure
                # rather than an orphaned process.
                out_r, out_w = os.pipe()
                fds += (out_r, out_w)
                err_r, err_w = os.pipe()
                fds += (err_r, err_w)
                pid = spawn(
                    self._argv,
                    env=self._env,
                    cwd=self._cwd,
                    stdin=_devnull(),
                    stdout=out_w,
                    stderr=err_w,
                )
            except (OSError, ValueError) as exc:
                for fd in fds[0::2]:  # the write ends are closed below
                    os.close(fd)
                self._finish_unstarted(spawn_error(exc, program=self._argv[0], cwd=self._cwd))
                return False
            finally:
                for fd in fds[1::2]:  # the write ends are the child's now
                    os.close(fd)
            self._pid = pid
            if self._guard is not None:
                self._guard.enter(pid)
            self._pipes = {out_r: "stdout", err_r: "stderr"}
            try:
                self._pidfd = os.pidfd_open(pid)
            except (AttributeError, OSError):  # pragma: no cover - not Linux 5.3+
                self._waiter = threading.Thread(
                    target=self._wait_exit, name="thresher-process-exit", daemon=True
                )
                self._waiter.start()
        return True

    def _wait_exit(self) -> None:  # pragma: no cover - only without pidfd
        """Where there is no pidfd: wait for the child's exit in this thread; the watch sees it
        within ``_NO_PIDFD_POLL_MS``."""
        assert self._pid is not None
        with contextlib.suppress(ChildProcessError):
            if _CAN_WAIT_UNREAPED:
                os.waitid(os.P_PID, self._pid, os.WEXITED | os.WNOWAIT)
            else:
                _, status, usage = os.wait4(self._pid, 0)
                self._reaped_status = (status, task_peak_rss(usage))
        self._exit_seen = True

    # -- watching ---------------------------------------------------------------------------

    def _watch(self) -> None:
        """Read the pipes, keep the deadlines, reap the child; then set the result."""
        pid = self._pid
        assert pid is not None
        splitters = {fd: LineSplitter() for fd in self._pipes}
        poller = select.poll()
        for fd in (*self._pipes, self._pidfd):
            if fd >= 0:
                poller.register(fd, select.POLLIN)
        open_pipes = set(self._pipes)
        self._memory = TaskMemory(pid)
        status: int | None = None
        peak_rss: int | None = None
        duration = 0.0
        exited = False
        try:
            self._read_until_exit(poller, open_pipes, splitters)
            exited = True
            status, peak_rss = self._reap(pid)
            duration = time.monotonic() - self._started_at
            drain_deadline = time.monotonic() + self._drain_timeout_s
            self._drain(poller, open_pipes, splitters, deadline=drain_deadline)
        finally:
            if not exited:  # only a bug gets here: leave no process behind
                with self._lock:
                    self._signal_group(signals.SIGKILL)
                status, peak_rss = self._reap(pid)
                duration = time.monotonic() - self._started_at
            for fd in open_pipes:
                self._deliver(self._pipes[fd], splitters[fd].flush())
            self._close_fds()
            self._finish(status, peak_of(self._memory.peak, peak_rss), duration)

    def _read_until_exit(
        self, poller: select.poll, open_pipes: set[int], splitters: dict[int, LineSplitter]
    ) -> None:
        """Deliver output until the direct child has exited; stop it once ``max_runtime_s``
        has passed."""
        runtime_deadline = (
            self._started_at + self._max_runtime_s if self._max_runtime_s is not None else None
        )
        while True:
            now = time.monotonic()
            if runtime_deadline is not None and now >= runtime_deadline:
                runtime_deadline = None
                self._stop("timed_out")
            if self._memory.due_in(now) == 0:
                self._memory.sample(now)
            sample_at = now + self._memory.due_in(now)
            deadline = sample_at if runtime_deadline is None else min(sample_at, runtime_deadline)
            timeout_ms = _poll_timeout_ms(deadline, now)
            if self._pidfd < 0:  # pragma: no cover - only without pidfd
                timeout_ms = min(timeout_ms or _NO_PIDFD_POLL_MS, _NO_PIDFD_POLL_MS)
            if self._take_events(poller.poll(timeout_ms), poller, open_pipes, splitters):
                return
            if self._exit_seen:  # pragma: no cover - only without pidfd
                return

    def _drain(
        self,
        poller: select.poll,
        open_pipes: set[int],
        splitters: dict[int, LineSplitter],
        *,
        deadline: float,
    ) -> None:
        """The child has exited: deliver what is left in the pipes until they are closed, or
        until ``deadline`` (something outside the group still holds one: it is abandoned)."""
        while open_pipes:
            now = time.monotonic()
            if now >= deadline:
                return
            events = poller.poll(_poll_timeout_ms(deadline, now))
            self._take_events(events, poller, open_pipes, splitters)

    def _take_events(
        self,
        events: list[tuple[int, int]],
        poller: select.poll,
        open_pipes: set[int],
        splitters: dict[int, LineSplitter],
    ) -> bool:
        """Read the pipes that polled readable, closing those at their end; True when the
        pidfd polled readable, i.e. the direct child has exited."""
        exited = False
        for fd, _ in events:
            if fd in open_pipes:
                data = os.read(fd, _READ_SIZE)
                if data:
                    self._deliver(self._pipes[fd], splitters[fd].feed(data))
                    continue
                open_pipes.discard(fd)
                poller.unregister(fd)
                self._deliver(self._pipes[fd], splitters[fd].flush())
            elif fd == self._pidfd:
                poller.unregister(fd)
                exited = True
        return exited

    def _reap(self, pid: int) -> tuple[int | None, int | None]:
        """The child has exited (it is a zombie until this reaps it): kill what is left of its
        group, then reap it. Returns (wait status or None when it was lost, peak RSS)."""
        if _CAN_WAIT_UNREAPED:
            with self._lock:
                self._signal_group(signals.SIGKILL)  # what the task left behind ends with it
                self._exited = True  # no timer may signal from now on
            if self._guard is not None:
                self._guard.leave(pid)
        status: int | None = None
        peak_rss: int | None = None
        if self._reaped_status is not None:  # pragma: no cover - only without waitid
            status, peak_rss = self._reaped_status
        else:
            try:
                _, status, usage = os.wait4(pid, 0)
                peak_rss = task_peak_rss(usage)
                self._cpu_s = usage.ru_utime + usage.ru_stime
            except ChildProcessError:
                status = None  # reaped elsewhere (SIGCHLD ignored in this process)
        with self._lock:
            if not _CAN_WAIT_UNREAPED:  # pragma: no cover
                self._signal_group(signals.SIGKILL)
            self._exited = True
        if self._guard is not None and not _CAN_WAIT_UNREAPED:  # pragma: no cover
            self._guard.leave(pid)
        return status, peak_rss

    def _deliver(self, stream: Stream, lines: list[str]) -> None:
        for line in lines:
            try:
                self._on_line(stream, line)
            except Exception:
                logger.exception("on_line failed for a %s line of %r", stream, self._argv[0])

    def _close_fds(self) -> None:
        if self._waiter is not None:  # pragma: no cover - only without pidfd
            self._waiter.join()  # done: the child was reaped
        if self._killer is not None:  # the group is gone: its SIGKILL is not needed
            self._killer.cancel()
            self._killer.join()
        with self._lock:
            self._exited = True  # nothing may signal the group from now on
            for fd in self._pipes:
                os.close(fd)
            if self._pidfd >= 0:
                os.close(self._pidfd)
                self._pidfd = -1

    # -- stopping ---------------------------------------------------------------------------

    def _stop(self, reason: Literal["canceled", "timed_out"]) -> None:
        with self._lock:
            if self._pid is None or self._exited or self._stop_reason is not None:
                return
            self._stop_reason = reason
            self._signal_group(signals.SIGTERM)
            self._killer = threading.Timer(self._grace_s, self._kill)
            self._killer.name = "thresher-process-kill"
            self._killer.daemon = True
            self._killer.start()

    def _kill(self) -> None:
        with self._lock:
            if not self._exited:
                self._signal_group(signals.SIGKILL)

    def _signal_group(self, sig: int) -> None:
        # Callers hold self._lock and have checked the leader is not yet reaped, so the group id
        # cannot have been reused by an unrelated process.
        assert self._pid is not None
        # ESRCH: the group is gone already; EPERM: only members we may not signal are left.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._pid, sig)

    # -- results ----------------------------------------------------------------------------

    def _finish(self, status: int | None, peak_rss: int | None, duration: float) -> None:
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
            cpu_s=self._cpu_s,
            canceled=self._stop_reason == "canceled",
            timed_out=self._stop_reason == "timed_out",
            error=error,
        )
        if self._done is not None:
            self._done.set()

    def _finish_unstarted(self, error: str) -> None:
        self._result = ProcessResult(
            exit_code=None,
            signal=None,
            peak_rss_bytes=None,
            duration_s=time.monotonic() - self._started_at,
            canceled=False,
            timed_out=False,
            error=error,
        )
        if self._done is not None:
            self._done.set()


_devnull_fd = -1
_devnull_lock = threading.Lock()


def _devnull() -> int:
    """One /dev/null descriptor for every run's stdin, opened on first use and kept."""
    global _devnull_fd
    if _devnull_fd < 0:
        with _devnull_lock:
            if _devnull_fd < 0:
                _devnull_fd = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
    return _devnull_fd


def _poll_timeout_ms(deadline: float | None, now: float) -> int | None:
    """poll()'s timeout until ``deadline`` (None: no deadline, wait as long as it takes)."""
    return None if deadline is None else max(0, math.ceil((deadline - now) * 1000))
