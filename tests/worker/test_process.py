"""The process runner, on real subprocesses (sh scripts and Python one-liners)."""

from __future__ import annotations

import contextlib
import logging
import os
import resource
import signal
import stat
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from thresher.testing import wait_until
from thresher.worker.process import (
    MAX_LINE_BYTES,
    TRUNCATED_SUFFIX,
    LineSplitter,
    ProcessResult,
    ProcessRunner,
)

MiB = 1024 * 1024
DEADLINE_S = 10.0


class Lines:
    """Collects on_line calls; lets a test wait for a line without sleeping."""

    def __init__(self) -> None:
        self._seen: list[tuple[str, str]] = []
        self._changed = threading.Condition()

    def __call__(self, stream: str, text: str) -> None:
        with self._changed:
            self._seen.append((stream, text))
            self._changed.notify_all()

    def of(self, stream: str) -> list[str]:
        with self._changed:
            return [text for s, text in self._seen if s == stream]

    @property
    def stdout(self) -> list[str]:
        return self.of("stdout")

    @property
    def stderr(self) -> list[str]:
        return self.of("stderr")

    def wait_for(self, stream: str, count: int = 1) -> list[str]:
        with self._changed:
            ok = self._changed.wait_for(lambda: len(self.of(stream)) >= count, DEADLINE_S)
        assert ok, f"no {count} {stream} lines; got {self._seen}"
        return self.of(stream)


def shell_env() -> dict[str, str]:
    return {"PATH": os.environ.get("PATH", os.defpath)}


def runner(
    argv: list[str],
    lines: Lines,
    *,
    env: Mapping[str, str] | None = None,
    cwd: str | None = None,
    **limits: Any,
) -> ProcessRunner:
    """A runner whose whole environment is the shell's PATH unless `env` says otherwise."""
    env = shell_env() if env is None else env
    return ProcessRunner(argv, env=env, cwd=cwd, on_line=lines, **limits)


def sh(script: str, **options: Any) -> tuple[ProcessResult, Lines]:
    lines = Lines()
    return runner(["/bin/sh", "-c", script], lines, **options).run(), lines


def python(code: str, **options: Any) -> tuple[ProcessResult, Lines]:
    lines = Lines()
    return runner([sys.executable, "-c", code], lines, **options).run(), lines


def gone(pid: int) -> bool:
    """True once pid has exited (a zombie nobody reaped counts as gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return True
    return fields[0] in ("Z", "X")


@contextlib.contextmanager
def killed_afterwards(pids: list[int]) -> Iterator[None]:
    try:
        yield
    finally:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


# -- exit codes and output ---------------------------------------------------------------------


def test_exit_code_zero_succeeds() -> None:
    result, lines = sh("echo hello")

    assert result.exit_code == 0
    assert result.signal is None
    assert result.error is None
    assert result.succeeded
    assert lines.stdout == ["hello"]
    assert result.duration_s >= 0


def test_nonzero_exit_code_is_a_failed_result() -> None:
    result, _ = sh("exit 3")

    assert result.exit_code == 3
    assert not result.succeeded
    assert not result.canceled
    assert not result.timed_out


def test_stdout_and_stderr_are_separate_and_ordered_per_stream() -> None:
    script = 'i=0; while [ $i -lt 300 ]; do echo "out $i"; echo "err $i" >&2; i=$((i+1)); done'

    result, lines = sh(script)

    assert result.succeeded
    assert lines.stdout == [f"out {i}" for i in range(300)]
    assert lines.stderr == [f"err {i}" for i in range(300)]


def test_carriage_return_progress_is_split_into_lines() -> None:
    result, lines = sh(r"printf 'frame 1\rframe 2\rframe 3\r\ndone\r\n'")

    assert result.succeeded
    assert lines.stdout == ["frame 1", "frame 2", "frame 3", "done"]


def test_last_line_without_newline_is_delivered() -> None:
    _, lines = sh("printf 'first\\nno newline'; printf 'tail' >&2")

    assert lines.stdout == ["first", "no newline"]
    assert lines.stderr == ["tail"]


def test_blank_lines_are_kept_but_gaps_between_progress_updates_are_not() -> None:
    _, lines = sh(r"printf 'a\n\nb\r\rc\r\n\r\nd\n'")

    assert lines.stdout == ["a", "", "b", "c", "", "d"]


def test_huge_line_is_truncated_and_the_next_line_survives() -> None:
    result, lines = python("import sys; sys.stdout.write('x' * 300000 + '\\nafter\\n')")

    assert result.succeeded
    assert lines.stdout == ["x" * MAX_LINE_BYTES + TRUNCATED_SUFFIX, "after"]


def test_invalid_utf8_is_replaced() -> None:
    _, lines = sh(r"printf 'caf\303\251 \377\n'")

    assert lines.stdout == ["café \ufffd"]


def test_a_failing_on_line_callback_is_logged_and_the_run_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    seen: list[str] = []

    def on_line(stream: str, text: str) -> None:
        seen.append(text)
        if text == "boom":
            raise RuntimeError("callback bug")

    with caplog.at_level(logging.ERROR, logger="thresher.worker.process"):
        result = ProcessRunner(
            ["/bin/sh", "-c", "echo boom; echo after"], env={}, cwd=None, on_line=on_line
        ).run()

    assert result.succeeded
    assert seen == ["boom", "after"]
    assert "on_line failed" in caplog.text


# -- the line splitter on its own ---------------------------------------------------------------


def test_line_splitter_gives_the_same_lines_however_the_stream_is_chunked() -> None:
    stream = b"a\r\n\r\nb\rc\r\rd\n\ne\r\n"
    whole = LineSplitter()
    expected = whole.feed(stream) + whole.flush()
    assert expected == ["a", "", "b", "c", "d", "", "e"]

    for i in range(len(stream) + 1):
        for j in range(i, len(stream) + 1):
            splitter = LineSplitter()
            pieces = (stream[:i], stream[i:j], stream[j:])
            got = [line for piece in pieces for line in splitter.feed(piece)] + splitter.flush()
            assert got == expected, (i, j)


def test_line_splitter_truncates_without_cutting_a_character_in_half() -> None:
    splitter = LineSplitter(max_line_bytes=4)

    lines = splitter.feed("abcé-rest of the line\nnext".encode()) + splitter.flush()

    assert lines == ["abc" + TRUNCATED_SUFFIX, "next"]


def test_line_splitter_truncates_a_line_arriving_in_pieces() -> None:
    splitter = LineSplitter(max_line_bytes=5)

    lines = [line for piece in (b"abc", b"defgh", b"ij\r", b"\nk") for line in splitter.feed(piece)]

    assert lines == ["abcde" + TRUNCATED_SUFFIX]
    assert splitter.flush() == ["k"]


# -- environment, directory, spawn failures -----------------------------------------------------


def test_env_is_the_whole_environment() -> None:
    lines = Lines()

    result = runner(["/usr/bin/env"], lines, env={"THRESHER_ONLY": "1"}).run()

    assert result.succeeded
    assert lines.stdout == ["THRESHER_ONLY=1"]


def test_cwd_is_respected(tmp_path: Path) -> None:
    result, lines = python("import os; print(os.getcwd())", cwd=str(tmp_path))

    assert result.succeeded
    assert lines.stdout == [str(tmp_path.resolve())]


def test_missing_executable_is_a_result_not_an_exception() -> None:
    lines = Lines()
    process = runner(["thresher-no-such-program-blendr"], lines)

    result = process.run()

    assert result.error == "executable not found: 'thresher-no-such-program-blendr'"
    assert result.exit_code is None
    assert not result.succeeded
    assert process.pid is None
    assert lines.stdout == []


def test_missing_cwd_is_a_result_not_an_exception(tmp_path: Path) -> None:
    missing = str(tmp_path / "nowhere")

    result, _ = sh("echo never", cwd=missing)

    assert result.error == f"working directory does not exist: {missing!r}"
    assert result.exit_code is None
    assert not result.succeeded


def test_file_without_execute_permission_is_a_result(tmp_path: Path) -> None:
    script = tmp_path / "render.sh"
    script.write_text("#!/bin/sh\necho never\n")
    script.chmod(stat.S_IRUSR | stat.S_IWUSR)

    result = runner([str(script)], Lines()).run()

    assert result.error == f"permission denied: {str(script)!r}"
    assert result.exit_code is None


def test_empty_argv_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="argv"):
        runner([], Lines())


def test_a_runner_runs_once() -> None:
    process = runner(["true"], Lines())
    process.run()

    with pytest.raises(RuntimeError, match="once"):
        process.start()


# -- memory -----------------------------------------------------------------------------------


def test_peak_rss_of_a_big_allocation() -> None:
    # Above this process's own peak (a whole test session can be large): only then is the
    # figure known to be the task's (see task_peak_rss).
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    size = max(400 * MiB, own + 200 * MiB)
    result, _ = python(f"b = bytearray({size})")

    assert result.succeeded
    assert result.peak_rss_bytes is not None
    assert result.peak_rss_bytes > size - 50 * MiB


def test_peak_rss_of_true_is_not_the_workers() -> None:
    """Linux charges a child at its exec with the peak RSS of the process it was spawned from
    (here pytest's, a worker's in a worker): that figure is never reported as the task's."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    assert own > 20 * MiB  # this process is big enough for the difference to show
    result = runner(["true"], Lines()).run()

    assert result.succeeded
    assert result.peak_rss_bytes is None or result.peak_rss_bytes < own // 4


def test_peak_rss_of_a_task_below_the_workers_own_is_sampled(tmp_path: Path) -> None:
    """Below the worker's own peak the reaped figure says nothing: the task's processes are
    sampled while it runs instead. The task (a shell and the python it starts) holds 64 MiB
    until the test has seen a sample of it, then ends."""
    size = 64 * MiB
    fifo = tmp_path / "release"
    os.mkfifo(fifo)
    code = (
        f"b = bytearray({size}); b[::4096] = b'x' * len(b[::4096]); "
        f"print('held', flush=True); open({str(fifo)!r}).read()"
    )
    lines = Lines()
    task = runner(["sh", "-c", f'"{sys.executable}" -c "$0"; true', code], lines)
    task.start()
    lines.wait_for("stdout")
    wait_until(
        lambda: (task._memory.peak or 0) > size, timeout=DEADLINE_S, what="a sample of 64 MiB"
    )
    with open(fifo, "w"):
        pass
    result = task.wait(timeout=DEADLINE_S)

    assert result is not None
    assert result.succeeded
    assert result.peak_rss_bytes is not None
    assert size < result.peak_rss_bytes < size + 60 * MiB  # python's own few MiB besides


def test_a_task_sees_its_working_directory_in_pwd(tmp_path: Path) -> None:
    lines = Lines()
    env = {"PATH": os.environ["PATH"], "PWD": os.getcwd()}  # the worker's, as inherited
    result = ProcessRunner(["sh", "-c", 'echo "$PWD"'], env=env, cwd=str(tmp_path), on_line=lines)
    assert result.run().succeeded
    assert lines.stdout == [str(tmp_path)]


# -- cancel and max run time --------------------------------------------------------------------


def test_cancel_of_a_process_that_exits_cleanly_on_sigterm() -> None:
    lines = Lines()
    process = runner(
        ["/bin/sh", "-c", "trap 'echo bye; exit 0' TERM; sleep 1000 & echo ready; wait"], lines
    )
    process.start()
    lines.wait_for("stdout")

    process.cancel()
    result = process.wait(DEADLINE_S)

    assert result is not None
    assert result.canceled
    assert result.exit_code == 0
    assert result.signal is None
    assert not result.succeeded
    assert lines.stdout == ["ready", "bye"]


def test_cancel_kills_a_group_that_ignores_sigterm_after_the_grace() -> None:
    lines = Lines()
    script = "trap '' TERM; sleep 1000 & echo $!; wait"
    process = runner(["/bin/sh", "-c", script], lines, grace_s=0.5)
    process.start()
    grandchild = int(lines.wait_for("stdout")[0])

    with killed_afterwards([grandchild]):
        process.cancel()
        result = process.wait(DEADLINE_S)

        assert result is not None
        assert result.canceled
        assert result.signal == signal.SIGKILL
        assert result.exit_code is None
        assert result.duration_s >= 0.5
        wait_until(
            lambda: gone(grandchild), timeout=DEADLINE_S, what=f"grandchild {grandchild} to exit"
        )


def test_max_runtime_stops_the_process_as_timed_out() -> None:
    lines = Lines()

    result = runner(["sleep", "1000"], lines, max_runtime_s=0.2, grace_s=5).run()

    assert result.timed_out
    assert not result.canceled
    assert result.signal == signal.SIGTERM
    assert not result.succeeded
    assert 0.2 <= result.duration_s < 5


def test_wait_with_a_timeout_returns_none_while_running() -> None:
    process = runner(["sleep", "1000"], Lines())
    process.start()

    assert process.wait(0.05) is None
    process.cancel()
    result = process.wait(DEADLINE_S)

    assert result is not None
    assert result.canceled


def test_cancel_is_idempotent_and_safe_from_many_threads() -> None:
    process = runner(["sleep", "1000"], Lines(), grace_s=5)
    process.start()
    go = threading.Barrier(8)

    def cancel() -> None:
        go.wait()
        process.cancel()

    threads = [threading.Thread(target=cancel) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    result = process.wait(DEADLINE_S)

    assert result is not None
    assert result.canceled
    assert result.signal == signal.SIGTERM
    process.cancel()  # after exit: nothing happens
    assert process.wait(0) == result


def test_cancel_before_start_is_a_no_op() -> None:
    process = runner(["true"], Lines())

    process.cancel()
    result = process.run()

    assert result.succeeded
    assert not result.canceled


def test_wait_before_start_is_a_programming_error() -> None:
    with pytest.raises(RuntimeError, match="before start"):
        runner(["true"], Lines()).wait(0)


# -- leftovers ----------------------------------------------------------------------------------


def test_background_child_holding_stdout_does_not_hang_wait() -> None:
    lines = Lines()
    # A long drain timeout: only killing the group, not waiting it out, can end this quickly.
    process = runner(["/bin/sh", "-c", "sleep 1000 & echo $!"], lines, drain_timeout_s=60)

    started = time.monotonic()
    result = process.run()
    background = int(lines.stdout[0])

    with killed_afterwards([background]):
        assert result.succeeded
        assert time.monotonic() - started < DEADLINE_S
        wait_until(
            lambda: gone(background), timeout=DEADLINE_S, what=f"background {background} to exit"
        )


ESCAPE = """
import os, sys, time
r, w = os.pipe()
if os.fork() == 0:
    os.setsid()
    print(os.getpid(), flush=True)
    os.write(w, b"x")
    time.sleep(1000)
    os._exit(0)
os.read(r, 1)
print("parent done", flush=True)
"""


def test_process_that_left_the_group_but_holds_stdout_is_abandoned_after_the_drain_timeout() -> (
    None
):
    lines = Lines()
    process = runner([sys.executable, "-c", ESCAPE], lines, drain_timeout_s=0.2)

    started = time.monotonic()
    result = process.run()
    escaped = int(lines.stdout[0])

    with killed_afterwards([escaped]):
        assert result.succeeded
        assert lines.stdout[1:] == ["parent done"]
        assert time.monotonic() - started < 5


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_no_threads_or_fds_are_left_behind(tmp_path: Path) -> None:
    runner(["true"], Lines()).run()  # let one-time imports and caches settle
    fds_before, threads_before = open_fds(), threading.active_count()

    sh("echo out; echo err >&2")
    sh("sleep 1000 & echo $!")
    sh("exit 1", cwd=str(tmp_path / "missing"))
    runner(["no-such-program-thresher"], Lines()).run()
    runner(["sleep", "1000"], Lines(), max_runtime_s=0.05, grace_s=0.05).run()
    process = runner(["sleep", "1000"], Lines())
    process.start()
    process.cancel()
    process.wait(DEADLINE_S)

    assert open_fds() == fds_before
    assert threading.active_count() == threads_before


# -- one watching thread: the runner's own ------------------------------------------------------


def test_run_starts_no_thread_and_delivers_lines_in_the_calling_thread() -> None:
    threads_before = threading.active_count()
    seen: list[tuple[str, int, int]] = []

    def on_line(stream: str, text: str) -> None:
        seen.append((text, threading.get_ident(), threading.active_count()))

    result = ProcessRunner(
        ["/bin/sh", "-c", "echo out; echo err >&2"], env=shell_env(), cwd=None, on_line=on_line
    ).run()

    assert result.succeeded
    assert sorted(text for text, _, _ in seen) == ["err", "out"]
    assert {ident for _, ident, _ in seen} == {threading.get_ident()}
    assert {count for _, _, count in seen} == {threads_before}


def test_interleaved_streams_keep_their_own_order_and_lose_nothing() -> None:
    code = (
        "import sys\n"
        "for i in range(20000):\n"
        "    (sys.stdout if i % 3 else sys.stderr).write(f'line {i}\\n')\n"
        "    if i % 1000 == 0: sys.stdout.flush(); sys.stderr.flush()\n"
    )

    result, lines = python(code)

    assert result.succeeded
    assert lines.stdout == [f"line {i}" for i in range(20000) if i % 3]
    assert lines.stderr == [f"line {i}" for i in range(20000) if not i % 3]


def test_huge_output_on_both_streams_does_not_block_the_child() -> None:
    # 8 MiB on each stream, far beyond a pipe's buffer: the child finishes only if both pipes
    # are drained while it writes.
    code = (
        "import sys\n"
        "row = 'y' * 1023 + '\\n'\n"
        "for _ in range(8192):\n"
        "    sys.stdout.write(row); sys.stderr.write(row)\n"
    )

    result, lines = python(code)

    assert result.succeeded
    assert len(lines.stdout) == len(lines.stderr) == 8192
    assert set(lines.stdout) == set(lines.stderr) == {"y" * 1023}


def test_progress_split_by_carriage_returns_across_reads() -> None:
    code = (
        "import sys\n"
        "for i in range(1, 101):\n"
        "    sys.stdout.write(f'progress {i}%\\r'); sys.stdout.flush()\n"
        "sys.stdout.write('\\ndone\\n')\n"
    )

    result, lines = python(code)

    assert result.succeeded
    assert lines.stdout == [f"progress {i}%" for i in range(1, 101)] + ["done"]


def test_a_child_that_closes_its_pipes_early_is_still_waited_for() -> None:
    lines = Lines()
    # The pipes reach end of file long before the exit; the exit status still counts.
    script = "echo bye; exec >&- 2>&-; sleep 0.3; exit 4"

    result = runner(["/bin/sh", "-c", script], lines).run()

    assert result.exit_code == 4
    assert result.duration_s >= 0.3
    assert lines.stdout == ["bye"]


def test_a_stop_reaches_a_child_that_closed_its_pipes() -> None:
    lines = Lines()
    script = "exec >&- 2>&-; exec sleep 1000"

    result = runner(["/bin/sh", "-c", script], lines, max_runtime_s=0.2, grace_s=5).run()

    assert result.timed_out
    assert result.signal == signal.SIGTERM


def test_a_grandchild_holding_the_pipe_is_killed_with_the_group_when_the_child_exits() -> None:
    lines = Lines()
    # The grandchild keeps stdout open and would print "late" after the child has exited.
    script = "(sleep 1000; echo late) & echo $!; exit 2"

    result = runner(["/bin/sh", "-c", script], lines, drain_timeout_s=60).run()
    grandchild = int(lines.stdout[0])

    with killed_afterwards([grandchild]):
        assert result.exit_code == 2
        wait_until(
            lambda: gone(grandchild), timeout=DEADLINE_S, what=f"grandchild {grandchild} to exit"
        )
        assert lines.stdout == [str(grandchild)]


def test_cancel_kills_the_whole_group_after_the_grace() -> None:
    lines = Lines()
    script = "trap '' TERM; (trap '' TERM; sleep 1000) & echo $!; sleep 1000"
    process = runner(["/bin/sh", "-c", script], lines, grace_s=0.2)
    process.start()
    grandchild = int(lines.wait_for("stdout")[0])

    with killed_afterwards([grandchild]):
        process.cancel()
        result = process.wait(DEADLINE_S)

        assert result is not None
        assert result.canceled
        assert result.signal == signal.SIGKILL
        wait_until(
            lambda: gone(grandchild), timeout=DEADLINE_S, what=f"grandchild {grandchild} to exit"
        )


def test_on_spawn_runs_once_the_process_exists_and_may_cancel_it() -> None:
    seen: list[int | None] = []
    process = runner(["sleep", "1000"], Lines(), grace_s=5)

    def spawned() -> None:
        seen.append(process.pid)
        process.cancel()

    result = process.run(on_spawn=spawned)

    assert seen == [process.pid]
    assert seen[0] is not None
    assert result.canceled
    assert result.signal == signal.SIGTERM


def test_on_spawn_is_not_called_when_the_spawn_fails() -> None:
    seen: list[str] = []

    result = runner(["no-such-program-thresher"], Lines()).run(on_spawn=lambda: seen.append("x"))

    assert result.error is not None
    assert seen == []


def test_many_runs_from_one_thread_leave_no_fds_behind() -> None:
    runner(["true"], Lines()).run()
    fds_before = open_fds()

    for i in range(50):
        assert runner(["/bin/sh", "-c", f"echo {i}; exit 0"], Lines()).run().succeeded

    assert open_fds() == fds_before
