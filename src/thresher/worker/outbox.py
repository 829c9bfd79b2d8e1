"""What the worker has to tell the controller: output lines and finishes, kept until sent.

Lines arrive from lane threads; finishes from the event loop. While the controller is away the
outbox grows, up to a bound per attempt (oldest lines are dropped, and that is said in the log).
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field

from thresher.schemas import api

MAX_LINES_PER_ATTEMPT = 50_000


@dataclass
class _Lines:
    token: str
    lines: list[tuple[str, str]] = field(default_factory=list)
    dropped: int = 0
    progress: float | None = None
    outputs: list[str] = field(default_factory=list)
    status: str | None = None


class Outbox:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._lines: dict[int, _Lines] = {}
        self._finished: list[api.FinishIn] = []
        self.has_finishes = asyncio.Event()

    def add_line(self, attempt_id: int, token: str, stream: str, text: str) -> None:
        """Thread-safe."""
        with self._lock:
            entry = self._lines.setdefault(attempt_id, _Lines(token))
            entry.lines.append((stream, text))
            if len(entry.lines) > MAX_LINES_PER_ATTEMPT:
                del entry.lines[0]
                entry.dropped += 1

    def set_progress(self, attempt_id: int, token: str, percent: float) -> None:
        """Thread-safe."""
        with self._lock:
            self._lines.setdefault(attempt_id, _Lines(token)).progress = percent

    def set_status(self, attempt_id: int, token: str, message: str) -> None:
        """The attempt's latest status message (OpenJD's `openjd_status:`). Thread-safe."""
        with self._lock:
            self._lines.setdefault(attempt_id, _Lines(token)).status = message[:10_000]

    def add_output(self, attempt_id: int, token: str, path: str) -> None:
        """A file the attempt's engine wrote. Thread-safe."""
        with self._lock:
            self._lines.setdefault(attempt_id, _Lines(token)).outputs.append(path)

    def add_finish(self, finish: api.FinishIn) -> None:
        """Event loop only."""
        self._finished.append(finish)
        self.has_finishes.set()

    def forget(self, attempt_id: int) -> None:
        with self._lock:
            self._lines.pop(attempt_id, None)
        self._finished = [f for f in self._finished if f.attempt_id != attempt_id]

    def empty(self) -> bool:
        with self._lock:
            return not self._lines and not self._finished

    def drain(self) -> tuple[list[api.OutputBatch], list[api.FinishIn]]:
        """Take everything; the caller puts it back if it could not be sent."""
        with self._lock:
            entries, self._lines = self._lines, {}
        output = []
        for attempt_id, e in entries.items():
            lines = list(e.lines)
            if e.dropped:
                lines.insert(0, ("system", f"[{e.dropped} earlier lines dropped while offline]"))
            output.append(
                api.OutputBatch.model_validate(
                    {
                        "attempt_id": attempt_id,
                        "token": e.token,
                        "lines": lines,
                        "progress": e.progress,
                        "outputs": e.outputs,
                        "status_message": e.status,
                    }
                )
            )
        finished, self._finished = self._finished, []
        self.has_finishes.clear()
        return output, finished

    def put_back(self, output: list[api.OutputBatch], finished: list[api.FinishIn]) -> None:
        """Return unsent items ahead of anything that arrived meanwhile, keeping line order."""
        with self._lock:
            for batch in output:
                newer = self._lines.get(batch.attempt_id)
                entry = _Lines(
                    batch.token,
                    [(s, t) for s, t in batch.lines],
                    0,
                    batch.progress,
                    list(batch.outputs),
                    batch.status_message,
                )
                if newer is not None:
                    entry.lines.extend(newer.lines)
                    entry.outputs.extend(newer.outputs)
                    entry.dropped = newer.dropped
                    entry.progress = (
                        newer.progress if newer.progress is not None else entry.progress
                    )
                    entry.status = newer.status if newer.status is not None else entry.status
                self._lines[batch.attempt_id] = entry
        self._finished = finished + self._finished
        if self._finished:
            self.has_finishes.set()
