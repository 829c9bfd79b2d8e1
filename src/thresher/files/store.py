"""A site's content-addressed store on disk: chunks by BLAKE3 hash, manifests by name.

``<root>/chunks/ab/abcdef...`` holds the chunk whose hash is ``abcdef...``; a chunk is verified
(its hash recomputed) before it is kept, written to a temporary name and renamed, so a reader
never sees half a chunk and a corrupted one is never stored. ``<root>/manifests/<name>.json``
holds a manifest's canonical text.
"""

from __future__ import annotations

import json
import os
import re
import secrets
from collections.abc import Iterable
from pathlib import Path

from thresher.files.chunking import chunk_hash
from thresher.files.manifest import Manifest

HASH = re.compile(r"^[0-9a-f]{64}$")
MANIFEST_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,200}$")


class BadChunk(ValueError):
    """Bytes whose hash is not the one they were sent as."""


def write_atomic(path: Path, data: bytes | bytearray | memoryview) -> None:
    """Write `data` to a temporary name next to `path`, then rename it over `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    with tmp.open("wb") as out:
        out.write(data)
    os.replace(tmp, path)


class ChunkStore:
    """Chunks and manifests under `root`, and chunks of files checked in where they lie.

    A checked-in file is not copied: its chunks are served from the file itself (path, offset,
    size); a file changed since serves other bytes, which its reader's check refuses."""

    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "chunks").mkdir(parents=True, exist_ok=True)
        (root / "manifests").mkdir(parents=True, exist_ok=True)
        (root / "sources").mkdir(parents=True, exist_ok=True)
        self._sources: dict[str, tuple[str, int, int]] = {}
        self._listed: dict[str, frozenset[str]] = {}  # the chunks of each manifest, by name
        for saved in sorted((root / "sources").glob("*.json")):
            self._sources.update(
                {
                    h: (str(p), int(o), int(n))
                    for h, (p, o, n) in json.loads(saved.read_text()).items()
                }
            )

    def add_sources(self, name: str, base: Path, manifest: Manifest) -> None:
        """Serve the manifest's chunks from its files under `base` (a checkin)."""
        found: dict[str, tuple[str, int, int]] = {}
        for f in manifest.files:
            offset = 0
            for c in f.chunks:
                found.setdefault(c.hash, (str(base / f.path), offset, c.size))
                offset += c.size
        self._sources.update(found)
        write_atomic(self.root / "sources" / f"{name}.json", json.dumps(found).encode())

    def add_source(self, digest: str, path: Path, offset: int, size: int) -> None:
        """Serve one chunk from a file being checked in, as soon as it is hashed (kept on disk
        by `add_sources` once the checkin ends)."""
        self._sources.setdefault(digest, (str(path), offset, size))

    def path(self, digest: str) -> Path:
        if not HASH.match(digest):
            raise BadChunk(f"{digest!r} is not a BLAKE3 hash (64 hex digits)")
        return self.root / "chunks" / digest[:2] / digest

    def has(self, digest: str) -> bool:
        return digest in self._sources or self.path(digest).is_file()

    def missing(self, digests: Iterable[str]) -> list[str]:
        return [d for d in dict.fromkeys(digests) if not self.has(d)]

    def sizes(self, digests: Iterable[str]) -> list[int | None]:
        """Each chunk's size here (None: not here)."""
        found: list[int | None] = []
        for digest in digests:
            source = self._sources.get(digest)
            if source is not None:
                found.append(source[2])
                continue
            try:
                found.append(self.path(digest).stat().st_size)
            except FileNotFoundError:
                found.append(None)
        return found

    def put(self, digest: str, data: bytes | bytearray | memoryview) -> bool:
        """Keep a chunk after checking its hash; False when it was there already."""
        target = self.path(digest)
        if chunk_hash(data) != digest:
            raise BadChunk(f"chunk {digest[:12]}: its bytes hash to something else")
        if target.is_file():
            return False
        write_atomic(target, data)
        return True

    def get(self, digest: str) -> bytes | None:
        """A chunk's bytes (None: not here). Not checked here: every reader checks what it
        receives, and asks again (or elsewhere) for a chunk that came wrong."""
        path = self.path(digest)
        try:
            return path.read_bytes()
        except FileNotFoundError:
            pass
        source = self._sources.get(digest)
        if source is None:
            return None
        try:
            with open(source[0], "rb") as f:
                f.seek(source[1])
                return f.read(source[2])
        except OSError:
            return None

    def get_many(self, wanted: list[tuple[str, int]]) -> list[bytes | memoryview]:
        """The bytes of chunks of known sizes, in order; one that is not here (or not of its
        size) as zeros of its size. Chunks that lie one after the other in a checked-in file are
        read with one `pread` (a file's chunks are asked for in order)."""
        out: list[bytes | memoryview] = []
        i = 0
        while i < len(wanted):
            digest, size = wanted[i]
            source = self._sources.get(digest)
            j = i + 1
            if source is not None and not self.path(digest).is_file():
                path, start, _ = source
                end = start + size
                while j < len(wanted):
                    nxt = self._sources.get(wanted[j][0])
                    if nxt is None or nxt[0] != path or nxt[1] != end:
                        break
                    end += wanted[j][1]
                    j += 1
                try:
                    fd = os.open(path, os.O_RDONLY)
                    try:
                        data = memoryview(os.pread(fd, end - start, start))
                    finally:
                        os.close(fd)
                except OSError:
                    data = memoryview(b"")
                at = 0
                for _, n in wanted[i:j]:
                    piece = data[at : at + n]
                    out.append(piece if len(piece) == n else bytes(n))
                    at += n
            else:
                got = self.get(digest)
                out.append(got if got is not None and len(got) == size else bytes(size))
            i = j
        return out

    def locate(self, digests: Iterable[str]) -> list[tuple[str, str, int, int]]:
        """Where each chunk here lies, in order: (hash, file, offset, size); one not here is
        left out. A chunk of the store is preferred to one in a checked-in file (as `get`)."""
        found: list[tuple[str, str, int, int]] = []
        for digest in digests:
            path = self.path(digest)
            try:
                found.append((digest, str(path), 0, path.stat().st_size))
                continue
            except FileNotFoundError:
                pass
            source = self._sources.get(digest)
            if source is not None:
                found.append((digest, *source))
        return found

    def manifest_chunks(self, prefix: str) -> frozenset[str]:
        """The chunks listed by the manifests whose names start with `prefix` (what a token
        scoped to them may read). Each manifest is read once: later versions are put here
        (`put_manifest`), which keeps their lists up to date."""
        if not MANIFEST_NAME.match(prefix):
            return frozenset()
        found: set[str] = set()
        for path in (self.root / "manifests").glob(f"{prefix}*.json"):
            name = path.name.removesuffix(".json")
            hashes = self._listed.get(name)
            if hashes is None:
                try:
                    hashes = frozenset(Manifest.from_json(path.read_bytes()).chunk_hashes())
                except FileNotFoundError:
                    continue
                self._listed.setdefault(name, hashes)
            found |= hashes
        return frozenset(found)

    def put_manifest(self, name: str, manifest: Manifest) -> None:
        if not MANIFEST_NAME.match(name):
            raise ValueError(f"bad manifest name {name!r}")
        write_atomic(self.root / "manifests" / f"{name}.json", manifest.to_json())
        self._listed[name] = frozenset(manifest.chunk_hashes())

    def get_manifest(self, name: str) -> Manifest | None:
        if not MANIFEST_NAME.match(name):
            raise ValueError(f"bad manifest name {name!r}")
        path = self.root / "manifests" / f"{name}.json"
        return Manifest.from_json(path.read_bytes()) if path.is_file() else None
