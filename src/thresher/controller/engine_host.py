"""A published engine's parameter check, run outside the controller: one child process
(`python -m thresher.engines.host`) kept for the controller's life, asked one request at a time
with a time limit. The built-in engines ship with Thresher and are checked in process; a
published revision is an admin's code, and the controller never runs it (see
docs/security.md).

The child gets the controller's environment without its THRESHER_* variables, runs in an
empty temporary folder, in a session of its own; one that runs past the limit, dies or answers
garbage is killed (its whole process group) and a fresh one is started for the next request.
Called from the farm thread: a check blocks other use cases for as long as it takes, which the
limit bounds (`engine_check_timeout_s`)."""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping
from typing import Any

from thresher.core.errors import InvalidInput
from thresher.engines import EngineConfigError

#: An answer longer than this is garbage: the child is replaced.
_MAX_ANSWER = 4 * 2**20


class EngineHost:
    """The child process that checks published engines' parameters."""

    def __init__(self, *, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._folder: tempfile.TemporaryDirectory[str] | None = None

    def merge_parameters(
        self, name: str, source: str, parameters: Mapping[str, Any]
    ) -> dict[str, Any]:
        """`parameters` over the engine's defaults as the engine checks them:
        EngineConfigError naming the parameter it refused, InvalidInput (field `engine`) when
        the source no longer loads or the check ran past the limit or failed."""
        request = json.dumps({"name": name, "source": source, "parameters": dict(parameters)})
        with self._lock:
            reply = self._ask(name, request.encode() + b"\n")
        if reply.get("ok"):
            merged = reply.get("merged")
            if isinstance(merged, dict):
                return merged
        message = str(reply.get("message") or "the check gave no answer")
        if reply.get("load"):
            raise InvalidInput(f"engine {name!r} no longer loads: {message}", field="engine")
        parameter = reply.get("parameter")
        raise EngineConfigError(
            message, parameter=parameter if isinstance(parameter, str) else None
        )

    def close(self) -> None:
        with self._lock:
            self._stop()

    # -- the child ------------------------------------------------------------------------------

    def _ask(self, name: str, line: bytes) -> dict[str, Any]:
        proc = self._started()
        assert proc.stdin is not None
        assert proc.stdout is not None
        deadline = time.monotonic() + self.timeout_s
        try:
            proc.stdin.write(line)
            proc.stdin.flush()
            answer = self._read_line(proc, deadline)
        except (OSError, _Gone) as exc:
            self._stop()
            if isinstance(exc, _Late):
                raise InvalidInput(
                    f"engine {name!r}: checking the parameters took longer than "
                    f"{self.timeout_s:g} s",
                    field="parameters",
                ) from None
            raise InvalidInput(
                f"engine {name!r}: checking the parameters failed: {exc}", field="parameters"
            ) from None
        try:
            reply = json.loads(answer)
        except ValueError:
            self._stop()
            reply = None
        if not isinstance(reply, dict):
            raise InvalidInput(
                f"engine {name!r}: checking the parameters gave no answer", field="parameters"
            )
        return reply

    @staticmethod
    def _read_line(proc: subprocess.Popen[bytes], deadline: float) -> bytes:
        assert proc.stdout is not None
        fd = proc.stdout.fileno()
        got = bytearray()
        while not got.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0:
                raise _Late("late")
            readable, _, _ = select.select([fd], [], [], left)
            if not readable:
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                raise _Gone(f"the check process ended (exit {proc.poll()})")
            got += chunk
            if len(got) > _MAX_ANSWER:
                raise _Gone("the check process answered more than it may")
        return bytes(got)

    def _started(self) -> subprocess.Popen[bytes]:
        if self._proc is not None and self._proc.poll() is None:
            return self._proc
        self._stop()
        self._folder = tempfile.TemporaryDirectory(prefix="thresher-engine-host-")
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "thresher.engines.host"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            cwd=self._folder.name,
            env={k: v for k, v in os.environ.items() if not k.startswith("THRESHER_")},
            start_new_session=True,
        )
        return self._proc

    def _stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            for stream in (proc.stdin, proc.stdout):
                if stream is not None:
                    with contextlib.suppress(OSError):
                        stream.close()
        if self._folder is not None:
            self._folder.cleanup()
            self._folder = None


class _Gone(Exception):
    """The child cannot answer: it ended, or answered garbage."""


class _Late(_Gone):
    """The child ran past the limit."""
