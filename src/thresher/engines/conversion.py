"""Input conversion: a copy of an ASCII scene file with its share paths mapped for this worker.

Modes of the ``input_conversion`` parameter: ``always`` converts; ``platform`` converts only when
the job's ``remote_os`` (the submitter's OS) differs from the worker's OS; ``never`` leaves
inputs alone. Files whose name ends with one of the engine's ``binary_filename_extensions``, or
whose first bytes contain a NUL, are never rewritten.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Final

from thresher.engines.errors import EngineConfigError
from thresher.engines.pathmap import PathMapper
from thresher.engines.platforms import normalize_os

CONVERSION_MODES: Final = ("always", "platform", "never")
_SNIFF_BYTES: Final = 8192


def should_convert(mode: object, *, remote_os: object, local_os: str) -> bool:
    """Whether a job with this ``input_conversion`` mode converts its inputs on ``local_os``."""
    if mode not in CONVERSION_MODES:
        raise EngineConfigError(
            f"input_conversion must be one of {CONVERSION_MODES}, not {mode!r}",
            parameter="input_conversion",
        )
    if mode == "always":
        return True
    if mode == "never" or remote_os in (None, ""):
        return False
    try:
        return normalize_os(str(remote_os)) != normalize_os(local_os)
    except ValueError as exc:
        raise EngineConfigError(str(exc), parameter="remote_os") from None


def has_binary_extension(path: str, binary_extensions: Iterable[str]) -> bool:
    """Whether ``path`` ends with one of ``binary_extensions`` (case-insensitive, dot optional)."""
    name = path.lower()
    return any(name.endswith("." + ext.lower().lstrip(".")) for ext in binary_extensions)


def looks_binary(data: bytes) -> bool:
    """Whether file content looks binary (a NUL byte among its first bytes)."""
    return b"\x00" in data[:_SNIFF_BYTES]


def convert_file(source: Path, target: Path, mapper: PathMapper) -> bool:
    """Write ``source`` to ``target`` with paths mapped; ``False`` (nothing written) if binary.

    The text is decoded as UTF-8 with undecodable bytes preserved, and line endings are kept.
    The target is written atomically (a temporary file renamed into place).
    """
    data = source.read_bytes()
    if looks_binary(data):
        return False
    text = data.decode("utf-8", errors="surrogateescape")
    converted = mapper.map_text(text).encode("utf-8", errors="surrogateescape")
    write_atomically(target, converted)
    return True


def write_atomically(target: Path, data: bytes) -> None:
    """Write ``data`` to ``target`` through a temporary file in the same folder."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
