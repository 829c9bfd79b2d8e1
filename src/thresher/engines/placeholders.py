"""Placeholders in command templates and frame numbers in file name patterns.

Command templates use Python's format syntax restricted to plain names: ``{start}``, ``{end}``,
``{frame}``, ``{frame:04d}``, ``{frames}``, ``{count}``, ``{step}``, ``{input}``, ``{output}``,
``{workdir}``, ``{job_id}``, ``{task}``, ``{lane}``; ``{{`` and ``}}`` are literal braces.
File name patterns name a frame with ``####`` (width = number of ``#``), ``%04d``, or Houdini's
``$F4``/``$F``.
"""

from __future__ import annotations

import itertools
import re
import string
from collections.abc import Mapping, Sequence

from thresher.engines.errors import EngineConfigError
from thresher.engines.task import EngineTask

_FORMATTER = string.Formatter()
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_FRAME_TOKEN = re.compile(r"\$\{F(\d*)\}|\$F(\d*)(?![A-Za-z0-9_])|(#+)|%(0?\d*)d")


def task_values(task: EngineTask, *, frame: int | None = None) -> dict[str, object]:
    """The placeholder values for ``task``; ``frame`` defaults to the task's first frame."""
    values: dict[str, object] = {
        "input": task.input or "",
        "output": task.output or "",
        "workdir": task.workdir,
        "job_id": task.job_id,
        "task": task.index,
        "lane": task.lane,
        "count": len(task.frames),
        "frames": ",".join(str(f) for f in task.frames),
    }
    if task.frames:
        values["start"] = task.first_frame
        values["end"] = task.last_frame
        values["frame"] = task.first_frame if frame is None else frame
        values["step"] = uniform_step(task.frames) or 1
    elif frame is not None:
        values["frame"] = frame
    return values


def expand(template: str, values: Mapping[str, object]) -> str:
    """Expand the placeholders of ``template``; unknown names or bad formats raise
    :class:`EngineConfigError` naming the placeholder."""
    parts: list[str] = []
    try:
        parsed = list(_FORMATTER.parse(template))
    except ValueError as exc:
        raise EngineConfigError(f"bad placeholder syntax in {template!r}: {exc}") from None
    for literal, name, spec, conversion in parsed:
        parts.append(literal)
        if name is None:
            continue
        if not _NAME.match(name):
            raise EngineConfigError(f"placeholder {{{name}}} in {template!r} is not a plain name")
        if conversion is not None or (spec and "{" in spec):
            raise EngineConfigError(f"placeholder {{{name}}} in {template!r} is too complex")
        if name not in values:
            known = ", ".join(sorted(values))
            raise EngineConfigError(f"unknown placeholder {{{name}}} in {template!r} ({known})")
        try:
            parts.append(format(values[name], spec or ""))
        except (ValueError, TypeError) as exc:
            raise EngineConfigError(
                f"placeholder {{{name}:{spec}}} in {template!r}: {exc}"
            ) from None
    return "".join(parts)


def expand_argv(template: Sequence[str], values: Mapping[str, object]) -> list[str]:
    """Expand every item of an argv template."""
    return [expand(item, values) for item in template]


def frame_path(pattern: str, frame: int) -> str:
    """The file name for ``frame`` in a sequence ``pattern`` (``####``, ``%04d``, ``$F4``)."""

    def replace(match: re.Match[str]) -> str:
        braced, houdini, hashes, printf = match.groups()
        if hashes is not None:
            width = len(hashes)
        else:
            digits = braced if braced is not None else houdini if houdini is not None else printf
            width = int(digits) if digits else 0
        return f"{frame:0{width}d}" if frame >= 0 else f"-{-frame:0{width}d}"

    return _FRAME_TOKEN.sub(replace, pattern)


def printf_pattern(pattern: str) -> str:
    """``pattern`` with its frame token written as printf ``%0Nd`` (what FFmpeg reads)."""

    def replace(match: re.Match[str]) -> str:
        braced, houdini, hashes, printf = match.groups()
        if hashes is not None:
            return f"%0{len(hashes)}d"
        digits = braced if braced is not None else houdini if houdini is not None else printf
        return f"%0{int(digits)}d" if digits else "%d"

    return _FRAME_TOKEN.sub(replace, pattern)


def has_frame_token(pattern: str) -> bool:
    """Whether ``pattern`` names a frame number (``####``, ``%04d``, ``$F4``)."""
    return _FRAME_TOKEN.search(pattern) is not None


def uniform_step(frames: Sequence[int]) -> int | None:
    """The common difference of ``frames`` when they form an increasing arithmetic run
    (1 for a single frame), else ``None``."""
    if len(frames) < 2:
        return 1 if frames else None
    step = frames[1] - frames[0]
    if step <= 0:
        return None
    return step if all(b - a == step for a, b in itertools.pairwise(frames)) else None


def runs(frames: Sequence[int]) -> list[tuple[int, int, int]]:
    """Split ``frames`` into ``(first, last, step)`` runs an application can take as ranges.

    Consecutive frames with the same positive step form one run, e.g. ``1,2,3,7,9,11`` gives
    ``(1, 3, 1), (7, 11, 2)``.
    """
    result: list[tuple[int, int, int]] = []
    i = 0
    while i < len(frames):
        first = frames[i]
        if i + 1 < len(frames) and frames[i + 1] > first:
            step = frames[i + 1] - first
            j = i + 1
            while j + 1 < len(frames) and frames[j + 1] - frames[j] == step:
                j += 1
            # a lone pair with a big gap reads better as two single frames
            if j == i + 1 and step > 1:
                result.append((first, first, 1))
                i += 1
                continue
            result.append((first, frames[j], step))
            i = j + 1
        else:
            result.append((first, first, 1))
            i += 1
    return result
