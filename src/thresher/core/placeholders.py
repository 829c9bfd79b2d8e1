"""Placeholders in argv templates, and frame numbers in file name patterns.

The one implementation used by command jobs (checked at submit, expanded on the worker) and by
engines (``thresher.engines.placeholders`` adds the values of an engine task).

Templates use Python's format syntax restricted to plain names: ``{start}``, ``{end}``,
``{frame}``, ``{frame:04d}``, ``{frames}`` (a comma list), ``{count}``, ``{step}``; engines add
``{input}``, ``{output}``, ``{workdir}``, ``{job_id}``, ``{task}``, ``{lane}``. ``{{`` and
``}}`` are literal braces. ``{frame}`` is only defined for one-frame chunks in command jobs, so
a template using it with a larger chunk is refused at submission, not at run time.

File name patterns name a frame with ``####`` (width = number of ``#``), ``%04d``, or Houdini's
``$F4``/``$F``.
"""

from __future__ import annotations

import itertools
import re
import string
from collections.abc import Mapping, Sequence

from thresher.core.errors import InvalidInput

#: The placeholders a command job's template may use.
COMMAND_NAMES = frozenset({"start", "end", "frame", "frames"})

_FORMATTER = string.Formatter()
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_FRAME_TOKEN = re.compile(r"\$\{F(\d*)\}|\$F(\d*)(?![A-Za-z0-9_])|(#+)|%(0?\d*)d")


# -- templates -----------------------------------------------------------------------------------


def frame_values(frames: Sequence[int], *, frame: int | None = None) -> dict[str, object]:
    """The frame placeholders of a chunk: ``start``, ``end``, ``frame`` (default: the first
    frame), ``frames``, ``count`` and ``step``. A chunk without frames has only ``frames`` and
    ``count`` (and ``frame`` when given)."""
    values: dict[str, object] = {
        "count": len(frames),
        "frames": ",".join(str(f) for f in frames),
    }
    if frames:
        values["start"] = frames[0]
        values["end"] = frames[-1]
        values["frame"] = frames[0] if frame is None else frame
        values["step"] = uniform_step(frames) or 1
    elif frame is not None:
        values["frame"] = frame
    return values


def _fields(template: str, field: str) -> list[tuple[str, str | None, str | None, str | None]]:
    try:
        return list(_FORMATTER.parse(template))
    except ValueError as exc:
        raise InvalidInput(f"bad placeholder syntax in {template!r}: {exc}", field=field) from None


def placeholders_in(
    template: str, *, known: frozenset[str] | None = None, field: str = "command"
) -> set[str]:
    """The placeholder names ``template`` uses; refuses bad syntax, names that are not plain,
    conversions and nested formats, and (when ``known`` is given) unknown names."""
    names: set[str] = set()
    for _literal, name, spec, conversion in _fields(template, field):
        if name is None:
            continue
        if not _NAME.match(name):
            raise InvalidInput(
                f"placeholder {{{name}}} in {template!r} is not a plain name", field=field
            )
        if conversion is not None or (spec and "{" in spec):
            raise InvalidInput(
                f"placeholder {{{name}}} in {template!r} is too complex", field=field
            )
        if known is not None and name not in known:
            listed = ", ".join("{" + n + "}" for n in sorted(known))
            raise InvalidInput(
                f"unknown placeholder {{{name}}} in {template!r}; known: {listed}", field=field
            )
        names.add(name)
    return names


def expand_text(template: str, values: Mapping[str, object], *, field: str = "command") -> str:
    """Expand the placeholders of ``template`` with ``values``; an unknown name or a format
    that does not fit its value raises :class:`InvalidInput` naming the placeholder."""
    if "{" not in template and "}" not in template:
        return template
    placeholders_in(template, known=frozenset(values), field=field)
    parts: list[str] = []
    for literal, name, spec, _conversion in _fields(template, field):
        parts.append(literal)
        if name is None:
            continue
        try:
            parts.append(format(values[name], spec or ""))
        except (ValueError, TypeError) as exc:
            raise InvalidInput(
                f"placeholder {{{name}:{spec}}} in {template!r}: {exc}", field=field
            ) from None
    return "".join(parts)


def expand_argv(
    argv: Sequence[str], values: Mapping[str, object], *, field: str = "command"
) -> list[str]:
    """Expand every item of an argv template."""
    return [expand_text(item, values, field=field) for item in argv]


def check_template(argv: Sequence[str], *, chunk: int, field: str = "command") -> None:
    """Refuse a command job's template that cannot be expanded for chunks of ``chunk`` frames
    (the checks run on sample frames, so a bad format such as ``{start:q}`` is caught too)."""
    if not argv:
        raise InvalidInput("the command is empty", field=field)
    sample = frame_values([1, 2] if chunk > 1 else [1])
    if chunk > 1:
        del sample["frame"]
    for arg in argv:
        names = placeholders_in(arg, known=COMMAND_NAMES, field=field)
        if "frame" in names and chunk != 1:
            raise InvalidInput(
                f"{{frame}} needs one-frame chunks but the chunk is {chunk}; use {{start}}/{{end}}"
                " or {frames}",
                field=field,
            )
        expand_text(arg, sample, field=field)


def expand(argv: Sequence[str], frames: Sequence[int]) -> list[str]:
    """A command job's argv for a task covering ``frames`` (ascending)."""
    values = {k: v for k, v in frame_values(frames).items() if k in COMMAND_NAMES}
    return expand_argv(argv, values)


# -- file name patterns --------------------------------------------------------------------------


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


# -- frame runs ----------------------------------------------------------------------------------


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
