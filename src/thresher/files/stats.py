"""What a transfer did, as counted while it ran."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass
class TransferStats:
    files: int = 0
    bytes_total: int = 0  # of the files the manifest lists
    bytes_moved: int = 0  # chunk bytes that crossed the wire
    bytes_reused: int = 0  # chunk bytes taken from what was already there
    files_skipped: int = 0  # already there, unchanged
    files_kept: int = 0  # there with other content, left as it was (existing: skip)
    files_copied: int = 0  # written beside a different file of the same name (copy)
    files_resumed: int = 0
    chunks_refetched: int = 0  # came corrupted and were asked for again

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def add(self, other: TransferStats) -> None:
        for key, value in asdict(other).items():
            setattr(self, key, getattr(self, key) + value)
