"""NIMBY ("not in my back yard") from the worker's own machine: a file in the work directory.

`<work-dir>/nimby` holding `pause` means: finish the running tasks, take no new ones; holding
`stop` means: also stop the running tasks (they go back to the queue). No file: work as usual.
The person at the machine writes it with `thresher nimby pause|stop|resume` (`--name NAME` finds
a worker's default work dir, `--work-dir DIR` any other), or
signals the worker process (SIGUSR1: pause, SIGUSR2: stop, SIGHUP: resume), which writes the
same file, so the state is visible on disk and survives a restart of the worker.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Literal

NIMBY_FILE = "nimby"
State = Literal["paused", "stopped"]


def nimby_path(work_dir: Path) -> Path:
    return work_dir / NIMBY_FILE


def read_nimby(path: Path) -> State | None:
    """The state the file asks for: `stop`/`stopped` stops, anything else pauses."""
    try:
        text = path.read_text(errors="replace").strip().lower()
    except FileNotFoundError:
        return None
    except OSError:
        return "paused"  # unreadable: the person meant something, and pausing is the safe side
    return "stopped" if text in ("stop", "stopped") else "paused"


def write_nimby(path: Path, state: State | None) -> None:
    """Ask for `state` (None: resume)."""
    if state is None:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("stop\n" if state == "stopped" else "pause\n")
