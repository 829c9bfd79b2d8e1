"""A pull that follows a checkin still in progress at its source.

The source answers what its checkin found since the last question (`GET
/files/v1/checkins/{name}?run=...`: whole files, and the chunks so far of the file it is
reading); each whole file goes to the download as it comes (small ones in batches), and the
file being read is brought over as it grows (`progress.Growing`: its batches fetched as its
chunks are known, its part file checked and renamed once it is whole). At the end the files
followed must make the checkin's manifest (its hash), else the pull fails.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

from thresher.files.chunking import Chunk
from thresher.files.download import (
    Existing,
    TransferError,
    _Fetcher,
    _large,
    _small,
)
from thresher.files.manifest import FileEntry, Manifest, entry_of, safe_rel
from thresher.files.peer import Peer
from thresher.files.progress import Growing
from thresher.files.stats import TransferStats
from thresher.files.throttle import Throttle
from thresher.files.upload import DigestCache

#: What the source gathers before it answers (unless a file of several chunks or the checkin
#: ends first): little for the first answer (to start at once), then more (each answer costs
#: both sides a request; a batch of small files is one request for their chunks).
FIRST_BYTES = 4 * 1024 * 1024
WANT_BYTES = 32 * 1024 * 1024
WANT_FILES = 1000
#: Seconds the source waits for news before it answers with none.
WAIT_S = 20.0


class _Follower:
    """One followed checkin: the files handed to the download as they come."""

    def __init__(
        self, fetcher: _Fetcher, dest: Path, streams: int, parallel_files: int, existing: Existing
    ) -> None:
        self.fetcher, self.dest, self.streams, self.existing = fetcher, dest, streams, existing
        self.small_gate = asyncio.Semaphore(streams)
        self.file_gate = asyncio.Semaphore(parallel_files)
        self.tasks: list[asyncio.Task[None]] = []
        self.growing: Growing | None = None  # the file the source is reading
        self.entries: list[FileEntry] = []  # whole files, as they came
        self.chunks = 0  # of the growing file, so far

    async def _large(self, file: Growing) -> None:
        async with self.file_gate:
            await _large(
                file, self.dest, self.fetcher, streams=self.streams, existing=self.existing
            )

    def check(self) -> None:
        """A file that failed stops the whole pull at once."""
        for task in self.tasks:
            if task.done() and not task.cancelled() and task.exception() is not None:
                task.result()

    def take(self, answer: dict[str, Any]) -> None:
        """Hand what the source found since the last answer to the download."""
        try:
            whole = [entry_of(f) for f in answer["files"]]
        except (KeyError, TypeError, ValueError) as exc:
            raise TransferError(f"a malformed checkin answer: {exc}") from None
        small = []
        for entry in whole:
            self.entries.append(entry)
            if self.growing is not None and self.growing.path == entry.path:
                self.growing.finish(entry)
                self.growing = None
            elif len(entry.chunks) <= 1:
                small.append(entry)
            else:
                self.tasks.append(asyncio.create_task(self._large(Growing.of(entry))))
        if small:
            done = _small(
                small, self.dest, self.fetcher, self.streams, self.existing, gate=self.small_gate
            )
            self.tasks.append(asyncio.create_task(done))
        if whole:
            self.chunks = 0
        current: dict[str, Any] | None = answer["current"]
        if current is not None:
            if self.growing is None:
                path, mode = safe_rel(str(current["path"])), int(current["mode"]) & 0o777
                self.growing = Growing(path, mode)
                self.tasks.append(asyncio.create_task(self._large(self.growing)))
            self.growing.add([Chunk(str(h), int(s)) for h, s in current["chunks"]])
            self.chunks += len(current["chunks"])

    async def stop(self) -> None:
        """Stop every file in flight (each keeps a checkpoint of what it wrote)."""
        if self.growing is not None:
            self.growing.fail("the pull stopped")
        for task in self.tasks:
            task.cancel()
        with contextlib.suppress(BaseException):
            await asyncio.gather(*self.tasks, return_exceptions=True)


async def follow(
    peer: Peer,
    name: str,
    run: str,
    dest: Path,
    *,
    streams: int = 4,
    parallel_files: int = 4,
    bps: int | None = None,
    existing: Existing = "overwrite",
    cache: DigestCache | None = None,
) -> tuple[Manifest, TransferStats]:
    """Bring the files of checkin `run` (manifest `name`) at `peer` into `dest` as it goes;
    the manifest it made and what moved."""
    stats = TransferStats()
    fetcher = _Fetcher(peer, Throttle(bps), stats, cache or DigestCache(None))
    await asyncio.to_thread(dest.mkdir, parents=True, exist_ok=True)
    follower = _Follower(fetcher, dest, streams, parallel_files, existing)
    try:
        while True:
            answer = await peer.checkin_progress(
                name,
                run,
                files=len(follower.entries),
                chunks=follower.chunks,
                want_bytes=WANT_BYTES if follower.entries or follower.chunks else FIRST_BYTES,
                want_files=WANT_FILES,
                wait=WAIT_S,
            )
            follower.check()
            follower.take(answer)
            if answer["error"]:
                raise TransferError(f"the checkin at {peer.url} failed: {answer['error']}")
            if answer["done"]:
                break
        manifest = Manifest.of(follower.entries)
        if manifest.hash != answer["hash"] or follower.growing is not None:
            raise TransferError(f"the files followed at {peer.url} are not its manifest {name!r}")
        stats.files, stats.bytes_total = len(manifest.files), manifest.total_bytes
        await asyncio.gather(*follower.tasks)
    except BaseException:
        await follower.stop()
        raise
    finally:
        await asyncio.to_thread(fetcher.cache.save)
    return manifest, stats
