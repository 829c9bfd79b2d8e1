"""Frame sets and task layouts: a block's items and how they split into tasks, never materialised.

A `FrameSet` is parsed from a spec such as `1-10,20,30-40x2` (or OpenJD's `1-100:10`) and keeps
only its runs, so a 10,000,000-frame set costs as much memory as a 10-frame one. Items are ordered
by run, runs by their first frame: ascending, except that stepped runs may interleave
(`1-9x2,2-10x2` yields the odd frames, then the even ones).

A `TaskLayout` cuts a frame set into chunks (task `i` holds items `[i*chunk, (i+1)*chunk)`) and
maps a dispatch cursor to a task index: tasks holding priority frames first, then a preview pass
(every Nth task), then the rest, each in O(log) time without a list of all tasks.
"""

from __future__ import annotations

import math
import re
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from thresher.core.errors import InvalidInput

MAX_ITEMS = 10_000_000
MAX_SEGMENTS = 10_000
# Real specs interleave a handful of stepped runs; the bound keeps lookups O(log + depth).
MAX_INTERLEAVED = 32
MAX_PRIORITY_FRAMES = 10_000
_MAX_DIGITS = 15

_RUN = re.compile(r"(-?\d+)(?:\s*-\s*(-?\d+)(?:\s*([x:])\s*(-?\d+))?)?", re.IGNORECASE)
_FORMS = "expected N, A-B, A-BxS or A-B:S"


@dataclass(frozen=True)
class FrameRun:
    """An arithmetic run of frames: `first`, `first + step`, ... up to and including `last`."""

    first: int
    last: int
    step: int = 1

    @property
    def count(self) -> int:
        """How many frames the run holds."""
        return (self.last - self.first) // self.step + 1

    @property
    def spec(self) -> str:
        """The run written in the spec grammar (`4`, `1-10` or `1-9x2`)."""
        if self.first == self.last:
            return str(self.first)
        if self.step == 1:
            return f"{self.first}-{self.last}"
        return f"{self.first}-{self.last}x{self.step}"

    def positions_within(self, low: int, high: int) -> range:
        """Indexes inside this run of the frames lying in [low, high] (possibly empty)."""
        start = -((self.first - max(low, self.first)) // self.step)
        stop = (min(high, self.last) - self.first) // self.step + 1
        return range(start, max(start, stop))


@dataclass(frozen=True, repr=False)
class FrameSet:
    """An immutable, random-access set of frames; build it with `parse` or `from_frames`."""

    runs: tuple[FrameRun, ...]
    _firsts: tuple[int, ...] = field(init=False, compare=False)
    _offsets: tuple[int, ...] = field(init=False, compare=False)
    # _covers[k]: earlier runs whose span reaches runs[k].first (at most MAX_INTERLEAVED of them).
    _covers: tuple[tuple[int, ...], ...] = field(init=False, compare=False)

    def __post_init__(self) -> None:
        offsets = [0]
        for run in self.runs:
            offsets.append(offsets[-1] + run.count)
        object.__setattr__(self, "_firsts", tuple(run.first for run in self.runs))
        object.__setattr__(self, "_offsets", tuple(offsets))
        object.__setattr__(self, "_covers", _covers(self.runs))

    @classmethod
    def parse(cls, spec: str, *, max_items: int = MAX_ITEMS, field: str = "frames") -> FrameSet:
        """Parse a spec such as `1-10,20,30-40x2`; raise InvalidInput naming what is wrong."""
        if not spec.strip():
            raise InvalidInput("frame spec is empty", field=field)
        if spec.count(",") >= MAX_SEGMENTS:
            raise InvalidInput(
                f"frame spec has {spec.count(',') + 1:,} segments; the limit is {MAX_SEGMENTS:,}",
                field=field,
            )
        runs = [
            _parse_run(text, spec, number, field) for number, text in enumerate(spec.split(","))
        ]
        return cls._build(runs, max_items=max_items, field=field)

    @classmethod
    def from_frames(
        cls, frames: Iterable[int], *, max_items: int = MAX_ITEMS, field: str = "frames"
    ) -> FrameSet:
        """Build a set from frames in any order (duplicates collapse) as compact stepped runs."""
        ordered = sorted(set(frames))
        if not ordered:
            raise InvalidInput("no frames given", field=field)
        if len(ordered) > max_items:
            raise InvalidInput(
                f"{len(ordered):,} frames given; the limit is {max_items:,}", field=field
            )
        runs = [(run, _quote(run.spec)) for run in _compress(ordered)]
        return cls._build(runs, max_items=max_items, field=field)

    @classmethod
    def _build(cls, runs: list[tuple[FrameRun, str]], *, max_items: int, field: str) -> FrameSet:
        if len(runs) > MAX_SEGMENTS:
            raise InvalidInput(
                f"frame spec has {len(runs):,} segments; the limit is {MAX_SEGMENTS:,}",
                field=field,
            )
        total = sum(run.count for run, _ in runs)
        if total > max_items:
            raise InvalidInput(
                f"frame spec holds {total:,} frames; the limit is {max_items:,}", field=field
            )
        runs = sorted(runs, key=lambda pair: pair[0].first)
        _check_disjoint(runs, field)
        return cls(_merge([run for run, _ in runs]))

    @property
    def spec(self) -> str:
        """A normalised spec that parses back to this same set."""
        return ",".join(run.spec for run in self.runs)

    @property
    def first(self) -> int:
        """The smallest frame (also the first in order)."""
        return self.runs[0].first

    @property
    def last(self) -> int:
        """The largest frame (the last in order unless stepped runs interleave)."""
        return max(run.last for run in self.runs)

    def __len__(self) -> int:
        return self._offsets[-1]

    def __getitem__(self, index: int) -> int:
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(f"frame index {index} out of range")
        k = bisect_right(self._offsets, index) - 1
        run = self.runs[k]
        return run.first + (index - self._offsets[k]) * run.step

    def __iter__(self) -> Iterator[int]:
        for run in self.runs:
            yield from range(run.first, run.last + 1, run.step)

    def __contains__(self, frame: object) -> bool:
        return isinstance(frame, int) and self.position(frame) is not None

    def __repr__(self) -> str:
        return f"FrameSet({self.spec!r})"

    def slice(self, start: int, stop: int) -> list[int]:
        """The frames at positions [start, stop), clamped to the set like a list slice."""
        start, stop = max(start, 0), min(stop, len(self))
        out: list[int] = []
        k = bisect_right(self._offsets, start) - 1
        while start < stop:
            run, offset = self.runs[k], self._offsets[k]
            end = min(stop, self._offsets[k + 1])
            out.extend(range(run.first, run.last + 1, run.step)[start - offset : end - offset])
            start, k = end, k + 1
        return out

    def bounds(self, start: int, stop: int) -> tuple[int, int]:
        """The smallest and largest frame at positions [start, stop) (a non-empty span)."""
        if not 0 <= start < stop <= len(self):
            raise IndexError(f"positions [{start}, {stop}) out of range")
        low, high = self[start], self[start]
        k = bisect_right(self._offsets, start) - 1
        while start < stop:
            run, end = self.runs[k], min(stop, self._offsets[k + 1])
            low = min(low, run.first + (start - self._offsets[k]) * run.step)
            high = max(high, run.first + (end - 1 - self._offsets[k]) * run.step)
            start, k = end, k + 1
        return low, high

    def position(self, frame: int) -> int | None:
        """The index of `frame` in the set's order, or None if the set lacks it."""
        found = self.positions_between(frame, frame)
        return found[0].start if found else None

    def positions_between(self, low: int, high: int) -> list[range]:
        """Ascending, disjoint position ranges of the frames lying in [low, high]."""
        if low > high:
            return []
        lo, hi = bisect_left(self._firsts, low), bisect_right(self._firsts, high)
        candidates: Sequence[int] = range(lo, hi)
        if lo > 0:
            candidates = [*self._covers[lo - 1], lo - 1, *candidates]
        out = []
        for k in candidates:
            inside = self.runs[k].positions_within(low, high)
            if inside:
                out.append(range(inside.start + self._offsets[k], inside.stop + self._offsets[k]))
        return out


def _quote(text: str, limit: int = 60) -> str:
    """Quote user text for a message, cut short so a huge spec cannot flood an error."""
    return f"'{text}'" if len(text) <= limit else f"'{text[: limit - 3]}...'"


def _parse_run(text: str, spec: str, number: int, field: str) -> tuple[FrameRun, str]:
    text = text.strip()
    if not text:
        raise InvalidInput(f"segment {number + 1} of {_quote(spec.strip())} is empty", field=field)
    match, label = _RUN.fullmatch(text), _quote(text)
    if match is None:
        raise InvalidInput(f"{label} is not a frame range ({_FORMS})", field=field)
    start, end, _, step = match.groups()
    if any(len(n.lstrip("-")) > _MAX_DIGITS for n in (start, end, step) if n):
        raise InvalidInput(f"{label}: frame number too large", field=field)
    first = int(start)
    last = first if end is None else int(end)
    stride = 1 if step is None else int(step)
    if last < first:
        raise InvalidInput(f"{label}: end {last} is before start {first}", field=field)
    if stride < 1:
        raise InvalidInput(f"{label}: step must be at least 1, not {stride}", field=field)
    last -= (last - first) % stride
    return FrameRun(first, last, stride), label


def _common_frame(a: FrameRun, b: FrameRun) -> int | None:
    """The smallest frame in both runs, or None (Chinese remainder over the shared span)."""
    low, high = max(a.first, b.first), min(a.last, b.last)
    gcd = math.gcd(a.step, b.step)
    if low > high or (b.first - a.first) % gcd:
        return None
    modulus = b.step // gcd
    k = (b.first - a.first) // gcd * pow(a.step // gcd, -1, modulus) % modulus
    period = a.step * modulus
    frame = a.first + a.step * k
    frame += -((frame - low) // period) * period
    return frame if frame <= high else None


def _check_disjoint(ordered: list[tuple[FrameRun, str]], field: str) -> None:
    active: list[tuple[FrameRun, str]] = []
    for run, label in ordered:
        active = [(other, t) for other, t in active if other.last >= run.first]
        for other, other_label in active:
            shared = _common_frame(other, run)
            if shared is not None:
                raise InvalidInput(
                    f"segments {other_label} and {label} overlap (both hold frame {shared})",
                    field=field,
                )
        if len(active) >= MAX_INTERLEAVED:
            raise InvalidInput(
                f"{label} interleaves with {len(active)} other segments; "
                f"the limit is {MAX_INTERLEAVED - 1}",
                field=field,
            )
        active.append((run, label))


def _merge(runs: list[FrameRun]) -> tuple[FrameRun, ...]:
    """Join neighbours that continue one progression (`1-5,6-10` becomes `1-10`)."""
    out: list[FrameRun] = []
    for run in runs:
        joined = _join(out[-1], run) if out else None
        if joined is None:
            out.append(run)
        else:
            out[-1] = joined
    return tuple(out)


def _join(a: FrameRun, b: FrameRun) -> FrameRun | None:
    if a.count > 1:
        step = a.step
    elif b.count > 1:
        step = b.step
    else:
        step = 1
    fits = (a.count == 1 or a.step == step) and (b.count == 1 or b.step == step)
    return FrameRun(a.first, b.last, step) if fits and b.first == a.last + step else None


def _compress(ordered: list[int]) -> Iterator[FrameRun]:
    """Greedy runs of constant step; a lone pair with a gap stays two single frames."""
    i = 0
    while i < len(ordered):
        if i + 1 == len(ordered):
            yield FrameRun(ordered[i], ordered[i])
            return
        step, j = ordered[i + 1] - ordered[i], i + 1
        while j + 1 < len(ordered) and ordered[j + 1] - ordered[j] == step:
            j += 1
        if j == i + 1 and step != 1:
            yield FrameRun(ordered[i], ordered[i])
            i += 1
        else:
            yield FrameRun(ordered[i], ordered[j], step)
            i = j + 1


def _covers(runs: tuple[FrameRun, ...]) -> tuple[tuple[int, ...], ...]:
    active: list[int] = []
    covers = []
    for k, run in enumerate(runs):
        active = [m for m in active if runs[m].last >= run.first]
        covers.append(tuple(active))
        active.append(k)
    return tuple(covers)


def _nth_free(n: int, gaps: Sequence[int]) -> int:
    """The n-th (0-based) natural number not excluded; gaps[i] = excluded[i] - i, ascending."""
    return n + bisect_right(gaps, n)


def _gaps(excluded: Sequence[int]) -> tuple[int, ...]:
    return tuple(value - i for i, value in enumerate(excluded))


@dataclass(frozen=True)
class TaskLayout:
    """How a block's frames split into tasks of `chunk` items, and the order tasks go out in.

    Dispatch order: tasks holding a priority frame (ascending), then, with `preview_every=N`,
    the remaining tasks whose index is a multiple of N, then the rest ascending.
    """

    frames: FrameSet
    chunk: int
    priority_frames: FrameSet | None = field(default=None, kw_only=True)
    preview_every: int | None = field(default=None, kw_only=True)
    _priority: tuple[int, ...] = field(init=False, repr=False, compare=False)
    # Priority tasks to skip in the preview pass (as multiples of N) and in the rest (as ranks).
    _preview_skips: tuple[int, ...] = field(init=False, repr=False, compare=False)
    _rest_skips: tuple[int, ...] = field(init=False, repr=False, compare=False)
    _preview_gaps: tuple[int, ...] = field(init=False, repr=False, compare=False)
    _rest_gaps: tuple[int, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.chunk < 1:
            raise InvalidInput(f"chunk must be at least 1, not {self.chunk}", field="chunk")
        if self.preview_every is not None and self.preview_every < 1:
            raise InvalidInput(
                f"preview_every must be at least 1, not {self.preview_every}",
                field="preview_every",
            )
        priority = self._priority_tasks()
        every = self.preview_every
        previews = tuple(t // every for t in priority if every and t % every == 0)
        rest = tuple(self._rank(t) for t in priority if not every or t % every)
        object.__setattr__(self, "_priority", priority)
        object.__setattr__(self, "_preview_skips", previews)
        object.__setattr__(self, "_rest_skips", rest)
        object.__setattr__(self, "_preview_gaps", _gaps(previews))
        object.__setattr__(self, "_rest_gaps", _gaps(rest))

    def _priority_tasks(self) -> tuple[int, ...]:
        if self.priority_frames is None:
            return ()
        if len(self.priority_frames) > MAX_PRIORITY_FRAMES:
            raise InvalidInput(
                f"{len(self.priority_frames):,} priority frames; "
                f"the limit is {MAX_PRIORITY_FRAMES:,}",
                field="priority_frames",
            )
        tasks = set()
        for frame in self.priority_frames:
            position = self.frames.position(frame)
            if position is None:
                raise InvalidInput(
                    f"priority frame {frame} is not in the frames {_quote(self.frames.spec)}",
                    field="priority_frames",
                )
            tasks.add(position // self.chunk)
        return tuple(sorted(tasks))

    @property
    def task_count(self) -> int:
        """How many tasks the block has."""
        return -(-len(self.frames) // self.chunk)

    def task_frames(self, task: int) -> list[int]:
        """The frames of task `task`, in order."""
        self._check_task(task)
        return self.frames.slice(task * self.chunk, (task + 1) * self.chunk)

    def task_bounds(self, task: int) -> tuple[int, int]:
        """The smallest and largest frame of task `task`."""
        self._check_task(task)
        stop = min((task + 1) * self.chunk, len(self.frames))
        return self.frames.bounds(task * self.chunk, stop)

    def task_containing(self, frame: int) -> int | None:
        """The task holding `frame`, or None if the block lacks it."""
        position = self.frames.position(frame)
        return None if position is None else position // self.chunk

    def tasks_covering(self, first: int, last: int) -> list[range]:
        """Ascending, disjoint ranges of the tasks holding any frame in [first, last]."""
        out: list[range] = []
        for span in self.frames.positions_between(first, last):
            tasks = range(span.start // self.chunk, (span.stop - 1) // self.chunk + 1)
            if out and tasks.start <= out[-1].stop:
                out[-1] = range(out[-1].start, max(out[-1].stop, tasks.stop))
            else:
                out.append(tasks)
        return out

    def task_at(self, position: int) -> int:
        """The task dispatched at cursor `position` (0 <= position < task_count)."""
        if not 0 <= position < self.task_count:
            raise IndexError(f"dispatch position {position} out of range")
        if position < len(self._priority):
            return self._priority[position]
        position -= len(self._priority)
        if position < self._preview_count:
            return _nth_free(position, self._preview_gaps) * (self.preview_every or 1)
        return self._unrank(_nth_free(position - self._preview_count, self._rest_gaps))

    def dispatch_position(self, task: int) -> int:
        """The cursor position at which `task` is dispatched (the inverse of `task_at`)."""
        self._check_task(task)
        k = bisect_left(self._priority, task)
        if k < len(self._priority) and self._priority[k] == task:
            return k
        base, every = len(self._priority), self.preview_every
        if every and task % every == 0:
            index = task // every
            return base + index - bisect_left(self._preview_skips, index)
        rank = self._rank(task)
        return base + self._preview_count + rank - bisect_left(self._rest_skips, rank)

    @property
    def _preview_count(self) -> int:
        if not self.preview_every:
            return 0
        multiples = (self.task_count - 1) // self.preview_every + 1
        return multiples - len(self._preview_skips)

    def _rank(self, task: int) -> int:
        """Index of `task` among the tasks outside the preview pass."""
        every = self.preview_every
        return task - task // every - 1 if every else task

    def _unrank(self, rank: int) -> int:
        every = self.preview_every
        if not every:
            return rank
        return rank // (every - 1) * every + rank % (every - 1) + 1

    def _check_task(self, task: int) -> None:
        if not 0 <= task < self.task_count:
            raise IndexError(f"task {task} out of range (the block has {self.task_count})")
