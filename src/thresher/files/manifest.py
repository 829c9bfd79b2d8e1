"""Manifests: what a set of files is, as canonical JSON (sorted keys, no blanks), so one set of
files has one manifest text and one hash, wherever it was made.

A manifest lists files by path relative to its root (``/``-separated, never absolute, never
``..``), each with its size, its BLAKE3 hash and its chunks. A job's inputs have one manifest
(per volume root); each task's outputs another.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from thresher.files.chunking import Chunk, FileDigest, chunk_hash

VERSION = 1


class ManifestError(ValueError):
    """A manifest that is malformed or names a path outside its root."""


def safe_rel(path: str) -> str:
    """`path` if it is a normalised relative path inside its root; ManifestError otherwise."""
    parts = path.split("/")
    if (
        not path
        or path.startswith("/")
        or "\\" in path
        or "\x00" in path
        or any(p in ("", ".", "..") for p in parts)
    ):
        raise ManifestError(f"path {path!r} is not a plain relative path inside the root")
    return path


@dataclass(frozen=True)
class FileEntry:
    path: str
    size: int
    hash: str
    chunks: tuple[Chunk, ...]
    mode: int = 0o644

    @classmethod
    def of(cls, path: str, digest: FileDigest, *, mode: int = 0o644) -> FileEntry:
        return cls(safe_rel(path), digest.size, digest.hash, digest.chunks, mode & 0o777)


@dataclass(frozen=True)
class Manifest:
    files: tuple[FileEntry, ...]

    @classmethod
    def of(cls, files: Iterable[FileEntry]) -> Manifest:
        by_path = {f.path: f for f in files}
        return cls(tuple(by_path[p] for p in sorted(by_path)))

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)

    def chunk_hashes(self) -> set[str]:
        return {c.hash for f in self.files for c in f.chunks}

    def to_json(self) -> bytes:
        """The canonical text: sorted keys, no blanks, ASCII (made once per manifest)."""
        return self._json

    @cached_property
    def _json(self) -> bytes:
        value = {
            "version": VERSION,
            "files": [
                {
                    "path": f.path,
                    "size": f.size,
                    "hash": f.hash,
                    "mode": f.mode,
                    "chunks": [[c.hash, c.size] for c in f.chunks],
                }
                for f in self.files
            ],
        }
        return json.dumps(value, sort_keys=True, separators=(",", ":")).encode("ascii")

    @cached_property
    def hash(self) -> str:
        return chunk_hash(self.to_json())

    @classmethod
    def from_json(cls, text: bytes | str) -> Manifest:
        try:
            value = json.loads(text)
            if value.get("version") != VERSION:
                raise ManifestError(f"manifest version {value.get('version')!r} is not {VERSION}")
            return cls.of(entry_of(f) for f in value["files"])
        except (KeyError, TypeError, AttributeError, json.JSONDecodeError) as exc:
            raise ManifestError(f"malformed manifest: {exc}") from None


def entry_of(f: dict[str, Any]) -> FileEntry:
    """A file's entry from its JSON (checked as a manifest's are)."""
    chunks = tuple(Chunk(str(h), int(s)) for h, s in f["chunks"])
    size, digest = int(f["size"]), str(f["hash"])
    if sum(c.size for c in chunks) != size or size < 0:
        raise ManifestError(f"{f['path']!r}: its chunks do not add up to its size")
    if any(len(h) != 64 for h in [digest, *(c.hash for c in chunks)]):
        raise ManifestError(f"{f['path']!r}: hashes are 64 hex digits")
    return FileEntry(safe_rel(str(f["path"])), size, digest, chunks, int(f.get("mode", 0o644)))
