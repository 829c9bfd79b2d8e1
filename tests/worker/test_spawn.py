"""`worker.spawn`: what a task's process is started with, on real processes, on both paths
(CPython's fork_exec called directly, and Popen where that call is refused)."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from thresher.worker import spawn as spawning


@pytest.fixture(params=["fork_exec", "popen"])
def path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Each test runs on both ways a spawn can go."""
    if request.param == "popen":
        monkeypatch.setattr(spawning, "_fork_exec_fits", False)
    return str(request.param)


def run(argv: list[str], *, env: dict[str, str], cwd: str | None = None) -> tuple[int, str]:
    """Spawn, read its stdout to the end, reap it: (exit code, stdout)."""
    out_r, out_w = os.pipe()
    devnull = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
    try:
        pid = spawning.spawn(argv, env=env, cwd=cwd, stdin=devnull, stdout=out_w, stderr=out_w)
    finally:
        os.close(out_w)
        os.close(devnull)
    chunks = []
    while chunk := os.read(out_r, 65536):
        chunks.append(chunk)
    os.close(out_r)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), b"".join(chunks).decode()


SH_ENV = {"PATH": "/usr/bin:/bin"}


def test_the_child_gets_exactly_the_environment_and_working_directory(
    path: str, tmp_path: Path
) -> None:
    code, out = run(["/bin/sh", "-c", "env; pwd -P"], env={**SH_ENV, "A": "1=2"}, cwd=str(tmp_path))
    assert code == 0
    lines = out.splitlines()
    assert "A=1=2" in lines
    assert "PATH=/usr/bin:/bin" in lines
    assert "HOME" not in out  # nothing of the worker's own environment
    assert lines[-1] == str(tmp_path.resolve())


def test_a_program_without_a_slash_is_found_on_the_childs_path(path: str, tmp_path: Path) -> None:
    script = tmp_path / "thresher-spawn-probe"
    script.write_text("#!/bin/sh\necho found\n")
    script.chmod(0o755)
    code, out = run(["thresher-spawn-probe"], env={"PATH": f"/nonexistent:{tmp_path}"})
    assert (code, out) == (0, "found\n")


def test_the_child_leads_a_new_session_and_inherits_no_other_descriptor(path: str) -> None:
    kept_r, kept_w = os.pipe()
    os.set_inheritable(kept_w, True)  # even an inheritable descriptor is closed in the child
    script = f"echo $$; cat /proc/$$/stat; [ -e /proc/$$/fd/{kept_w} ] && echo open || echo closed"
    try:
        code, out = run(["/bin/sh", "-c", script], env=SH_ENV)
    finally:
        os.close(kept_r)
        os.close(kept_w)
    assert code == 0
    pid, stat, kept = out.splitlines()
    session = stat.rsplit(")", 1)[1].split()[3]  # after the name: state, ppid, pgrp, session
    assert session == pid
    assert kept == "closed"


def test_signals_python_ignores_are_back_to_their_defaults_in_the_child(path: str) -> None:
    assert signal.getsignal(signal.SIGPIPE) == signal.SIG_IGN  # as Python starts
    code, out = run(["/bin/sh", "-c", "grep SigIgn /proc/$$/status"], env=SH_ENV)
    assert code == 0
    ignored = int(out.split()[1], 16)
    assert not ignored & (1 << (signal.SIGPIPE - 1))


def test_a_missing_program_raises_file_not_found_naming_it(path: str) -> None:
    with pytest.raises(FileNotFoundError) as raised:
        run(["thresher-no-such-program"], env=SH_ENV)
    assert raised.value.filename == "thresher-no-such-program"


def test_a_missing_working_directory_raises_naming_it(path: str, tmp_path: Path) -> None:
    missing = str(tmp_path / "missing")
    with pytest.raises(FileNotFoundError) as raised:
        run(["/bin/true"], env=SH_ENV, cwd=missing)
    assert raised.value.filename == missing


def test_an_illegal_variable_name_raises_value_error(path: str) -> None:
    with pytest.raises(ValueError, match="illegal environment variable name"):
        run(["/bin/true"], env={"A=B": "1"})


def test_a_refused_fork_exec_call_falls_back_to_popen_for_good(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def refuse(*args: object) -> int:
        raise TypeError("fork_exec() takes exactly 24 arguments")

    monkeypatch.setattr(spawning, "_fork_exec", refuse)
    monkeypatch.setattr(spawning, "_fork_exec_fits", True)
    assert run(["/bin/sh", "-c", "echo ok"], env=SH_ENV) == (0, "ok\n")
    assert spawning._fork_exec_fits is False


def test_fork_exec_is_called_directly_only_on_the_cpythons_whose_arguments_are_known() -> None:
    # A later CPython may keep the call's length and change its order: not refused, wrong.
    assert spawning.fork_exec_known((3, 11, 7))
    assert spawning.fork_exec_known((3, 13))
    assert not spawning.fork_exec_known((3, 14, 0))
    assert not spawning.fork_exec_known((3, 10))
