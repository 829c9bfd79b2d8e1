"""A worker's on-disk cache of engine sources, named by their SHA-256 digest."""

from __future__ import annotations

import os
import re
from pathlib import Path

from thresher.engines.conversion import write_atomically
from thresher.engines.loading import source_hash

_DIGEST = re.compile(r"[0-9a-f]{64}\Z")


class EngineCache:
    """Engine sources stored as ``<directory>/<sha256>.py``.

    Files are written atomically, so a crash never leaves a half-written source under its
    final name; a file whose content no longer matches its name is dropped on read.
    """

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)

    def path_for(self, digest: str) -> Path:
        """Where the source with ``digest`` is stored; ``ValueError`` for a malformed digest."""
        if not _DIGEST.match(digest):
            raise ValueError(f"not a SHA-256 hex digest: {digest!r}")
        return self.directory / f"{digest}.py"

    def put(self, source: str) -> str:
        """Store ``source`` (if not yet stored) and return its digest."""
        digest = source_hash(source)
        path = self.path_for(digest)
        if not path.is_file():
            write_atomically(path, source.encode("utf-8"))
        return digest

    def get(self, digest: str) -> str | None:
        """The source stored under ``digest``, or ``None`` when absent or corrupt."""
        path = self.path_for(digest)
        try:
            source = path.read_bytes().decode("utf-8")
        except (FileNotFoundError, UnicodeDecodeError):
            source = None
        if source is None or source_hash(source) != digest:
            path.unlink(missing_ok=True)
            return None
        return source
