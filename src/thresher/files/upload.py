"""Upload: a folder's files into a file service, each file read once.

A reader thread reads each file once, cutting it into chunks and hashing them as it goes, and
hands batches of chunks (at most `BATCH_BYTES`, many small files in one) to `streams` senders,
which ask the service which of them it lacks and send only those. The queue between them holds
at most `streams` batches, so memory stays bounded whatever the files' sizes. A file whose size
and modification time are what the digest cache remembers is not read at all: its chunks are
only checked for presence (and read after all if the service lacks any).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import stat
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from thresher.files.chunking import MIN_CHUNK, Chunk, FileDigest, digest_file, digest_stream
from thresher.files.manifest import FileEntry, Manifest, ManifestError, safe_rel
from thresher.files.peer import Peer
from thresher.files.progress import Checkin
from thresher.files.stats import TransferStats
from thresher.files.store import write_atomic
from thresher.files.throttle import Throttle

BATCH_BYTES = 4 * 1024 * 1024
BATCH_CHUNKS = 1024


class DigestCache:
    """Digests of files by (path, size, mtime_ns), kept in a JSON file between runs."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._entries: dict[str, list[object]] = {}
        if path is not None and path.is_file():
            with contextlib.suppress(ValueError, OSError):
                self._entries = json.loads(path.read_text())

    def get(self, key: str, st: os.stat_result) -> FileDigest | None:
        found = self._entries.get(key)
        if not found or found[:2] != [st.st_size, st.st_mtime_ns]:
            return None
        _, _, digest, chunks = found
        pairs = chunks if isinstance(chunks, list) else []
        return FileDigest(st.st_size, str(digest), tuple(Chunk(str(h), int(s)) for h, s in pairs))

    def put(self, key: str, st: os.stat_result, digest: FileDigest) -> None:
        with self._lock:
            chunks = [[c.hash, c.size] for c in digest.chunks]
            self._entries[key] = [st.st_size, st.st_mtime_ns, digest.hash, chunks]

    def save(self) -> None:
        if self.path is not None:
            write_atomic(self.path, json.dumps(self._entries).encode())


@dataclass
class _Batch:
    chunks: list[tuple[str, bytes | None]] = field(default_factory=list)  # None: not read
    size: int = 0
    reread: list[str] = field(default_factory=list)  # files to read if a chunk is missing


class _Uploader:
    """One upload's reader thread and senders."""

    def __init__(
        self, root: Path, peer: Peer, cache: DigestCache, *, streams: int, bps: int | None
    ) -> None:
        self.root, self.peer, self.cache, self.streams = root, peer, cache, streams
        self.throttle = Throttle(bps)
        self.stats = TransferStats()
        self.queue: asyncio.Queue[_Batch | None] = asyncio.Queue(maxsize=streams)
        self.loop = asyncio.get_running_loop()

    def hand(self, batch: _Batch) -> None:
        """From the reader thread: wait for room in the queue (memory stays bounded)."""
        asyncio.run_coroutine_threadsafe(self.queue.put(batch), self.loop).result()

    def read_all(self, which: list[str], *, use_cache: bool) -> list[FileEntry]:
        found: list[FileEntry] = []
        batch = _Batch()
        for rel in which:
            entry, batch = _read_file(
                self.root, rel, self.cache, batch, self.hand, use_cache=use_cache
            )
            found.append(entry)
        if batch.chunks:
            self.hand(batch)
        return found

    async def send(self) -> list[str]:
        """Send what the service lacks of each batch; the files to read again (the service
        lacks chunks the cache said it had)."""
        reread: list[str] = []
        while (batch := await self.queue.get()) is not None:
            missing = set(await self.peer.missing([h for h, _ in batch.chunks]))
            if any(data is None and h in missing for h, data in batch.chunks):
                reread.extend(batch.reread)
            out = [(h, d) for h, d in batch.chunks if h in missing and d is not None]
            if out:
                size = sum(len(d) for _, d in out)
                await self.throttle.take(size)
                await self.peer.put_chunks(out)
                self.stats.bytes_moved += size
        return reread

    async def run(self, which: list[str], *, use_cache: bool) -> tuple[list[FileEntry], list[str]]:
        senders = [asyncio.create_task(self.send()) for _ in range(self.streams)]
        try:
            read = await asyncio.to_thread(self.read_all, which, use_cache=use_cache)
        finally:
            for _ in senders:
                await self.queue.put(None)
        reread = [p for s in senders for p in await s]
        return read, reread


async def upload(
    root: Path,
    paths: Iterable[str],
    peer: Peer,
    *,
    name: str | None = None,
    streams: int = 4,
    bps: int | None = None,
    cache: DigestCache | None = None,
) -> tuple[Manifest, TransferStats]:
    """Send the files `paths` (relative to `root`) to `peer`; store their manifest as `name`."""
    cache = cache or DigestCache(None)
    uploader = _Uploader(root, peer, cache, streams=streams, bps=bps)
    entries, reread = await uploader.run([safe_rel(p) for p in paths], use_cache=True)
    if reread:  # the service lost chunks the cache said it had: read those files after all
        again, _ = await uploader.run(sorted(set(reread)), use_cache=False)
        by_path = {e.path: e for e in again}
        entries = [by_path.get(e.path, e) for e in entries]
    await asyncio.to_thread(cache.save)
    manifest = Manifest.of(entries)
    stats = uploader.stats
    stats.files = len(manifest.files)
    stats.bytes_total = manifest.total_bytes
    stats.bytes_reused = stats.bytes_total - stats.bytes_moved
    if name is not None:
        await peer.put_manifest(name, manifest)
    return manifest, stats


def _read_file(
    root: Path,
    rel: str,
    cache: DigestCache,
    batch: _Batch,
    hand: Callable[[_Batch], None],
    *,
    use_cache: bool,
) -> tuple[FileEntry, _Batch]:
    """One file's entry; its chunks join `batch`, which is handed on each time it fills."""
    path = root / rel
    st = path.stat()
    known = cache.get(rel, st) if use_cache else None
    if known is not None:
        for c in known.chunks:
            batch.chunks.append((c.hash, None))
        batch.reread.append(rel)
        if len(batch.chunks) >= BATCH_CHUNKS:
            hand(batch)
            batch = _Batch()
        return FileEntry.of(rel, known, mode=st.st_mode), batch
    current = [batch]

    def on_chunk(data: memoryview, chunk: Chunk) -> None:
        b = current[0]
        b.chunks.append((chunk.hash, bytes(data)))
        b.size += chunk.size
        if b.size >= BATCH_BYTES or len(b.chunks) >= BATCH_CHUNKS:
            hand(b)
            current[0] = _Batch()

    with path.open("rb") as stream:
        digest = digest_stream(stream, on_chunk=on_chunk)
    cache.put(rel, st, digest)
    return FileEntry.of(rel, digest, mode=st.st_mode), current[0]


def list_files(root: Path) -> list[str]:
    """Every regular file under `root`, relative, ``/``-separated, sorted; links are not
    followed out of it, nor into a folder; ``.thresher*`` folders (a render's staging folder,
    a service's own) are left out, and so are part files.

    Only a symbolic link costs a look at where it leads: a file met by walking folders that
    are no links lies under the root (per file, what the directory listing says is enough)."""
    found: list[str] = []
    real_root = os.path.realpath(root)
    stack = [(os.fspath(root), "")]
    while stack:
        folder, prefix = stack.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries:
            name = entry.name
            try:
                if entry.is_dir(follow_symlinks=False):
                    if not name.startswith(".thresher"):
                        stack.append((entry.path, f"{prefix}{name}/"))
                    continue
                if name.endswith(_PART_SUFFIXES):
                    continue
                if entry.is_symlink():
                    real = os.path.realpath(entry.path)
                    if not (real.startswith(real_root + os.sep) and os.path.isfile(real)):
                        continue  # a link out of the root, or to no file, is never served
                elif not entry.is_file(follow_symlinks=False):
                    continue
            except OSError:
                continue
            found.append(prefix + name)
    return sorted(found)


_PART_SUFFIXES = (".thresher-part", ".thresher-part.json")


def check_inside(root: Path, rel: str, real_root: str | None = None) -> Path:
    """`root / rel`, if it lies inside `root` once links are followed (ManifestError if not)."""
    path = root / safe_rel(rel)
    if not os.path.realpath(path).startswith((real_root or os.path.realpath(root)) + os.sep):
        raise ManifestError(f"{rel} leads out of {root} (a symbolic link): not served")
    return path


class _Inside:
    """Files of one root, checked to lie inside it (links followed) at the cost of one
    `realpath` per folder and one `lstat` per file (a link's own target is then followed)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.real_root = os.path.realpath(root)
        self._folders: dict[str, bool] = {}

    def stat(self, rel: str) -> tuple[Path, os.stat_result]:
        """The file's path and status; ManifestError if it leads out of the root."""
        path = self.root / safe_rel(rel)
        folder = os.path.dirname(path)
        inside = self._folders.get(folder)
        if inside is None:
            real = os.path.realpath(folder)
            inside = real == self.real_root or real.startswith(self.real_root + os.sep)
            self._folders[folder] = inside
        st = os.lstat(path)
        if not inside or stat.S_ISLNK(st.st_mode):
            check_inside(self.root, rel, self.real_root)
            st = os.stat(path)
        return path, st


def upload_local(
    root: Path, paths: Iterable[str], *, cache: DigestCache, progress: Checkin | None = None
) -> Manifest:
    """The manifest of files under `root`, each read once unless the cache knows it (a
    checkin: the files stay where they are and are served from there). `progress` hears of
    each chunk as soon as it is hashed and of each file when it is whole (others follow it)."""
    entries = []
    inside = _Inside(root)
    for rel in paths:
        path, st = inside.stat(rel)
        digest = cache.get(rel, st)
        if digest is None:
            told = _teller(progress, path, rel, st.st_mode) if st.st_size > MIN_CHUNK else None
            digest = digest_file(path, on_chunk=told)
            cache.put(rel, st, digest)
        entry = FileEntry.of(rel, digest, mode=st.st_mode)
        if progress is not None:
            progress.file(entry, path)
        entries.append(entry)
    cache.save()
    return Manifest.of(entries)


def _teller(
    progress: Checkin | None, path: Path, rel: str, mode: int
) -> Callable[[memoryview, Chunk], None] | None:
    """What tells `progress` of each chunk of the file (and has the store serve it)."""
    if progress is None:
        return None
    offset = 0
    mode &= 0o777

    def told(data: memoryview, chunk: Chunk) -> None:
        nonlocal offset
        if progress.store is not None:
            progress.store.add_source(chunk.hash, path, offset, chunk.size)
        offset += chunk.size
        progress.chunk(rel, mode, chunk)

    return told
