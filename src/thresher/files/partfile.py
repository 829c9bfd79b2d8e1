"""The part file of a file of several chunks being brought over: its batches, taken from its
chunk list as it grows; each batch checked and written in one hand-off to a thread; the
checkpoint that lets a cut transfer go on from the last batch it names."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

from thresher.files.chunking import Chunk, chunk_hash, file_hash
from thresher.files.peer import PeerError
from thresher.files.progress import Growing
from thresher.files.store import write_atomic

BATCH_BYTES = 4 * 1024 * 1024
BATCH_CHUNKS = 512
#: Bytes written between two checkpoints of a large file (each is a small file renamed into
#: place: after every 4 MiB batch they took a tenth of a 1 GiB pull's time).
CHECKPOINT_BYTES = 64 * 1024 * 1024


async def next_run(file: Growing, at: int) -> list[Chunk]:
    """The file's next batch from chunk `at` on: at most BATCH_BYTES (each batch is held in
    memory whole; reused chunks are read into memory too, so they count), waiting for its
    chunks while the file grows; empty at its end."""
    while True:
        run: list[Chunk] = []
        size = 0
        for c in file.chunks[at : at + BATCH_CHUNKS + 1]:
            if run and (size + c.size > BATCH_BYTES or len(run) >= BATCH_CHUNKS):
                return run
            run.append(c)
            size += c.size
        if file.whole is not None:
            return run
        await file.beyond(at + len(run))


async def resume_point(file: Growing, part: Path, checkpoint: Path) -> tuple[int, int]:
    """(chunks done, bytes done) of an interrupted transfer of a file that begins with the same
    chunks (the checkpoint holds the hash of those), else (0, 0)."""
    try:
        saved = json.loads(await asyncio.to_thread(checkpoint.read_text))
        done, offset = int(saved.get("chunks", 0)), int(saved.get("offset", 0))
    except (OSError, ValueError, AttributeError):
        return 0, 0
    if done <= 0 or not await file.beyond(done - 1):
        return 0, 0
    chunks = file.chunks[:done]
    if saved.get("prefix") != file_hash(chunks) or sum(c.size for c in chunks) != offset:
        return 0, 0
    try:
        if (await asyncio.to_thread(part.stat)).st_size < offset:
            return 0, 0
    except FileNotFoundError:
        return 0, 0
    return done, offset


def _pieces(
    run: list[Chunk],
    got: dict[str, bytes | bytearray | memoryview],
    reuse: dict[str, tuple[int, int]],
    old: Path,
) -> list[bytes | bytearray | memoryview]:
    pieces: list[bytes | bytearray | memoryview] = []
    for c in run:
        if c.hash in got:
            pieces.append(got[c.hash])
            continue
        offset, size = reuse[c.hash]
        with old.open("rb") as f:
            f.seek(offset)
            data = f.read(size)
        if chunk_hash(data) != c.hash:
            raise PeerError(f"{old}: changed while it was read")
        pieces.append(data)
    return pieces


def write_run(
    run: list[Chunk],
    got: dict[str, bytes | bytearray | memoryview],
    reuse: dict[str, tuple[int, int]],
    old: Path,
    out: BinaryIO,
    state: tuple[Path, list[Chunk], int, int] | None,
) -> tuple[int, list[str]]:
    """Check the batch's fetched chunks, append its chunks to the part file and checkpoint it
    when `state` says (one hand-off to a thread per batch); the bytes taken from the old file
    and the chunks that came wrong (then nothing is written)."""
    wrong = [d for d, data in got.items() if chunk_hash(data) != d]
    if wrong:
        return 0, wrong
    pieces = _pieces(run, got, reuse, old)
    for data in pieces:
        out.write(data)
    if state is not None:
        checkpoint(*state, out)
    return sum(len(p) for c, p in zip(run, pieces, strict=True) if c.hash in reuse), []


def checkpoint(
    checkpoint: Path, chunks: Sequence[Chunk], done: int, offset: int, out: object
) -> None:
    """Say that the part file holds the first `done` chunks (`offset` bytes), verified; by the
    hash of those chunks' hashes, so a file that begins the same way resumes from it."""
    assert hasattr(out, "flush")
    out.flush()
    state = {"prefix": file_hash(chunks[:done]), "chunks": done, "offset": offset}
    write_atomic(checkpoint, json.dumps(state).encode())
