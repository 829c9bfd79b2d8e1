"""Content-defined chunks and BLAKE3 hashes, computed in one streaming read of a file.

Chunk boundaries come from FastCDC (the `fastcdc` package's compiled gear-hash scan): they
depend on the bytes around them only, so an insertion moves the boundaries of the chunk it
falls in and no other, and a file that changed in one place shares all other chunks with its
last version. Files are read in windows of `WINDOW` bytes: memory stays bounded whatever the
file's size, and the chunks are exactly those of the whole file at once (a boundary found
before a window's end depends on the bytes before it only; the last piece of a window, cut
short by its end, is cut again with the next; a window is larger than `MAX_CHUNK`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import blake3
from fastcdc import fastcdc

MIN_CHUNK = 256 * 1024
AVG_CHUNK = 1024 * 1024
MAX_CHUNK = 4 * 1024 * 1024
#: Bytes read at once: several chunks (more than MAX_CHUNK).
WINDOW = 8 * 1024 * 1024
HASH_BYTES = 32


def chunk_hash(data: bytes | bytearray | memoryview) -> str:
    """The BLAKE3 hash of `data`, as 64 hex digits."""
    return blake3.blake3(data).hexdigest()


def file_hash(chunks: Sequence[Chunk]) -> str:
    """A file's hash from its chunks' (see `FileDigest`)."""
    return blake3.blake3(b"".join(bytes.fromhex(c.hash) for c in chunks)).hexdigest()


@dataclass(frozen=True)
class Chunk:
    hash: str
    size: int


@dataclass(frozen=True)
class FileDigest:
    """A file's size, hash and chunks, in order. The file's hash is the BLAKE3 hash of its
    chunks' hashes in order (`file_hash`): as strong as a hash of the bytes (each chunk hash
    is), and checked from the chunks alone, so no transfer reads a file twice to verify it."""

    size: int
    hash: str
    chunks: tuple[Chunk, ...]


def _cut(view: memoryview, have: int, eof: bool) -> list[tuple[int, int]]:
    """(offset, size) of each whole chunk of `view[:have]`. A boundary FastCDC finds before the
    window's end depends on the bytes before it only, so every chunk is whole but the last,
    unless it has MAX_CHUNK bytes or the stream ends there; the last is cut again with the next
    window."""
    cuts: list[tuple[int, int]] = []
    for cut in fastcdc(view[:have], MIN_CHUNK, AVG_CHUNK, MAX_CHUNK):
        if not eof and cut.offset + cut.length == have and cut.length < MAX_CHUNK:
            break  # cut short by the window's end: cut it once more is read
        cuts.append((cut.offset, cut.length))
    return cuts


def _hash_all(view: memoryview, cuts: list[tuple[int, int]]) -> list[str]:
    return [chunk_hash(view[offset : offset + size]) for offset, size in cuts]


def iter_chunks(stream: BinaryIO, *, window: int = WINDOW) -> Iterator[tuple[memoryview, Chunk]]:
    """Each chunk of the stream with its bytes: a view into one of two buffers reused for the
    whole stream, valid until the next chunk is asked for (copy it to keep it).

    Windows are read into the two buffers in turn (`readinto`, no new memory per window); what
    is left of a window after its last whole chunk is copied to the other buffer's start. A
    window's chunks are hashed on a thread, in one hand-off (BLAKE3 lets go of the GIL), while
    the next window is read and cut (FastCDC's scan holds it): on two cores the hashing costs no
    wall time. A
    buffer is read into again only once all chunks of its last window were handed out."""
    buffers = (memoryview(bytearray(window)), memoryview(bytearray(window)))
    pending: tuple[memoryview, list[tuple[int, int]], Future[list[str]]] | None = None
    have = 0
    eof = False
    turn = 0
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="chunk-hash") as pool:
        while True:
            view = buffers[turn]
            while not eof and have < window:
                read = stream.readinto(view[have:])  # type: ignore[attr-defined]
                if not read:
                    eof = True
                else:
                    have += read
            cuts = _cut(view, have, eof) if have else []
            # One hand-off per window (not per chunk: each costs the scan a GIL switch).
            hashed = pool.submit(_hash_all, view, cuts) if cuts else None
            if pending is not None:
                yield from _hand_out(*pending)
                pending = None
            used = cuts[-1][0] + cuts[-1][1] if cuts else 0
            if hashed is not None:
                pending = (view, cuts, hashed)
            if eof and used == have:
                break
            turn ^= 1
            buffers[turn][: have - used] = view[used:have]
            have -= used
        if pending is not None:
            yield from _hand_out(*pending)


def _hand_out(
    view: memoryview, cuts: list[tuple[int, int]], hashed: Future[list[str]]
) -> Iterator[tuple[memoryview, Chunk]]:
    for (offset, length), digest in zip(cuts, hashed.result(), strict=True):
        yield view[offset : offset + length], Chunk(digest, length)


def digest_stream(
    stream: BinaryIO, *, on_chunk: Callable[[memoryview, Chunk], None] | None = None
) -> FileDigest:
    """The stream's digest; `on_chunk` sees every chunk's bytes as they are read (one read
    for hashing, chunking and sending)."""
    chunks: list[Chunk] = []
    size = 0
    for data, chunk in iter_chunks(stream):
        chunks.append(chunk)
        size += chunk.size
        if on_chunk is not None:
            on_chunk(data, chunk)
    return FileDigest(size=size, hash=file_hash(chunks), chunks=tuple(chunks))


def digest_file(
    path: Path, *, on_chunk: Callable[[memoryview, Chunk], None] | None = None
) -> FileDigest:
    with path.open("rb") as stream:
        head = stream.read(MIN_CHUNK + 1)
        if len(head) <= MIN_CHUNK:  # one chunk: no cutting (most files of a big folder)
            chunk = Chunk(chunk_hash(head), len(head))
            chunks = (chunk,) if head else ()
            if on_chunk is not None and head:
                on_chunk(memoryview(head), chunk)
            return FileDigest(size=len(head), hash=file_hash(chunks), chunks=chunks)
        stream.seek(0)
        return digest_stream(stream, on_chunk=on_chunk)
