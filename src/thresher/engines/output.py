"""A job's ``output``: a file, a frame pattern or a folder, read the same way for every engine.

- a **folder** when it is an existing directory, ends with a separator, or has neither a file
  extension nor a frame pattern (``/proj/render/shot10``), as in accsyn;
- a **pattern** when it names a frame: ``####``, ``%04d``, ``$F4``, ``${F4}`` or ``{frame...}``
  (``/proj/render/shot10_####``);
- a **file** otherwise: its name has an extension (``/proj/shot10.mp4``).

Inside a folder an engine writes the file its ``output_name`` gives, built from the input's
:func:`input_stem`; :meth:`thresher.engines.base.Engine.prepare` joins the two with
:func:`in_folder` before the engine sees the task.

A worker has each attempt render into a **staging folder** (:class:`Staging`): a hidden folder
``.thresher-attempt-<id>`` inside the output's folder (same filesystem: moving a file from it
into place is one rename), which :func:`staging_for` works out for a local output path. Only
the worker moves the files into the output folder, once the attempt succeeded.
"""

from __future__ import annotations

import ntpath
import os
import posixpath
import re
from enum import StrEnum

from thresher.engines.pathmap import is_windows_style
from thresher.engines.placeholders import has_frame_token, printf_pattern
from thresher.engines.task import Staging

#: the stem used when there is no input to name the output after
DEFAULT_STEM = "output"
#: the name of an attempt's staging folder, before its attempt id; every listing of an output
#: folder leaves folders named so out (a file service's checkin skips ``.thresher*`` folders)
STAGING_PREFIX = ".thresher-attempt-"

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


def staging_for(output: str, *, workdir: str, name: str) -> tuple[Staging, str] | None:
    """The staging folder `name` of a local `output` (a file, a frame pattern or a folder;
    relative to `workdir`), and the output the application is to write instead: the same
    path under the staging folder. The output's folder is the deepest folder of its path that
    names no frame (``out/####/beauty.exr`` stages in ``out``). None for a path of another OS
    (a Windows path on a POSIX worker: the application says what is wrong with it) and for
    Blender's ``//`` (relative to the scene file, which only Blender resolves)."""
    if (is_windows_style(output) and os.name != "nt") or output.startswith("//"):
        return None
    path = os.path.normpath(os.path.join(workdir, output))
    kind = output_kind(output, is_directory=os.path.isdir(path))
    folder = path if kind is OutputKind.FOLDER else os.path.dirname(path)
    while _names_a_frame(os.path.basename(folder)) and os.path.dirname(folder) != folder:
        folder = os.path.dirname(folder)
    staged = os.path.join(folder, name)
    rel = os.path.relpath(path, folder)
    staged_output = staged if rel == os.curdir else os.path.join(staged, rel)
    if output.endswith(("/", os.sep)):
        staged_output += os.sep  # still a folder to whoever reads it
    return Staging(folder=folder, staged=staged), staged_output


def _names_a_frame(name: str) -> bool:
    return has_frame_token(name) or _FRAME_PLACEHOLDER.search(name) is not None
