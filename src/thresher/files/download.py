"""Download: a manifest's files from a file service into a folder, verified and resumable.

For each file: one already there and unchanged is left alone; otherwise the file is rebuilt in
``.<name>.thresher-part`` beside it, from the chunks of its old version that are still right
(found by cutting the old file into chunks: a small edit moves a small part) and chunks fetched
from the service in batches, `streams` batches in flight. Every chunk fetched is verified
(BLAKE3) and asked for again if it came wrong; the file's size, and its hash as that of its
chunks' hashes (`chunking.file_hash`), are checked before the part file is renamed over the
target. A checkpoint (``.<name>.thresher-part.json``) lets an interrupted transfer go on from
the batch it names: its chunks were verified before they were written. It is rewritten after
the first batch, then once every CHECKPOINT_BYTES, and when the transfer stops on an error (a
cut connection loses nothing; a killed process at most CHECKPOINT_BYTES). Small files (one
chunk) are fetched many per request and each written to a temporary name and renamed.

An existing file that differs is overwritten, skipped or kept beside a copy (``existing``),
unless the transfers into this destination wrote it and it is unchanged since: that one is
brought up to date.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import secrets
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import BinaryIO, Literal, Protocol

from thresher.files import partfile
from thresher.files.chunking import Chunk, FileDigest, chunk_hash, digest_file, file_hash
from thresher.files.manifest import FileEntry, Manifest
from thresher.files.partfile import BATCH_BYTES, BATCH_CHUNKS
from thresher.files.peer import PeerError
from thresher.files.progress import Growing
from thresher.files.stats import TransferStats
from thresher.files.store import ChunkStore
from thresher.files.throttle import Throttle
from thresher.files.upload import DigestCache

Existing = Literal["overwrite", "skip", "copy"]
TRIES = 3


class TransferError(Exception):
    """A file could not be brought over whole (after retries)."""


class ChunkSource(Protocol):
    """Where chunks come from: a peer file service, or this site's own store."""

    def read_chunks(
        self, digests: Sequence[str]
    ) -> AsyncIterator[tuple[str, bytes | bytearray | memoryview]]: ...


class LocalSource:
    """This site's own chunk store as a source (a checkout of a manifest it holds)."""

    def __init__(self, store: ChunkStore) -> None:
        self.store = store

    async def read_chunks(
        self, digests: Sequence[str]
    ) -> AsyncIterator[tuple[str, bytes | bytearray | memoryview]]:
        for digest in digests:
            data = await asyncio.to_thread(self.store.get, digest)
            if data is not None:
                yield digest, data


class _Fetcher:
    """Verified chunk fetches from one source, with a shared cap and counters."""

    def __init__(
        self, peer: ChunkSource, throttle: Throttle, stats: TransferStats, cache: DigestCache
    ) -> None:
        self.peer, self.throttle, self.stats, self.cache = peer, throttle, stats, cache
        self.folders: set[Path] = set()  # checked to lie inside the destination, and made
        # One batch of small files written at a time: creating files in a folder is the
        # kernel's work, and writers side by side only contend for it.
        self.writing = asyncio.Lock()

    def written(
        self, dest: Path, where: Path, entry: FileEntry, st: os.stat_result | None = None
    ) -> None:
        """Remember a file written (or found) with the entry's content."""
        digest = FileDigest(entry.size, entry.hash, entry.chunks)
        self.cache.put(_rel(dest, where), st or where.stat(), digest)

    async def fetch(
        self, digests: Sequence[str], *, verify: bool = True
    ) -> dict[str, bytes | bytearray | memoryview]:
        """The chunks' bytes by hash, each verified; a wrong one is asked for again. Unless
        `verify` is False: then whoever writes them checks them (in the same hand-off to a
        thread as the write), and asks for a wrong one again with `verify`."""
        got: dict[str, bytes | bytearray | memoryview] = {}
        wanted = list(dict.fromkeys(digests))
        for attempt in range(TRIES):
            came: list[tuple[str, bytes | bytearray | memoryview]] = []
            try:
                async for digest, data in self.peer.read_chunks(wanted):
                    await self.throttle.take(len(data))
                    self.stats.bytes_moved += len(data)
                    # A view may be of the reader's own buffer, which the next frame fills:
                    # kept as bytes until it is hashed below.
                    came.append((digest, bytes(data) if isinstance(data, memoryview) else data))
            except PeerError:
                if attempt == TRIES - 1:
                    raise  # what came before the break is kept: ask for the rest again
            if verify:  # hashed off the event loop, so other streams' reads go on meanwhile
                got.update(await asyncio.to_thread(_verified, came, set(wanted)))
            else:
                asked = set(wanted)
                got.update((d, data) for d, data in came if d in asked)
            wanted = [d for d in wanted if d not in got]
            if not wanted:
                return got
            if attempt < TRIES - 1:
                self.stats.chunks_refetched += len(wanted)
        raise TransferError(f"{len(wanted)} chunks never came right (first {wanted[0][:12]})")


def _rel(dest: Path, where: Path) -> str:
    """`where` relative to `dest` (which holds it), ``/``-separated (string work: no pathlib
    parsing per file)."""
    rel = os.fspath(where)[len(os.fspath(dest)) :].lstrip(os.sep)
    return rel if os.sep == "/" else rel.replace(os.sep, "/")


def _verified(
    came: list[tuple[str, bytes | bytearray | memoryview]], wanted: set[str]
) -> dict[str, bytes | bytearray | memoryview]:
    """The chunks that are what they were asked for as."""
    return {d: data for d, data in came if d in wanted and chunk_hash(data) == d}


def _target(dest: Path, entry: FileEntry | Growing, folders: set[Path]) -> Path:
    """Where the entry goes; its folder is checked to lie inside `dest` (links followed) and
    made, once per folder of a transfer."""
    target = dest / entry.path
    if target.parent in folders:
        return target
    real_dest = os.path.realpath(dest)
    real_parent = os.path.realpath(target.parent)
    if real_parent != real_dest and not real_parent.startswith(real_dest + os.sep):
        raise TransferError(f"{entry.path}: its folder leads out of {dest}")
    target.parent.mkdir(parents=True, exist_ok=True)
    folders.add(target.parent)
    return target


#: Temporary names: this process's random prefix and a count (no random bytes per file).
_TMP_PREFIX = secrets.token_hex(4)
_tmp_numbers = itertools.count()


def _write_new(where: Path, data: bytes | bytearray | memoryview, mode: int) -> os.stat_result:
    """Write a whole file to a temporary name beside it, then rename it over `where`; its
    status as written."""
    folder, name = os.path.split(where)
    while True:
        tmp = os.path.join(folder, f".{name}.{_TMP_PREFIX}{next(_tmp_numbers)}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
            break
        except FileExistsError:
            continue
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fchmod(fd, mode)
        st = os.fstat(fd)
    finally:
        os.close(fd)
    os.replace(tmp, where)
    return st


def _copy_name(target: Path) -> Path:
    for n in range(1, 10_000):
        candidate = target.with_name(f"{target.stem} ({n}){target.suffix}")
        if not candidate.exists():
            return candidate
    raise TransferError(f"{target}: no free name for a copy")


def _decide(
    target: Path, entry: FileEntry, existing: Existing, fetcher: _Fetcher, dest: Path
) -> Path | None:
    """Where to write the entry (None: it is there already, or kept as it is).

    A file this destination's transfers wrote (or found equal) and that is unchanged since is
    a copy of an earlier version, not someone's own file: it is brought up to date whatever
    `existing` says. A frame fetched while it was still being rendered is thus replaced by the
    whole one on a later pass (`thresher download --follow`)."""
    try:
        st = target.stat()
    except FileNotFoundError:
        return target
    ours = fetcher.cache.get(_rel(dest, target), st)
    if st.st_size == entry.size:
        known = ours or digest_file(target)
        if known.hash == entry.hash:
            fetcher.written(dest, target, entry)
            fetcher.stats.files_skipped += 1
            return None
    if ours is not None:
        return target
    if existing == "skip":
        fetcher.stats.files_kept += 1
        return None
    return _copy_name(target) if existing == "copy" else target


async def download(
    manifest: Manifest,
    dest: Path,
    peer: ChunkSource,
    *,
    streams: int = 4,
    parallel_files: int = 4,
    bps: int | None = None,
    existing: Existing = "overwrite",
    cache: DigestCache | None = None,
) -> TransferStats:
    """Bring `manifest`'s files from `peer` into `dest`; what it did. `cache` remembers the
    digests of the files written (and of those found unchanged), so that the next transfer
    into `dest` need not read them again."""
    stats = TransferStats(files=len(manifest.files), bytes_total=manifest.total_bytes)
    fetcher = _Fetcher(peer, Throttle(bps), stats, cache or DigestCache(None))
    dest.mkdir(parents=True, exist_ok=True)
    small = [f for f in manifest.files if len(f.chunks) <= 1]
    large = [f for f in manifest.files if len(f.chunks) > 1]
    gate = asyncio.Semaphore(parallel_files)

    async def one(entry: FileEntry) -> None:
        async with gate:
            await _large(Growing.of(entry), dest, fetcher, streams=streams, existing=existing)

    try:
        await asyncio.gather(_small(small, dest, fetcher, streams, existing), *map(one, large))
    finally:
        await asyncio.to_thread(fetcher.cache.save)
    return stats


async def _small(
    entries: list[FileEntry],
    dest: Path,
    fetcher: _Fetcher,
    streams: int,
    existing: Existing,
    *,
    gate: asyncio.Semaphore | None = None,
) -> None:
    """Files of one chunk (or none), many per request, `streams` requests at once (or as
    many as `gate` lets through, shared with other calls)."""

    def plan() -> list[tuple[FileEntry, Path]]:
        todo = []
        for entry in entries:
            target = _target(dest, entry, fetcher.folders)
            where = _decide(target, entry, existing, fetcher, dest)
            if where is None:
                pass
            else:
                fetcher.stats.files_copied += where != target
                todo.append((entry, where))
        return todo

    todo = await asyncio.to_thread(plan)
    batches: list[list[tuple[FileEntry, Path]]] = [[]]
    size = 0
    for entry, where in todo:
        if size >= BATCH_BYTES or len(batches[-1]) >= BATCH_CHUNKS:
            batches.append([])
            size = 0
        batches[-1].append((entry, where))
        size += entry.size
    gate = gate or asyncio.Semaphore(streams)

    async def run(batch: list[tuple[FileEntry, Path]]) -> None:
        async with gate:
            got = await fetcher.fetch([e.chunks[0].hash for e, _ in batch if e.chunks])
            async with fetcher.writing:
                await asyncio.to_thread(_write_small, batch, got, fetcher, dest)

    await asyncio.gather(*(run(b) for b in batches if b))


def _write_small(
    batch: list[tuple[FileEntry, Path]],
    got: dict[str, bytes | bytearray | memoryview],
    fetcher: _Fetcher,
    dest: Path,
) -> None:
    for entry, where in batch:
        data = got[entry.chunks[0].hash] if entry.chunks else b""
        fetcher.written(dest, where, entry, _write_new(where, data, entry.mode))


async def _large(
    file: Growing, dest: Path, fetcher: _Fetcher, *, streams: int, existing: Existing
) -> None:
    """One file of several chunks, into its part file batch by batch, then renamed. `file` may
    still be growing (its source is being checked in): batches are fetched as its chunks
    become known, and the file is checked and renamed once it is whole."""
    where = await _where(file, dest, fetcher, existing)
    if where is None:
        return
    part = where.with_name(f".{where.name}.thresher-part")
    checkpoint = where.with_name(f".{where.name}.thresher-part.json")
    start, offset = await partfile.resume_point(file, part, checkpoint)
    fetcher.stats.files_resumed += start > 0
    reuse = await asyncio.to_thread(_old_chunks, where, fetcher.cache, dest)
    # Batches fetched and not yet written: at most `streams`, whatever the file's size.
    room = asyncio.Semaphore(streams)
    fetched: asyncio.Queue[tuple[list[Chunk], asyncio.Task[_Got]] | Exception | None]
    fetched = asyncio.Queue()

    async def get(run: list[Chunk]) -> _Got:
        remote = [c.hash for c in run if c.hash not in reuse]
        return await fetcher.fetch(remote, verify=False) if remote else {}

    async def produce() -> None:
        at = start
        try:
            while run := await partfile.next_run(file, at):
                await room.acquire()
                fetched.put_nowait((run, asyncio.create_task(get(run))))
                at += len(run)
            fetched.put_nowait(None)
        except Exception as exc:  # the source's checkin failed
            fetched.put_nowait(exc)

    producer = asyncio.create_task(produce())
    done = start
    saved = -1  # the offset of the last checkpoint written (none yet)
    try:
        with part.open("r+b" if start else "wb") as out:
            out.seek(offset)
            try:
                while (item := await fetched.get()) is not None:
                    if isinstance(item, Exception):
                        raise item
                    run, task = item
                    got = await task
                    room.release()
                    size = sum(c.size for c in run)
                    due = saved < 0 or offset + size - saved >= partfile.CHECKPOINT_BYTES
                    state = (checkpoint, file.chunks, done + len(run), offset + size)
                    await _write_checked(
                        fetcher, run, got, reuse, where, out, state if due else None
                    )
                    done += len(run)
                    offset += size
                    saved = offset if due else saved
            except BaseException:
                # Stopped (a cut connection, a chunk that never came right): keep what was
                # written whole, so the next try goes on from here.
                if offset != saved and done > start:
                    await asyncio.to_thread(
                        partfile.checkpoint, checkpoint, file.chunks, done, offset, out
                    )
                raise
    finally:
        producer.cancel()
        while not fetched.empty():
            left = fetched.get_nowait()
            if isinstance(left, tuple):
                left[1].cancel()
    await asyncio.to_thread(_finish, file, part, checkpoint, where, fetcher, dest)


async def _where(file: Growing, dest: Path, fetcher: _Fetcher, existing: Existing) -> Path | None:
    """Where to write the file (None: nowhere, it is there already or kept as it is)."""
    target = await asyncio.to_thread(_target, dest, file, fetcher.folders)
    if file.whole is None and existing != "overwrite" and await asyncio.to_thread(target.exists):
        await file.complete()  # whether to write it at all depends on its hash
    if file.whole is None:
        return target  # not there, or overwritten: rebuilt from what of it is still right
    where = await asyncio.to_thread(_decide, target, file.whole, existing, fetcher, dest)
    fetcher.stats.files_copied += where is not None and where != target
    return where


def _finish(
    file: Growing, part: Path, checkpoint: Path, where: Path, fetcher: _Fetcher, dest: Path
) -> None:
    """Check the part file against the whole entry and rename it into place."""
    entry = file.whole
    if entry is None or part.stat().st_size != entry.size or file_hash(entry.chunks) != entry.hash:
        part.unlink(missing_ok=True)
        checkpoint.unlink(missing_ok=True)
        raise TransferError(f"{file.path}: the file came out different from its manifest")
    os.chmod(part, entry.mode)
    os.replace(part, where)
    checkpoint.unlink(missing_ok=True)
    fetcher.written(dest, where, entry)


_Got = dict[str, bytes | bytearray | memoryview]


async def _write_checked(
    fetcher: _Fetcher,
    run: list[Chunk],
    got: _Got,
    reuse: dict[str, tuple[int, int]],
    old: Path,
    out: BinaryIO,
    state: tuple[Path, list[Chunk], int, int] | None,
) -> None:
    """Check a batch's chunks and write it, in one hand-off to a thread; chunks that came
    wrong are fetched again (checked as they come) and the batch written then."""
    while True:
        reused, wrong = await asyncio.to_thread(
            partfile.write_run, run, got, reuse, old, out, state
        )
        if not wrong:
            fetcher.stats.bytes_reused += reused
            return
        fetcher.stats.chunks_refetched += len(wrong)
        got = {**got, **await fetcher.fetch(wrong)}


def _old_chunks(path: Path, cache: DigestCache, dest: Path) -> dict[str, tuple[int, int]]:
    """Chunks of the file there now (from the digest cache if it knows the file as it is):
    hash -> (offset, size). Each is checked again when it is read."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return {}
    known = cache.get(path.relative_to(dest).as_posix(), st) if path.is_relative_to(dest) else None
    found: dict[str, tuple[int, int]] = {}
    offset = 0
    for c in (known or digest_file(path)).chunks:
        found.setdefault(c.hash, (offset, c.size))
        offset += c.size
    return found
