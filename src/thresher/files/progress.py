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
        # The count of chunks of the file being read at which a follower wants waking (None:
        # nobody waits): a wake per answer, not per chunk.
        self._wake_at: int | None = None

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
            due = self._wake_at is not None and len(self.chunks) >= self._wake_at
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
            self.files.append(entry)
            self.current, self.chunks = None, []
            self._wake_at = None
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

    def since(self, files: int, chunks: int, want: int = 0) -> tuple[dict[str, Any], int]:
        """What came after `files` whole files and `chunks` chunks of the next (counted when it
        is the same file still being read); how many chunks that is. Under `want` of them and
        nothing else new: the checkin wakes its followers once there are."""
        with self._lock:
            whole = self.files[files : files + MAX_FILES]
            first = chunks if not whole else 0
            current = None
            more = len(whole) + max(0, len(self.chunks) - first)
            if self.current is not None and files + len(whole) == len(self.files):
                path, mode = self.current
                new = self.chunks[first:]
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
            if not whole and not over and more < want:
                at = len(self.chunks) + want - more
                self._wake_at = at if self._wake_at is None else min(self._wake_at, at)
        return answer, more + (1 if over else 0)

    async def wait(self, files: int, chunks: int, want: int, timeout: float) -> dict[str, Any]:
        """`since`, once at least `want` chunks or a whole file came (or the checkin ended), or
        after `timeout` seconds with what there is."""
        deadline = self.loop.time() + timeout
        while True:
            event = self._changed
            answer, more = self.since(files, chunks, want)
            if more >= want or answer["files"] or answer["error"] or answer["hash"]:
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

    def __init__(self) -> None:
        self._runs: OrderedDict[str, Checkin] = OrderedDict()

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
        return [c for c in self._runs.values() if c.seconds is None]


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
