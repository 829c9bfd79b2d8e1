"""Publishing an engine checks its script in a separate process with a time limit
(`python -m thresher.engines.check`), never inside the controller: the controller's loop and
farm thread go on serving meanwhile, and a refused script leaves nothing behind here.

The process gets the controller's environment without its THRESHER_* variables (a database
URL may hold a password), runs in an empty temporary folder, and is killed (its whole process
group) when it runs past the limit."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import tempfile
from typing import Any

from thresher.core.errors import InvalidInput
from thresher.engines import source_hash
from thresher.store.engines import EngineSource

_MAX_OUTPUT = 4 * 2**20


def _environment() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("THRESHER_")}


async def check_engine_source(name: str, source: str, *, timeout_s: float) -> EngineSource:
    """What the registry stores about `source`, checked in its own process; InvalidInput
    (naming the field) when the script does not load or runs past `timeout_s`."""
    with tempfile.TemporaryDirectory(prefix="thresher-engine-check-") as folder:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "thresher.engines.check",
            name,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=folder,
            env=_environment(),
            start_new_session=True,
        )
        try:
            out, err = await asyncio.wait_for(proc.communicate(source.encode()), timeout_s)
        except TimeoutError:
            _kill(proc)
            await proc.wait()
            raise InvalidInput(
                f"engine {name!r}: loading the script took longer than {timeout_s:g} s",
                field="source",
            ) from None
        finally:
            if proc.returncode is None:
                _kill(proc)
                await proc.wait()
    answer = _answer(out[-_MAX_OUTPUT:])
    if answer is None:
        tail = err.decode(errors="replace")[-2000:]
        raise InvalidInput(
            f"engine {name!r}: checking the script failed (exit {proc.returncode})\n{tail}",
            field="source",
        )
    if not answer.get("ok"):
        details = str(answer.get("details") or "").rstrip()
        message = str(answer.get("message")) + (f"\n{details}" if details else "")
        raise InvalidInput(message, field=str(answer.get("field") or "source"))
    return EngineSource(
        source=source,
        source_hash=source_hash(source),
        settings=answer["settings"],
        parameters=answer["parameters"],
    )


def _answer(out: bytes) -> dict[str, Any] | None:
    lines = out.decode(errors="replace").strip().splitlines()
    if not lines:
        return None
    try:
        found = json.loads(lines[-1])
    except ValueError:
        return None
    return found if isinstance(found, dict) else None


def _kill(proc: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
