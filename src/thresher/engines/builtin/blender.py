"""Blender: render a chunk of frames of a ``.blend`` file in one background process.

Command line (options before the render flags, which Blender applies in order)::

    blender -b scene.blend --python-exit-code 1 [-E ENGINE] [-o OUTPUT] [-F FORMAT] [-t N]
            [arguments] -s FIRST -e LAST [-j STEP] -a [-- [--cycles-device DEVICE] [args]]

A chunk whose frames are not one evenly stepped run is rendered with ``-f 1,5,9``. Parameters:
``renderer`` (``cycles``, ``eevee``, ``workbench`` or a Blender engine id such as
``BLENDER_EEVEE``; default: the scene's), ``format`` (``PNG``, ``OPEN_EXR``, ...; default: the
scene's), ``threads``, ``device`` (Cycles device: ``CPU``, ``CUDA``, ``OPTIX``, ``HIP``,
``METAL``, ``ONEAPI``; on a lane that owns GPUs, unset means ``gpu_device``, default ``CUDA``),
and ``arguments``: those after a ``--`` go to Blender's Python side at
the very end. The task's ``output`` is Blender's ``-o`` path (``#`` marks the frame number); a
folder gets ``<scene>_####`` inside it, to which Blender adds the format's extension.
Cancel with SIGTERM: Blender ignores SIGINT until its current samples end.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

from thresher.engines.base import Engine as BaseEngine
from thresher.engines.errors import EngineConfigError
from thresher.engines.events import EngineEvent
from thresher.engines.placeholders import uniform_step
from thresher.engines.task import EngineTask

RENDERERS = {
    "cycles": "CYCLES",
    "eevee": "BLENDER_EEVEE",
    "workbench": "BLENDER_WORKBENCH",
}

_FRA = re.compile(r"^Fra:(-?\d+)\s")
_TILES = re.compile(r"Rendered (\d+)/(\d+) Tiles")
_TILE_SAMPLE = re.compile(r"Tile (\d+)/(\d+), Sample (\d+)/(\d+)")
_SAMPLE = re.compile(r"Sample (\d+)/(\d+)")
_EEVEE = re.compile(r"Rendering (\d+) / (\d+) samples")
_SAVED = re.compile(r"^Saved: '(.*)'")
_ERROR = re.compile(r"^(?:Error|ERROR)\b:?\s*(.*)")
_WARNING = re.compile(r"^(?:Warning|WARNING)\b:?\s*(.*)")
_BOOKKEEPING = ("Fra:", "Time:", "Remaining:", "Mem:")


class Engine(BaseEngine):
    SETTINGS: ClassVar[dict[str, Any]] = {
        "description": "Blender: 3D rendering with Cycles and Eevee",
        "vendor": "Blender Foundation",
        "colour": "#e87d0d",
        "items": "frames",
        "type": "render",
        "filename_extensions": [".blend"],
        "binary_filename_extensions": [".blend"],
        "default_range": "1-250",
        "default_bucketsize": 4,
        "max_bucketsize": 100,
    }
    PARAMETERS: ClassVar[dict[str, Any]] = {
        "renderer": None,
        "format": None,
        "threads": None,
        "device": None,
        "gpu_device": "CUDA",
    }
    OUTPUT_NAME: ClassVar[str | None] = "{stem}_####"

    def __init__(self) -> None:
        super().__init__()
        self._status_head: str | None = None
        self._saved = 0

    def get_executable(self) -> str:
        return "blender"

    def get_commandline(self, task: EngineTask) -> list[str]:
        if not task.input:
            raise EngineConfigError("blender needs an input .blend file")
        if not task.frames:
            raise EngineConfigError("blender needs frames to render")
        argv = [self.executable(task), "-b", task.input, "--python-exit-code", "1"]
        renderer = self.parameter(task, "renderer")
        if renderer is not None:
            argv += ["-E", RENDERERS.get(str(renderer).lower(), str(renderer))]
        if task.output:
            argv += ["-o", task.output]
        fmt = self.parameter(task, "format")
        if fmt is not None:
            argv += ["-F", str(fmt).upper()]
        threads = self.parameter(task, "threads")
        if threads is not None:
            argv += ["-t", str(int(threads))]
        before, after = _split_at_double_dash(self.arguments(task))
        argv += before
        argv += _frame_flags(task.frames)
        device = self.parameter(task, "device")
        if device is None and task.gpu_ids:  # a GPU lane: Cycles renders on its GPUs
            device = self.parameter(task, "gpu_device")
        if device is not None:
            after = ["--cycles-device", str(device).upper(), *after]
        if after:
            argv += ["--", *after]
        return argv

    def parse_line(self, line: str, stream: str) -> list[EngineEvent]:
        events: list[EngineEvent] = []
        fra = _FRA.match(line)
        if fra:
            events += self.enter_frame(int(fra.group(1)))
            progress = _progress_fraction(line)
            if progress is not None:
                events.append(self.chunk_progress(progress))
            else:
                events += self._status(line)
            return events
        saved = _SAVED.match(line)
        if saved:
            self._saved += 1
            events.append(EngineEvent.output(saved.group(1)))
            if self.current_frame is not None:
                events.append(self.chunk_progress(1.0))
            elif self.task is not None and self.task.frames:
                events.append(EngineEvent.progress(self._saved / len(self.task.frames) * 100.0))
            return events
        error = _ERROR.match(line)
        if error:
            return [EngineEvent.error(error.group(1) or line)]
        warning = _WARNING.match(line)
        if warning:
            return [EngineEvent.warning(warning.group(1) or line)]
        return []

    def _status(self, line: str) -> list[EngineEvent]:
        segments = [s.strip() for s in line.split(" | ")]
        rest = [s for s in segments if not s.startswith(_BOOKKEEPING)]
        if len(rest) > 1 and ", " in rest[0]:
            rest = rest[1:]  # "Scene, ViewLayer"
        if not rest or rest[0] == self._status_head:
            return []
        self._status_head = rest[0]
        return [EngineEvent.status(" | ".join(rest))]


def _progress_fraction(line: str) -> float | None:
    tiles = _TILES.search(line)
    if tiles:
        return int(tiles.group(1)) / max(1, int(tiles.group(2)))
    tile_sample = _TILE_SAMPLE.search(line)
    if tile_sample:
        tile, tiles_total, sample, samples = (int(g) for g in tile_sample.groups())
        return (tile - 1 + sample / max(1, samples)) / max(1, tiles_total)
    for pattern in (_SAMPLE, _EEVEE):
        match = pattern.search(line)
        if match:
            return int(match.group(1)) / max(1, int(match.group(2)))
    return None


def _split_at_double_dash(arguments: list[str]) -> tuple[list[str], list[str]]:
    if "--" not in arguments:
        return arguments, []
    at = arguments.index("--")
    return arguments[:at], arguments[at + 1 :]


def _frame_flags(frames: tuple[int, ...]) -> list[str]:
    step = uniform_step(frames)
    if step is None:
        return ["-f", ",".join(str(f) for f in frames)]
    flags = ["-s", str(frames[0]), "-e", str(frames[-1])]
    if step != 1:
        flags += ["-j", str(step)]
    return [*flags, "-a"]
