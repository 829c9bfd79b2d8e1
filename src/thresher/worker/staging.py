"""An attempt's outputs appear in its output folder whole, or not at all.

An engine job's attempt renders into its staging folder, ``.thresher-attempt-<id>`` inside its
output's folder (`thresher.engines.output.staging_for`; the engine base points the command at
it). Nobody lists those folders: a file service's checkin, ``thresher download`` and the
clearing of an output folder all leave ``.thresher*`` folders out. So a frame half written,
or a file the application writes and deletes again (POV-Ray's ``.pov-state``), is never seen
in the output folder. Once the attempt succeeded, :func:`commit` moves each file it left there
into place with one rename (same filesystem) and answers exactly those files: they are what
the upload to the output site sends. A failed, cancelled or dropped attempt's staging folder
is removed (:func:`discard`).

Left over by a worker that died (its task processes die with it, see `worker.guardian`):

- :class:`StagingLedger` notes each staging folder in the worker's work directory
  (``staging/<pid>-<attempt id>``, the folder's path inside) until it is committed or
  discarded; a worker starting removes the folders noted by worker processes of that work
  directory that no longer run;
- a folder no ledger names (its machine never came back) is removed by the next attempt
  staging in the same output folder once nothing in it changed for `STALE_S` (7 days; a
  worker looks at each output folder at most once every `SWEEP_EVERY_S`).

Everything here is blocking I/O: the executor calls it in a thread, never on the event loop.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import threading
import time
from pathlib import Path

from thresher.engines import Staging
from thresher.engines.output import STAGING_PREFIX

__all__ = ["STALE_S", "StagingLedger", "commit", "discard", "settle", "sweep_stale"]

#: A staging folder nothing was written to for this long belongs to no running attempt.
STALE_S = 7 * 24 * 3600.0
#: How often one worker looks for stale staging folders in one output folder.
SWEEP_EVERY_S = 3600.0


def commit(staging: Staging) -> list[Path]:
    """Move every file of the staging folder into the output folder (one rename each, over a
    file of the same name), keeping their folders; remove the staging folder. The files moved,
    at their new places."""
    moved: list[Path] = []
    staged = Path(staging.staged)
    folder = Path(staging.folder)
    made: set[Path] = set()
    for base, dirs, files in os.walk(staged):
        dirs.sort()
        for name in sorted(files):
            source = Path(base, name)
            target = folder / source.relative_to(staged)
            if target.parent not in made:
                target.parent.mkdir(parents=True, exist_ok=True)
                made.add(target.parent)
            os.replace(source, target)
            moved.append(target)
    shutil.rmtree(staged, ignore_errors=True)
    return moved


def settle(
    staging: Staging, *, succeeded: bool, ledger: StagingLedger, attempt_id: int
) -> list[Path]:
    """The attempt ended: its files moved into place if it `succeeded` (those answered), else
    its staging folder removed; the ledger forgets it either way. OSError: a move failed (the
    staging folder is removed all the same)."""
    try:
        if succeeded:
            return commit(staging)
        discard(staging)
        return []
    except OSError:
        discard(staging)
        raise
    finally:
        ledger.forget(attempt_id)


def discard(staging: Staging) -> None:
    """Remove the staging folder and what is in it."""
    shutil.rmtree(staging.staged, ignore_errors=True)


def _is_staging(path: Path) -> bool:
    return path.name.startswith(STAGING_PREFIX) and path.name[len(STAGING_PREFIX) :].isdigit()


def _newest_change(path: Path) -> float:
    """The latest modification time of the folder and anything in it."""
    newest = path.stat().st_mtime
    for base, dirs, files in os.walk(path):
        for name in (*dirs, *files):
            with contextlib.suppress(OSError):
                newest = max(newest, os.lstat(os.path.join(base, name)).st_mtime)
    return newest


def sweep_stale(folder: Path, *, now: float, stale_s: float = STALE_S) -> int:
    """Remove the staging folders in `folder` where nothing changed for `stale_s`; how many."""
    removed = 0
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return 0
    for entry in entries:
        path = Path(entry.path)
        if not (_is_staging(path) and entry.is_dir(follow_symlinks=False)):
            continue
        try:
            if now - _newest_change(path) < stale_s:
                continue
        except OSError:
            continue
        shutil.rmtree(path, ignore_errors=True)
        removed += 1
    return removed


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: not ours to judge
    return True


class StagingLedger:
    """The staging folders this worker process made and has not committed or discarded yet,
    one small file each under ``<work dir>/staging`` (thread-safe: lanes and the executor's
    threads use it)."""

    def __init__(self, work_dir: Path, *, pid: int | None = None) -> None:
        self.root = work_dir / "staging"
        self.pid = os.getpid() if pid is None else pid
        self._swept: dict[str, float] = {}  # output folder -> when it was last swept
        self._lock = threading.Lock()

    def note(self, attempt_id: int, staging: Staging, *, now: float | None = None) -> None:
        """Remember the attempt's staging folder (made already); now and then, remove stale
        staging folders in its output folder."""
        self.root.mkdir(parents=True, exist_ok=True)
        entry = self.root / f"{self.pid}-{attempt_id}"
        part = entry.with_name(f".{entry.name}.part")
        part.write_text(staging.staged)
        os.replace(part, entry)
        now = time.time() if now is None else now
        with self._lock:
            due = now - self._swept.get(staging.folder, -1e18) >= SWEEP_EVERY_S
            if due:
                self._swept[staging.folder] = now
        if due:
            sweep_stale(Path(staging.folder), now=now)

    def forget(self, attempt_id: int) -> None:
        """The attempt's staging folder was committed or discarded."""
        with contextlib.suppress(FileNotFoundError):
            (self.root / f"{self.pid}-{attempt_id}").unlink()

    def sweep(self) -> int:
        """Remove the staging folders noted by worker processes of this work directory that no
        longer run (a worker killed, the machine restarted); how many."""
        removed = 0
        try:
            entries = list(self.root.iterdir())
        except FileNotFoundError:
            return 0
        for entry in entries:
            part = entry.name.startswith(".") and entry.name.endswith(".part")
            name = entry.name[1 : -len(".part")] if part else entry.name
            pid_text, _, attempt = name.partition("-")
            if not (pid_text.isdigit() and attempt.isdigit()):
                continue
            pid = int(pid_text)
            if pid == self.pid or _running(pid):
                continue
            with contextlib.suppress(OSError):
                if part:  # never renamed into place: its folder is left to `sweep_stale`
                    entry.unlink()
                    continue
                staged = Path(entry.read_text())
                if _is_staging(staged) and staged.name == f"{STAGING_PREFIX}{attempt}":
                    shutil.rmtree(staged, ignore_errors=True)
                    removed += 1
                entry.unlink()
        return removed
