"""Helpers for the engine tests: run a prepared command for real, decode PNGs."""

from __future__ import annotations

import shutil
import struct
import subprocess
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from thresher.engines import Engine, EngineEvent, EventKind, PreparedCommand

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@dataclass
class RunResult:
    returncode: int
    events: list[EngineEvent]
    stdout: str
    stderr: str

    def values(self, kind: EventKind) -> list[Any]:
        return [e.value for e in self.events if e.kind is kind]


def run_prepared(engine: Engine, prepared: PreparedCommand, *, timeout: float = 120) -> RunResult:
    """Run a prepared command for real and feed its raw output lines (carriage returns kept)
    to the engine's parser: stdout first, then stderr."""
    proc = subprocess.run(
        list(prepared.argv),
        env=dict(prepared.env),
        cwd=prepared.cwd,
        capture_output=True,
        timeout=timeout,
        check=False,
    )
    stdout = proc.stdout.decode("utf-8", "replace")
    stderr = proc.stderr.decode("utf-8", "replace")
    events: list[EngineEvent] = []
    for stream, text in (("stdout", stdout), ("stderr", stderr)):
        for line in text.split("\n"):
            events += engine.parse_output(line, stream)
    return RunResult(proc.returncode, events, stdout, stderr)


def require(program: str) -> str:
    path = shutil.which(program)
    if path is None:
        pytest.skip(f"{program} is not installed (apt-get install {program})")
    return path


@dataclass(frozen=True)
class Png:
    width: int
    height: int
    pixels: list[bytes]

    @property
    def distinct_pixels(self) -> int:
        return len(set(self.pixels))


def read_png(path: Path) -> Png:
    """Decode an 8-bit, non-interlaced PNG (gray, RGB, gray+alpha or RGBA) with the stdlib."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    pos, idat, header = 8, b"", b""
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    width, height, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", header)
    assert depth == 8, "only 8-bit PNGs are decoded"
    assert interlace == 0, "only non-interlaced PNGs are decoded"
    channels = {0: 1, 2: 3, 4: 2, 6: 4}[color]
    raw = zlib.decompress(idat)
    stride = width * channels
    rows: list[bytearray] = []
    previous = bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        kind, row = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        for i in range(stride):
            left = row[i - channels] if i >= channels else 0
            up = previous[i]
            up_left = previous[i - channels] if i >= channels else 0
            if kind == 1:
                row[i] = (row[i] + left) & 0xFF
            elif kind == 2:
                row[i] = (row[i] + up) & 0xFF
            elif kind == 3:
                row[i] = (row[i] + (left + up) // 2) & 0xFF
            elif kind == 4:
                p = left + up - up_left
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - up_left)
                pred = left if pa <= pb and pa <= pc else up if pb <= pc else up_left
                row[i] = (row[i] + pred) & 0xFF
        rows.append(row)
        previous = row
    pixels = [bytes(r[x * channels : (x + 1) * channels]) for r in rows for x in range(width)]
    return Png(width, height, pixels)
