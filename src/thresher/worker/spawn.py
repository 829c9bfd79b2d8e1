"""Start a task's process: what ``subprocess.Popen`` does for the runner, with less Python.

A lane spawns thousands of short tasks; ``Popen`` spent about 230 µs of the worker's CPU per
spawn here, half of it Python around the one C call that forks and execs
(``_posixsubprocess.fork_exec``, ``vfork`` on Linux): the environment encoded item by item (56 µs
for 36 variables on the benchmark's VM), the Popen object, the executable's list. This module
makes that same call with the encoded ``KEY=value`` items memoised (a job's tasks share all but a
few of their variables) and nothing else around it: 110 µs per spawn (docs/performance.md,
"h-worker", 2026-12-07). ``posix_spawn`` was measured and is slower (glibc maps a stack for
its child on every call); ``os.posix_spawn`` cannot set the working directory.

What the child gets is what ``Popen(argv, stdin=, stdout=, stderr=, env=, cwd=, close_fds=True,
start_new_session=True)`` gives it, by the same C call with the same arguments: the three
descriptors as 0, 1 and 2 and every other one closed, a new session, the working directory,
exactly ``env``, the signals Python ignores back to their defaults; a program named without a
slash is looked up on ``env``'s ``PATH``. A failure raises what ``Popen`` raises: ``OSError``
with ``filename`` the working directory when ``chdir`` failed, else the program; ``ValueError``
for a NUL byte or an ``=`` in a variable's name.

``fork_exec`` is CPython's private function (the same 23 arguments in 3.11 to 3.13; any other
CPython uses ``Popen``); where its call is refused (``TypeError``: another signature, raised
before any fork) or a descriptor below 3 is involved, :func:`spawn` uses ``Popen`` itself,
from then on for the former.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

__all__ = ["spawn"]

_fork_exec: Callable[..., int] | None
try:  # its arguments are passed as Popen passes them, not as typeshed's stub has them
    _fork_exec = importlib.import_module("_posixsubprocess").fork_exec
except (ImportError, AttributeError):  # pragma: no cover - not POSIX
    _fork_exec = None

#: The CPythons whose ``fork_exec`` takes the arguments as `_fork_exec_args` passes them (read
#: in their ``subprocess.py``); any other uses ``Popen``: a signature that kept its length and
#: changed its order would not be refused, it would spawn something else.
_KNOWN_PYTHONS = ((3, 11), (3, 12), (3, 13))


def fork_exec_known(version: tuple[int, ...]) -> bool:
    """Whether this CPython version's ``fork_exec`` is called directly (else ``Popen``)."""
    return tuple(version[:2]) in _KNOWN_PYTHONS


# False once its call was refused: Popen from then on
_fork_exec_fits = _fork_exec is not None and fork_exec_known(
    (sys.version_info.major, sys.version_info.minor)
)
_ENCODED_KEPT = 4096  # KEY=value items memoised; the memo starts afresh past that
_encoded: dict[tuple[str, str], bytes] = {}


def spawn(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: str | None,
    stdin: int,
    stdout: int,
    stderr: int,
) -> int:
    """Start ``argv`` in a new session with the three descriptors as its 0, 1 and 2, every other
    one closed; return its pid. The caller reaps it (nothing else ever waits for it)."""
    global _fork_exec_fits
    if _fork_exec_fits and min(stdin, stdout, stderr) >= 3:
        try:
            pid = _spawn(argv, env=env, cwd=cwd, fds=(stdin, stdout, stderr))
        except TypeError:  # fork_exec's signature is not the one known here (nothing forked)
            _fork_exec_fits = False
        else:
            if pid is not None:
                return pid
    proc = subprocess.Popen(
        list(argv),
        stdin=stdin,
        stdout=stdout,
        stderr=stderr,
        env=env,
        cwd=cwd,
        close_fds=True,
        start_new_session=True,
    )
    proc.returncode = 0  # the caller reaps it: Popen must never wait for it (nor warn)
    return proc.pid


def _spawn(
    argv: Sequence[str], *, env: Mapping[str, str], cwd: str | None, fds: tuple[int, int, int]
) -> int | None:
    """The child's pid; None: leave it to Popen."""
    args = list(argv)
    sys.audit("subprocess.Popen", args[0], args, cwd, env)
    env_list = _env_list(env)
    program = os.fsencode(args[0])
    if os.path.dirname(program):
        executables: tuple[bytes, ...] = (program,)
    else:  # as Popen: each folder of the child's PATH, tried in turn by the child
        executables = tuple(
            os.path.join(os.fsencode(folder), program) for folder in os.get_exec_path(env)
        )
    err_r, err_w = os.pipe()  # closed on exec: data on it is the child's error before exec
    if err_w < 3:  # fork_exec needs it above the child's 0-2: Popen moves it, this does not
        os.close(err_r)
        os.close(err_w)
        return None
    try:
        try:
            assert _fork_exec is not None
            pid = _fork_exec(
                *_fork_exec_args(args, executables, cwd, env_list, fds, (err_r, err_w))
            )
        finally:
            os.close(err_w)
        data = bytearray()
        while part := os.read(err_r, 50_000):
            data += part
            if len(data) > 50_000:
                break
    finally:
        os.close(err_r)
    if data:
        _raise_child_error(pid, bytes(data), program=args[0], cwd=cwd)
    return pid


def _fork_exec_args(
    args: list[str],
    executables: tuple[bytes, ...],
    cwd: str | None,
    env_list: list[bytes],
    fds: tuple[int, int, int],
    err_pipe: tuple[int, int],
) -> tuple[Any, ...]:
    """fork_exec's arguments, in CPython 3.11-3.13's order, as ``Popen`` passes them for
    ``close_fds=True, start_new_session=True`` and the three descriptors."""
    stdin, stdout, stderr = fds
    err_r, err_w = err_pipe
    return (
        args,
        executables,
        True,  # close_fds
        (err_w,),  # the descriptors kept open
        cwd,
        env_list,
        stdin,
        -1,
        -1,
        stdout,
        -1,
        stderr,
        err_r,  # the child closes it
        err_w,
        True,  # restore_signals
        True,  # start_new_session
        -1,  # process_group
        None,  # gid
        None,  # extra groups
        None,  # uid
        -1,  # umask
        None,  # preexec_fn
        getattr(subprocess, "_USE_VFORK", True),
    )


def _env_list(env: Mapping[str, str]) -> list[bytes]:
    """``KEY=value`` items, as ``Popen`` encodes them, memoised by (key, value)."""
    if len(_encoded) > _ENCODED_KEPT:
        _encoded.clear()
    items = []
    for pair in env.items():
        item = _encoded.get(pair)
        if item is None:
            key = os.fsencode(pair[0])
            if b"=" in key:
                raise ValueError("illegal environment variable name")
            item = _encoded[pair] = key + b"=" + os.fsencode(pair[1])
        items.append(item)
    return items


def _raise_child_error(pid: int, data: bytes, *, program: str, cwd: str | None) -> None:
    """The child failed before or at its exec (and has exited): reap it, raise what Popen
    raises."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)
    try:
        name, hex_errno, message = data.split(b":", 2)
        text = message.decode()
    except ValueError:
        raise subprocess.SubprocessError(f"bad exception data from child: {data!r}") from None
    if name == b"OSError" and hex_errno:
        number = int(hex_errno, 16)
        filename = cwd if text == "noexec" else program  # noexec: chdir failed
        raise OSError(number, os.strerror(number), filename)
    raise subprocess.SubprocessError(text)
