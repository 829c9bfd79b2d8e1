"""Mantra: render a sequence of IFD files, one ``mantra`` process per frame.

Command line for one frame, from SideFX's mantra documentation::

    mantra -V 2a [-j THREADS] [arguments] -f scene.0012.ifd [output.0012.exr]

``-f`` reads the frame's IFD, ``-V 2a`` prints Alfred-style ``ALF_PROGRESS 40%`` lines, and an
output image given after the options overrides the one in the IFD. The task's ``input`` is the
IFD sequence pattern (``scene.$F4.ifd``, ``scene.####.ifd`` or ``scene.%04d.ifd``); its
``output``, when set, is an image pattern expanded the same way; a folder output gets
``<ifd name>.####.exr`` inside it.

Mantra renders exactly one IFD per process, so a chunk of several frames runs through the
sequence driver (``python -I -m thresher.engines.sequence_driver``): one ``mantra`` after
another in a single task process, a ``[thresher] step I of N: frame F`` line before each, and
the first failing frame failing the task. A one-frame task runs ``mantra`` directly.
Input conversion rewrites every frame's IFD (compressed ``.ifd.sc``/``.gz`` files are left
alone). Parameters: ``verbosity`` (``2a``), ``threads``.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

from thresher.engines.base import Engine as BaseEngine
from thresher.engines.errors import EngineConfigError
from thresher.engines.events import EngineEvent
from thresher.engines.placeholders import frame_path, has_frame_token
from thresher.engines.sequence import Step
from thresher.engines.task import EngineTask

_ALF = re.compile(r"ALF_PROGRESS\s+(\d+(?:\.\d+)?)%")
_ERROR = re.compile(r"(?i)(?:^|[\s:])(?:error|fatal)\b|unable to|cannot open")
_WARNING = re.compile(r"(?i)(?:^|[\s:])warning\b")


class Engine(BaseEngine):
    SETTINGS: ClassVar[dict[str, Any]] = {
        "description": "Houdini's Mantra renderer",
        "vendor": "SideFX",
        "colour": "#d35400",
        "items": "frames",
        "type": "render",
        "filename_extensions": [".ifd"],
        "binary_filename_extensions": [".sc", ".gz", ".bgeo", ".bgeo.sc"],
        "default_range": "1-100",
        "default_bucketsize": 2,
    }
    PARAMETERS: ClassVar[dict[str, Any]] = {
        "verbosity": "2a",
        "threads": None,
    }
    OUTPUT_NAME: ClassVar[str | None] = "{stem}.####.exr"

    def get_executable(self) -> str:
        return "mantra"

    def input_files(self, task: EngineTask, path: str) -> list[str]:
        if not has_frame_token(path):
            return [path]
        return [frame_path(path, frame) for frame in task.frames]

    def get_commandline(self, task: EngineTask) -> list[str]:
        if not task.input:
            raise EngineConfigError("mantra needs an IFD sequence such as scene.$F4.ifd")
        if not task.frames:
            raise EngineConfigError("mantra needs frames to render")
        options = [self.executable(task), "-V", str(self.parameter(task, "verbosity", "2a"))]
        threads = self.parameter(task, "threads")
        if threads is not None:
            options += ["-j", str(int(threads))]
        options += self.arguments(task)
        steps = []
        for frame in task.frames:
            argv = [*options, "-f", frame_path(task.input, frame)]
            if task.output:
                argv.append(frame_path(task.output, frame))
            steps.append(Step(tuple(argv), frame=frame))
        return self.sequence(steps)

    def parse_line(self, line: str, stream: str) -> list[EngineEvent]:
        alf = _ALF.search(line)
        if alf:
            events: list[EngineEvent] = []
            if self.current_frame is None and self.task is not None and len(self.task.frames) == 1:
                events += self.enter_frame(self.task.frames[0])
            events.append(self.chunk_progress(float(alf.group(1)) / 100.0))
            return events
        if _ERROR.search(line):
            return [EngineEvent.error(line.strip())]
        if _WARNING.search(line):
            return [EngineEvent.warning(line.strip())]
        return []
