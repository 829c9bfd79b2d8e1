"""Positions of blocks that this process reserved and has not handed out yet (PostgreSQL).

A claim that finds none of its block's positions here locks the block's row, moves the cursor
past a range of positions (`store.cursor`) and, at its commit, leaves what it did not hand
out here; the next claims of this process take from here without touching the block's row.
The database never learns which process holds which positions: the tasks' rows are the
truth. A position below the cursor without a task row is one that nobody handed out yet,
held here by some controller or lost with one (killed, stopped, a rolled-back claim on a
lost connection); a claim that finds the cursor at the block's end looks for them (`gaps`)
and hands them out. Two processes may then hold the same position: the task row's unique
key lets one of them insert it, the other passes it over, as for a task touched before
dispatch. Every function is safe to call from several threads.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections import deque
from collections.abc import Iterable
from typing import Any

#: The most positions one reservation takes (the cursor is written once per range). Each write
#: is a version of the block row that a held snapshot keeps, and every task row's insert walks
#: them all (its foreign key check looks the row up by id): 4,096 writes it about every two
#: seconds at 2,000 claims a second (512: four times a second).
RANGE_MAX = 4096
#: A block's range is at most this share of what is left under its cursor, so that near its
#: end the controllers sharing a database each get some, rather than one holding the rest.
RANGE_SHARE = 8
#: Seconds between two looks for unassigned positions of one block by this process.
SWEEP_EVERY_S = 2.0

_LOCK = threading.Lock()


class _Held:
    """What the process holds of one database (kept per engine: a test, or a tool, may open
    several databases whose block ids are the same)."""

    def __init__(self) -> None:
        self.ranges: dict[int, deque[range]] = {}  # block id -> ranges, handed out from the left
        self.swept: dict[int, float] = {}  # block id -> when this process last looked for gaps


_BY_ENGINE: weakref.WeakKeyDictionary[Any, _Held] = weakref.WeakKeyDictionary()


def _of(engine: Any) -> _Held:
    found = _BY_ENGINE.get(engine)
    if found is None:
        found = _BY_ENGINE[engine] = _Held()
    return found


def range_size(need: int, left: int) -> int:
    """How many positions to reserve for a claim that needs `need`, with `left` under the
    cursor."""
    return max(need, min(RANGE_MAX, left // RANGE_SHARE))


def take(engine: Any, block_id: int, k: int) -> list[int]:
    """Up to `k` held positions of the block, in order, no longer held."""
    out: list[int] = []
    with _LOCK:
        mine = _of(engine).ranges
        held = mine.get(block_id)
        while held and len(out) < k:
            r = held[0]
            n = min(k - len(out), len(r))
            out.extend(r[:n])
            if n == len(r):
                held.popleft()
            else:
                held[0] = r[n:]
        if held is not None and not held:
            del mine[block_id]
    return out


def hold(engine: Any, block_id: int, positions: Iterable[int]) -> None:
    """Keep positions of the block to hand out later, after those held already."""
    runs = _runs(positions)
    if not runs:
        return
    with _LOCK:
        _of(engine).ranges.setdefault(block_id, deque()).extend(runs)


def give_back(
    engine: Any, block_id: int, positions: Iterable[int], *, unless: Iterable[range] = ()
) -> None:
    """What a rolled-back transaction had to do with the block's held positions, undone: the
    `positions` it took are held again, each in its place among those held (handed out in
    order, lowest first), and none of the ranges `unless` is held any more (positions past
    the cursor as the rollback left it: the next reservation takes them)."""
    back = _runs(sorted(positions))
    gone = [r for r in unless if r]
    if not back and not gone:
        return
    with _LOCK:
        mine = _of(engine).ranges
        runs = _merged([*mine.get(block_id, ()), *back])
        for r in gone:
            runs = [piece for run in runs for piece in _minus(run, r)]
        if runs:
            mine[block_id] = deque(runs)
        else:
            mine.pop(block_id, None)


def held(engine: Any, block_id: int) -> int:
    """How many positions of the block this process holds."""
    with _LOCK:
        return sum(len(r) for r in _of(engine).ranges.get(block_id, ()))


def may_sweep(engine: Any, block_id: int) -> bool:
    """Whether to look for the block's unassigned positions now (at most every
    SWEEP_EVERY_S per block); counts as the look."""
    now = time.monotonic()
    with _LOCK:
        swept = _of(engine).swept
        last = swept.get(block_id)
        if last is not None and now - last < SWEEP_EVERY_S:
            return False
        if len(swept) > 10_000:
            swept.clear()
        swept[block_id] = now
        return True


def forget(engine: Any, block_ids: Iterable[int] | None = None) -> None:
    """Drop what is held (of these blocks; None: all, as a process that died would): the
    positions become gaps below the cursor that a sweep finds again."""
    with _LOCK:
        mine = _of(engine)
        if block_ids is None:
            mine.ranges.clear()
            mine.swept.clear()
            return
        for block_id in block_ids:
            mine.ranges.pop(block_id, None)
            mine.swept.pop(block_id, None)


def _runs(positions: Iterable[int]) -> list[range]:
    """Positions as ranges of consecutive ones, in the order given."""
    runs: list[range] = []
    for p in positions:
        if runs and runs[-1].stop == p:
            runs[-1] = range(runs[-1].start, p + 1)
        else:
            runs.append(range(p, p + 1))
    return runs


def _merged(runs: Iterable[range]) -> list[range]:
    """Ranges (step 1) in order, those that touch or overlap made one."""
    out: list[range] = []
    for r in sorted((r for r in runs if r), key=lambda r: r.start):
        if out and r.start <= out[-1].stop:
            out[-1] = range(out[-1].start, max(out[-1].stop, r.stop))
        else:
            out.append(r)
    return out


def _minus(run: range, gone: range) -> list[range]:
    """The parts of `run` outside `gone` (both of step 1)."""
    parts = [
        range(run.start, min(run.stop, gone.start)),
        range(max(run.start, gone.stop), run.stop),
    ]
    return [p for p in parts if p]
