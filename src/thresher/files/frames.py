"""Chunks in a batch on the wire: each is a 32-byte hash, an 8-byte big-endian length and its
bytes. Read incrementally, so neither side holds more than one chunk of a batch at a time."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Iterator

from thresher.files.chunking import HASH_BYTES, MAX_CHUNK

HEADER = HASH_BYTES + 8


class FrameError(ValueError):
    """A batch that is cut short or announces a chunk over MAX_CHUNK."""


def frame(digest: str, data: bytes | memoryview) -> bytes:
    return bytes.fromhex(digest) + len(data).to_bytes(8, "big")


def encode(chunks: Iterable[tuple[str, bytes | memoryview]]) -> Iterator[bytes | memoryview]:
    for digest, data in chunks:
        yield frame(digest, data)
        yield data


async def decode(stream: AsyncIterator[bytes]) -> AsyncIterator[tuple[str, memoryview]]:
    """(hash, bytes) of each chunk of a framed byte stream. Pieces are gathered until a whole
    frame is there and joined once; the chunks are views into that (no copy per chunk)."""
    pending: list[bytes] = []
    have = 0
    need = HEADER
    digest: str | None = None
    async for piece in stream:
        pending.append(piece)
        have += len(piece)
        if have < need:
            continue
        data = memoryview(b"".join(pending) if len(pending) > 1 else pending[0])
        offset = 0
        while have - offset >= need:
            if digest is None:
                digest = data[offset : offset + HASH_BYTES].hex()
                need = int.from_bytes(data[offset + HASH_BYTES : offset + HEADER], "big")
                if need > MAX_CHUNK:
                    raise FrameError(f"a chunk of {need} bytes is over {MAX_CHUNK}")
                offset += HEADER
            else:
                yield digest, data[offset : offset + need]
                offset += need
                digest, need = None, HEADER
        pending = [bytes(data[offset:])] if offset < have else []
        have -= offset
    if have or digest is not None:
        raise FrameError("the batch was cut short")
