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


async def decode(stream: AsyncIterator[bytes]) -> AsyncIterator[tuple[str, bytes]]:
    """(hash, bytes) of each chunk of a framed byte stream."""
    buffer = bytearray()
    need = HEADER
    digest: str | None = None
    async for piece in stream:
        buffer += piece
        while len(buffer) >= need:
            if digest is None:
                digest = bytes(buffer[:HASH_BYTES]).hex()
                need = int.from_bytes(buffer[HASH_BYTES:HEADER], "big")
                if need > MAX_CHUNK:
                    raise FrameError(f"a chunk of {need} bytes is over {MAX_CHUNK}")
                del buffer[:HEADER]
            else:
                data = bytes(buffer[:need])
                del buffer[:need]
                yield digest, data
                digest, need = None, HEADER
    if buffer or digest is not None:
        raise FrameError("the batch was cut short")
