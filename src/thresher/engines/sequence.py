"""Building and reading the command line of :mod:`thresher.engines.sequence_driver`."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass

DRIVER_MODULE = "thresher.engines.sequence_driver"
_MARKER = re.compile(r"^\[thresher\] step (\d+) of (\d+): (?:frame (-?\d+)|no frame)\s*$")


@dataclass(frozen=True, slots=True)
class Step:
    """One command of a sequence; ``frame`` is the frame it renders, if any."""

    argv: tuple[str, ...]
    frame: int | None = None


@dataclass(frozen=True, slots=True)
class Marker:
    """A parsed ``[thresher] step I of N: frame F`` line."""

    number: int
    total: int
    frame: int | None


def sequence_commandline(steps: Sequence[Step]) -> list[str]:
    """The argv that runs ``steps`` one after another in one process, with the interpreter
    running the worker; ``-I`` keeps the job's ``PYTHONHOME``/``PYTHONPATH`` (meant for the
    application) away from the driver.
    """
    payload = {"steps": [{"frame": s.frame, "argv": list(s.argv)} for s in steps]}
    return [sys.executable, "-I", "-m", DRIVER_MODULE, json.dumps(payload)]


def parse_marker(line: str) -> Marker | None:
    """The marker on ``line``, or ``None`` when it is an ordinary output line."""
    match = _MARKER.match(line)
    if match is None:
        return None
    frame = match.group(3)
    return Marker(int(match.group(1)), int(match.group(2)), None if frame is None else int(frame))
