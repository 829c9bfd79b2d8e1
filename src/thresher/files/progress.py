"""A checkin in progress, as others may follow it: the pull of another site starts on a file's
first chunks while the rest of it is still being read and hashed here.

The checkin (a thread) tells its `Checkin` each chunk as soon as it is hashed (the store then
serves it: `ChunkStore.add_source`) and each file when it is whole; `GET
/files/v1/checkins/{name}` answers what came since a point (whole files from an index on, the
chunks of the file being read from an index on), waiting until there is something. Each
checkin has a run id, so a follower never takes an older checkin of the same name for this one.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any

from thresher.files.chunking import Chunk
from thresher.files.manifest import FileEntry, Manifest
from thresher.files.store import ChunkStore

#: Finished checkins kept for a late follower (each holds its files' entries: a few).
KEEP_FINISHED = 4
#: At most this many checkins read at once on one service; one more is refused (429) until one ends.
MAX_RUNNING = 8
#: Most whole files in one answer.
MAX_FILES = 10_000


class Checkin:
    """One checkin's progress, written by its thread, read on the event loop."""

    def __init__(
        self, name: str, loop: asyncio.AbstractEventLoop, store: ChunkStore | None = None
    ) -> None:
        self.name, self.loop, self.store = name, loop, store
        self.run = secrets.token_hex(8)
        self.started = time.monotonic()
        self.seconds: float | None = None
        self.files: list[FileEntry] = []  # whole, in the order they were read
        self.current: tuple[str, int] | None = None  # (path, mode) of the file being read
        self.chunks: list[Chunk] = []  # of the file being read, so far
        self.manifest: Manifest | None = None
        self.error: str | None = None
        self._lock = threading.Lock()
        self._changed = asyncio.Event()  # replaced at each wake (set: woken)
        self._found = 0  # bytes found so far: chunks told, and whole files told at once
        # When a follower wants waking (None: nobody waits): once `_found` reaches the first,
        # or the whole files their count the second; a wake per answer, not per chunk or file.
        self._wake_at: tuple[int, int] | None = None

    # -- from the checkin's thread --------------------------------------------------------------

    def _wake(self) -> None:
        event, self._changed = self._changed, asyncio.Event()
        event.set()

    def _tell(self) -> None:
        with contextlib.suppress(RuntimeError):  # the service is stopping: nobody follows
            self.loop.call_soon_threadsafe(self._wake)

    def chunk(self, path: str, mode: int, chunk: Chunk) -> None:
        with self._lock:
            if self.current != (path, mode):
                self.current, self.chunks = (path, mode), []
            self.chunks.append(chunk)
            self._found += chunk.size
            due = self._wake_at is not None and self._found >= self._wake_at[0]
            if due:
                self._wake_at = None
        if due:
            self._tell()

    def file(self, entry: FileEntry, path: Path | None = None) -> None:
        """A file read whole (or known from the digest cache): its chunks are served from
        `path` before followers hear of it."""
        if self.store is not None and path is not None:
            offset = 0
            for c in entry.chunks:
                self.store.add_source(c.hash, path, offset, c.size)
                offset += c.size
        with self._lock:
            if self.current is None or self.current[0] != entry.path:
                self._found += entry.size  # not told chunk by chunk
            self.files.append(entry)
            self.current, self.chunks = None, []
            wake = self._wake_at
            due = wake is not None and (
                len(entry.chunks) > 1 or self._found >= wake[0] or len(self.files) >= wake[1]
            )
            if due:
                self._wake_at = None
        if due:
            self._tell()

    def finish(self, manifest: Manifest | None, error: str | None = None) -> None:
        with self._lock:
            self.manifest, self.error = manifest, error
            self.seconds = time.monotonic() - self.started
            self._wake_at = None
        self._tell()

    def hashes(self) -> frozenset[str]:
        """The chunks found so far (a scoped token of this checkin's name may read them)."""
        with self._lock:
            found = {c.hash for f in self.files for c in f.chunks}
            return frozenset(found | {c.hash for c in self.chunks})

    # -- on the event loop ----------------------------------------------------------------------

    def since(
        self, files: int, chunks: int, want_bytes: int = 0, want_files: int = 1
    ) -> tuple[dict[str, Any], bool]:
        """What came after `files` whole files and `chunks` chunks of the next (counted when it
        is the same file still being read), and whether that is worth an answer: `want_bytes`
        of chunks or `want_files` whole files, a file of several chunks whole (its follower
        renames it), or the end. If not, the checkin wakes its followers once it is."""
        with self._lock:
            whole = self.files[files : files + MAX_FILES]
            first = chunks if not whole else 0
            current = None
            new = self.chunks[first:] if files + len(whole) == len(self.files) else []
            if self.current is not None and files + len(whole) == len(self.files):
                path, mode = self.current
                current = {"path": path, "mode": mode, "chunks": [[c.hash, c.size] for c in new]}
            over = self.manifest is not None or self.error is not None
            answer = {
                "run": self.run,
                "files": [_entry(f) for f in whole],
                "current": current,
                "done": over and files + len(whole) == len(self.files),
                "error": self.error,
                "hash": self.manifest.hash if self.manifest is not None else None,
                "count": len(self.manifest.files) if self.manifest is not None else None,
                "seconds": self.seconds,
            }
            found = sum(f.size for f in whole) + sum(c.size for c in new)
            ready = (
                over
                or found >= want_bytes
                or len(whole) >= want_files
                or any(len(f.chunks) > 1 for f in whole)
            )
            if not ready:
                at = (
                    self._found + want_bytes - found,
                    len(self.files) + want_files - len(whole),
                )
                wake = self._wake_at
                self._wake_at = at if wake is None else (min(wake[0], at[0]), min(wake[1], at[1]))
        return answer, ready

    async def wait(
        self, files: int, chunks: int, want_bytes: int, want_files: int, timeout: float
    ) -> dict[str, Any]:
        """`since`, once it is worth an answer, or after `timeout` seconds with what there is."""
        deadline = self.loop.time() + timeout
        while True:
            event = self._changed
            answer, ready = self.since(files, chunks, want_bytes, want_files)
            if ready:
                return answer
            left = deadline - self.loop.time()
            if left <= 0:
                return answer
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), left)


def _entry(f: FileEntry) -> dict[str, Any]:
    return {
        "path": f.path,
        "size": f.size,
        "hash": f.hash,
        "mode": f.mode,
        "chunks": [[c.hash, c.size] for c in f.chunks],
    }


class Checkins:
    """The checkins of one service: those running, and the last KEEP_FINISHED by run id."""

    def __init__(self, max_running: int = MAX_RUNNING) -> None:
        self._runs: OrderedDict[str, Checkin] = OrderedDict()
        self.max_running = max_running

    def start(self, name: str, store: ChunkStore | None = None) -> Checkin:
        checkin = Checkin(name, asyncio.get_running_loop(), store)
        self._runs[checkin.run] = checkin
        finished = [r for r, c in self._runs.items() if c.seconds is not None]
        for run in finished[: max(0, len(finished) - KEEP_FINISHED)]:
            del self._runs[run]
        return checkin

    def get(self, run: str) -> Checkin | None:
        return self._runs.get(run)

    def running(self) -> list[Checkin]:
        # A copy first: a chunk read served on a thread asks too (`sendfile`).
        return [c for c in list(self._runs.values()) if c.seconds is None]


class Growing:
    """A file being brought over while its source is still being checked in: its chunks so
    far, and its whole entry (size, hash, every chunk) once the source has read it all."""

    def __init__(self, path: str, mode: int) -> None:
        self.path, self.mode = path, mode
        self.chunks: list[Chunk] = []
        self.whole: FileEntry | None = None
        self.error: str | None = None
        self._changed = asyncio.Event()

    @classmethod
    def of(cls, entry: FileEntry) -> Growing:
        """A file known whole already."""
        growing = cls(entry.path, entry.mode)
        growing.chunks, growing.whole = list(entry.chunks), entry
        return growing

    def _wake(self) -> None:
        event, self._changed = self._changed, asyncio.Event()
        event.set()

    def add(self, chunks: list[Chunk]) -> None:
        self.chunks.extend(chunks)
        self._wake()

    def finish(self, entry: FileEntry) -> None:
        """The whole entry: the chunks followed so far must be its first ones."""
        if tuple(self.chunks) != entry.chunks[: len(self.chunks)]:
            self.error = f"{entry.path}: its chunks changed while it was checked in"
        else:
            self.chunks, self.whole = list(entry.chunks), entry
        self._wake()

    def fail(self, message: str) -> None:
        self.error = message
        self._wake()

    async def complete(self) -> FileEntry:
        """Wait until the file is whole."""
        while self.whole is None:
            await self.beyond(len(self.chunks))
        return self.whole

    async def beyond(self, n: int) -> bool:
        """Wait until more than `n` chunks are known or the file is whole; whether there are."""
        while len(self.chunks) <= n and self.whole is None and self.error is None:
            await self._changed.wait()
        if self.error is not None:
            raise GrowingError(self.error)
        return len(self.chunks) > n


class GrowingError(Exception):
    """The file followed could not be checked in whole at its source."""
