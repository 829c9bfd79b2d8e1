"""What the worker has to tell the controller: output lines and finishes, kept until sent.

Lines arrive from lane threads; finishes from the event loop. Output is never dropped while
the controller takes it: once an attempt holds `HOLD_BYTES` of unsent output, the lane thread
that adds a line waits until a report has taken some (the task's pipe fills and the task waits
too: back-pressure), and from `SEND_BYTES` on the agent is told to send at once
(`backlog`). Only while the controller cannot take output (unreachable, or answering errors:
`set_reachable`) does an attempt's oldest output give way to its newest beyond `HOLD_BYTES`; the
log then says, where the gap is, how many lines were dropped and why.

A report carries at most `BATCH_BYTES` of output (what is left goes in the next one); a finish
waits until its attempt's lines have all gone, so its log is whole when the controller hears it
ended.

Each batch numbers its lines (`first_line`: the attempt's lines are counted from 0 as they
are taken), and a batch put back after a report whose answer did not come is sent again marked
`repeat`: the controller may have stored it (a timeout, a poll given up, an error after the
commit), and stores only the lines it lacks.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Literal, cast

from thresher.schemas import api

__all__ = ["BATCH_BYTES", "HOLD_BYTES", "SEND_BYTES", "Outbox"]

HOLD_BYTES = 4 << 20
"""Unsent output kept per attempt: a lane adding more waits (or, with the controller away, the
oldest lines are dropped)."""
SEND_BYTES = 256 << 10
"""Unsent output of one attempt that has the agent send a report at once."""
BATCH_BYTES = 1 << 20
"""The most output one request carries."""
_Stream = Literal["stdout", "stderr", "system"]
_LINE_OVERHEAD = 16  # a line's JSON around its text: ["stdout","..."],
_WAIT_S = 1.0  # a waiting lane looks again this often, whatever it was told


@dataclass
class _Lines:
    token: str
    lines: deque[tuple[str, str]] = field(default_factory=deque)
    size: int = 0  # bytes of `lines`, as counted against HOLD_BYTES
    dropped: Counter[str] = field(default_factory=Counter)  # lines dropped here, by reason
    progress: float | None = None
    outputs: list[str] = field(default_factory=list)
    status: str | None = None


@dataclass
class _Numbers:
    """An attempt's line numbers: the next line's, and where lines that may have reached the
    controller end (those put back after a report without an answer)."""

    next: int = 0
    sent_until: int = 0


def _size(text: str) -> int:
    return len(text) + _LINE_OVERHEAD


class Outbox:
    """Thread-safe where said; everything else is for the event loop given to `bind`."""

    def __init__(
        self,
        *,
        hold_bytes: int = HOLD_BYTES,
        send_bytes: int = SEND_BYTES,
        batch_bytes: int = BATCH_BYTES,
    ) -> None:
        self._hold = hold_bytes
        self._send = send_bytes
        self._batch = batch_bytes
        self._lock = threading.Lock()
        self._room = threading.Condition(self._lock)  # notified when output was taken
        self._lines: dict[int, _Lines] = {}
        self._numbers: dict[int, _Numbers] = {}  # kept until the attempt's finish is taken
        self._finished: list[api.FinishIn] = []
        self._unreachable: str | None = None  # why output cannot be sent now
        self._urged = False  # the agent was told to send (backlog) since the last drain
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self.has_finishes = asyncio.Event()
        self.backlog = asyncio.Event()
        """Set when an attempt holds `SEND_BYTES` of output or more: send a report now."""

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """The agent's loop: lane threads wake it through `backlog`."""
        self._loop = loop
        self._loop_thread = threading.get_ident()

    def set_reachable(self, reachable: bool, why: str = "") -> None:
        """Whether the controller takes output now (`why` not: said where lines are dropped).
        Thread-safe."""
        with self._lock:
            self._unreachable = None if reachable else why or "the controller did not take it"
            if not reachable:
                self._room.notify_all()  # waiting lanes drop their oldest lines instead

    def add_line(self, attempt_id: int, token: str, stream: str, text: str) -> None:
        """Thread-safe; may wait for room (see the module's docstring)."""
        with self._lock:
            entry = self._lines.get(attempt_id)
            if entry is None:
                entry = self._lines[attempt_id] = _Lines(token)
            entry.lines.append((stream, text))
            entry.size += len(text) + _LINE_OVERHEAD
            if entry.size >= self._send:
                self._full(attempt_id, entry)

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
            self._numbers.pop(attempt_id, None)
            self._room.notify_all()
        self._finished = [f for f in self._finished if f.attempt_id != attempt_id]

    def empty(self) -> bool:
        with self._lock:
            return not self._lines and not self._finished

    def drain(self) -> tuple[list[api.OutputBatch], list[api.FinishIn]]:
        """Take up to `batch_bytes` of output (at least a line) and the finishes of attempts
        whose output is all taken; the caller puts them back if they could not be sent."""
        with self._lock:
            output: list[api.OutputBatch] = []
            budget = self._batch
            for attempt_id, entry in list(self._lines.items()):
                if budget <= 0 and entry.lines:
                    continue  # the next report takes it
                before = entry.size
                taken = _take(entry, budget)
                budget -= before - entry.size
                if not entry.lines:
                    del self._lines[attempt_id]
                numbers = self._numbers.setdefault(attempt_id, _Numbers())
                output.append(_batch(attempt_id, entry, taken, numbers, hold=self._hold))
            left = set(self._lines)
            self._urged = False
            self._room.notify_all()
            if not any(entry.size >= self._send for entry in self._lines.values()):
                self.backlog.clear()
            finished = [f for f in self._finished if f.attempt_id not in left]
            for fin in finished:
                self._numbers.pop(fin.attempt_id, None)  # no line follows its end
        self._finished = [f for f in self._finished if f.attempt_id in left]
        if not self._finished:
            self.has_finishes.clear()
        return output, finished

    def put_back(self, output: list[api.OutputBatch], finished: list[api.FinishIn]) -> None:
        """Return unsent items ahead of anything that arrived meanwhile, keeping line order."""
        with self._lock:
            for batch in reversed(output):
                entry = self._lines.get(batch.attempt_id)
                if entry is None:
                    entry = self._lines[batch.attempt_id] = _Lines(batch.token)
                numbers = self._numbers.setdefault(batch.attempt_id, _Numbers())
                _restore(entry, batch, numbers)
        self._finished = finished + self._finished
        if self._finished:
            self.has_finishes.set()

    # -- inside ---------------------------------------------------------------------------------

    def _full(self, attempt_id: int, entry: _Lines) -> None:
        """The attempt holds much output (the lock is held): have it sent, and past
        `hold_bytes` wait until some is taken, or drop the oldest while nothing can be sent."""
        if not self._urged:
            self._urged = True
            self._urge()
        if threading.get_ident() == self._loop_thread:
            return  # the loop's own lines (a few): it cannot wait for itself
        while entry.size > self._hold and self._lines.get(attempt_id) is entry:
            if self._unreachable is not None:
                numbers = self._numbers.get(attempt_id)
                if numbers is not None and numbers.next < numbers.sent_until:
                    # Lines that may have reached the controller go: what is left is numbered
                    # past them, so it is stored whole (perhaps twice) rather than skipped.
                    numbers.next = numbers.sent_until
                while entry.size > self._hold and len(entry.lines) > 1:
                    _, text = entry.lines.popleft()
                    entry.size -= _size(text)
                    entry.dropped[self._unreachable] += 1
                return
            self._room.wait(_WAIT_S)

    def _urge(self) -> None:
        loop = self._loop
        if loop is None:
            return
        if threading.get_ident() == self._loop_thread:
            self.backlog.set()
        else:
            with contextlib.suppress(RuntimeError):  # a closed loop: the worker is going away
                loop.call_soon_threadsafe(self.backlog.set)


def _take(entry: _Lines, budget: int) -> list[tuple[str, str]]:
    """The oldest lines of `entry` up to `budget` bytes (at least one), taken out of it."""
    if entry.size <= budget:
        taken = list(entry.lines)
        entry.lines.clear()
        entry.size = 0
        return taken
    taken = []
    while entry.lines and (not taken or budget > 0):
        line = entry.lines.popleft()
        taken.append(line)
        budget -= _size(line[1])
        entry.size -= _size(line[1])
    return taken


def _batch(
    attempt_id: int,
    entry: _Lines,
    taken: list[tuple[str, str]],
    numbers: _Numbers,
    *,
    hold: int,
) -> api.OutputBatch:
    """What a report carries of one attempt: the lines taken, after a word on those dropped
    before them, numbered on from `numbers`; progress, written files and status go with its
    first batch."""
    kept = f"{hold / (1 << 20):g} MiB" if hold >= 1 << 20 else f"{hold} bytes"
    markers = [
        (
            "system",
            f"[{count} lines of output dropped here: {why}; at most {kept} of a task's output"
            " waits for the controller]",
        )
        for why, count in entry.dropped.items()
    ]
    # Built without validation (a report may carry many thousand lines): the lines' streams are
    # the runner's and the outbox's own.
    lines = markers + taken if markers else taken
    first = numbers.next
    numbers.next += len(lines)
    batch = api.OutputBatch.model_construct(
        attempt_id=attempt_id,
        token=entry.token,
        lines=cast("list[tuple[_Stream, str]]", lines),
        first_line=first,
        repeat=first < numbers.sent_until,
        progress=entry.progress,
        outputs=entry.outputs,
        status_message=entry.status,
    )
    entry.dropped = Counter()
    entry.progress, entry.outputs, entry.status = None, [], None
    return batch


def _restore(entry: _Lines, batch: api.OutputBatch, numbers: _Numbers) -> None:
    """Put an unsent batch back in front of what `entry` gathered since; its lines keep their
    numbers, and may have reached the controller."""
    if batch.first_line is not None:
        numbers.next = batch.first_line
        numbers.sent_until = max(numbers.sent_until, batch.first_line + len(batch.lines))
    entry.lines.extendleft(reversed([(stream, text) for stream, text in batch.lines]))
    entry.size += sum(_size(text) for _, text in batch.lines)
    entry.outputs[:0] = batch.outputs
    if entry.progress is None:
        entry.progress = batch.progress
    if entry.status is None:
        entry.status = batch.status_message
