"""Command-line placeholders: `{start}`, `{end}`, `{frame}`, `{frames}`, with format specs.

`{frame:04d}` pads, `{frames}` is a comma list. `{frame}` is only defined for one-frame chunks, so a
template using it with a larger chunk is refused at submission, not at run time.
"""

from __future__ import annotations

import string
from collections.abc import Sequence

from thresher.core.errors import InvalidInput

NAMES = frozenset({"start", "end", "frame", "frames"})
_formatter = string.Formatter()


def placeholders_in(arg: str, *, field: str = "command") -> set[str]:
    """The placeholder names used in one argument; refuses unknown names and bad syntax."""
    try:
        parsed = list(_formatter.parse(arg))
    except ValueError as exc:
        raise InvalidInput(f"bad placeholder in {arg!r}: {exc}", field=field) from exc
    names: set[str] = set()
    for _text, name, spec, conversion in parsed:
        if name is None:
            continue
        if name not in NAMES:
            known = ", ".join("{" + n + "}" for n in sorted(NAMES))
            raise InvalidInput(
                f"unknown placeholder {{{name}}} in {arg!r}; known: {known}", field=field
            )
        if conversion is not None:
            raise InvalidInput(
                f"conversions like !{conversion} are not allowed in {arg!r}", field=field
            )
        if spec and name != "frames":
            try:
                format(0, spec)
            except ValueError as exc:
                raise InvalidInput(f"bad format {spec!r} in {arg!r}: {exc}", field=field) from exc
        names.add(name)
    return names


def check_template(argv: Sequence[str], *, chunk: int, field: str = "command") -> None:
    """Refuse a command template that cannot be expanded for chunks of `chunk` frames."""
    if not argv:
        raise InvalidInput("the command is empty", field=field)
    for arg in argv:
        if "frame" in placeholders_in(arg, field=field) and chunk != 1:
            raise InvalidInput(
                f"{{frame}} needs one-frame chunks but the chunk is {chunk}; use {{start}}/{{end}}"
                " or {frames}",
                field=field,
            )


def expand(argv: Sequence[str], frames: Sequence[int]) -> list[str]:
    """Expand every argument's placeholders for a task covering `frames` (ascending)."""
    values = {
        "start": frames[0],
        "end": frames[-1],
        "frame": frames[0],
        "frames": ",".join(str(f) for f in frames),
    }
    return [arg.format_map(values) if "{" in arg else arg for arg in argv]
