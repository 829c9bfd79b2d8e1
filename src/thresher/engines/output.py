"""A job's ``output``: a file, a frame pattern or a folder, read the same way for every engine.

- a **folder** when it is an existing directory, ends with a separator, or has neither a file
  extension nor a frame pattern (``/proj/render/shot10``), as in accsyn;
- a **pattern** when it names a frame: ``####``, ``%04d``, ``$F4``, ``${F4}`` or ``{frame...}``
  (``/proj/render/shot10_####``);
- a **file** otherwise: its name has an extension (``/proj/shot10.mp4``).

Inside a folder an engine writes the file its ``output_name`` gives, built from the input's
:func:`input_stem`; :meth:`thresher.engines.base.Engine.prepare` joins the two with
:func:`in_folder` before the engine sees the task.
"""

from __future__ import annotations

import ntpath
import posixpath
import re
from enum import StrEnum

from thresher.engines.pathmap import is_windows_style
from thresher.engines.placeholders import has_frame_token, printf_pattern

#: the stem used when there is no input to name the output after
DEFAULT_STEM = "output"

_FRAME_PLACEHOLDER = re.compile(r"\{frame[:}]")
_PRINTF_TOKEN = re.compile(r"%0?\d*d")
# what separates a name from its frame number: "shot_####" and "shot.####" are "shot"
_TRAILING_SEPARATORS = "._- "


class OutputKind(StrEnum):
    """How an engine reads a job's ``output``."""

    FILE = "file"
    PATTERN = "pattern"
    FOLDER = "folder"


def output_kind(path: str, *, is_directory: bool = False) -> OutputKind:
    """What ``path`` names; ``is_directory`` says it exists as a directory on this machine."""
    if is_directory or path.endswith(("/", "\\")):
        return OutputKind.FOLDER
    if has_frame_token(path) or _FRAME_PLACEHOLDER.search(path):
        return OutputKind.PATTERN
    extension = posixpath.splitext(_basename(path))[1]
    return OutputKind.FILE if len(extension) > 1 else OutputKind.FOLDER


def input_stem(path: str | None) -> str:
    """The input's name without folder, extension and frame token, to name outputs after:
    ``shot`` for ``/p/shot.blend``, ``shot.####.ass`` and ``shot_$F4.ifd``; ``output`` when
    there is no input or nothing is left."""
    if not path:
        return DEFAULT_STEM
    name = posixpath.splitext(_basename(path))[0]
    # printf_pattern rewrites only the frame tokens, so the text before its first one is ours
    token = _PRINTF_TOKEN.search(printf_pattern(name))
    if token is not None:
        name = name[: token.start()]
    return name.rstrip(_TRAILING_SEPARATORS) or DEFAULT_STEM


def in_folder(folder: str, name: str) -> str:
    """``name`` inside ``folder``, joined with the folder's own separator."""
    if is_windows_style(folder):
        return ntpath.join(folder, name)
    return posixpath.join(folder, name)


def _basename(path: str) -> str:
    return ntpath.basename(path) if is_windows_style(path) else posixpath.basename(path)
