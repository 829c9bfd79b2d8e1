"""Arnold ``kick``: render a sequence of ``.ass`` scene files, one ``kick`` per frame.

Command line for one frame, from Arnold's kick documentation::

    kick -i scene.0012.ass [-o out.0012.exr] -dw -dp -v 2 [-t THREADS] [-r W H] [arguments]

``-dw`` disables the render window, ``-dp`` progressive refinement, and ``-v 2`` logs
progress lines such as ``00:00:03   412MB   |    40% done - 12 rays/pixel``. The task's
``input`` is the ``.ass`` sequence pattern (``scene.####.ass``, ``scene.$F4.ass``) and its
``output``, when set, an image pattern; a folder output gets ``<ass name>.####.exr`` inside
it. As with Mantra, a chunk of several frames runs one ``kick`` after another through the
sequence driver; a one-frame task runs ``kick`` directly. Parameters: ``verbosity`` (2),
``threads``, ``width``/``height``. Output lines parsed: ``% done``,
``[driver_exr] writing file `PATH'``, ``render done``, and ``ERROR``/``WARNING`` lines.
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

_PERCENT = re.compile(r"\|\s*(\d{1,3})% done")
_WRITING = re.compile(r"writing file [`'\"](.+?)['\"]")
_DONE = re.compile(r"\|\s*render done")
_ERROR = re.compile(r"\bERROR\b|^\s*\[kick\].*\berror\b", re.IGNORECASE)
_WARNING = re.compile(r"\bWARNING\b")


class Engine(BaseEngine):
    SETTINGS: ClassVar[dict[str, Any]] = {
        "description": "Arnold's kick renderer",
        "vendor": "Autodesk",
        "colour": "#8e44ad",
        "items": "frames",
        "type": "render",
        "filename_extensions": [".ass"],
        "binary_filename_extensions": [".gz", ".ass.gz"],
        "default_range": "1-100",
        "default_bucketsize": 2,
    }
    PARAMETERS: ClassVar[dict[str, Any]] = {
        "verbosity": 2,
        "threads": None,
        "width": None,
        "height": None,
    }
    OUTPUT_NAME: ClassVar[str | None] = "{stem}.####.exr"

    def get_executable(self) -> str:
        return "kick"

    def input_files(self, task: EngineTask, path: str) -> list[str]:
        if not has_frame_token(path):
            return [path]
        return [frame_path(path, frame) for frame in task.frames]

    def get_commandline(self, task: EngineTask) -> list[str]:
        if not task.input:
            raise EngineConfigError("kick needs an .ass file or sequence such as scene.####.ass")
        if not task.frames:
            raise EngineConfigError("kick needs frames to render")
        options = ["-dw", "-dp", "-v", str(int(self.parameter(task, "verbosity", 2)))]
        threads = self.parameter(task, "threads")
        if threads is not None:
            options += ["-t", str(int(threads))]
        width, height = self.parameter(task, "width"), self.parameter(task, "height")
        if width is not None and height is not None:
            options += ["-r", str(int(width)), str(int(height))]
        options += self.arguments(task)
        steps = []
        for frame in task.frames:
            argv = [self.executable(task), "-i", frame_path(task.input, frame)]
            if task.output:
                argv += ["-o", frame_path(task.output, frame)]
            steps.append(Step((*argv, *options), frame=frame))
        return self.sequence(steps)

    def parse_line(self, line: str, stream: str) -> list[EngineEvent]:
        percent = _PERCENT.search(line)
        if percent:
            events: list[EngineEvent] = []
            if self.current_frame is None and self.task is not None and len(self.task.frames) == 1:
                events += self.enter_frame(self.task.frames[0])
            events.append(self.chunk_progress(int(percent.group(1)) / 100.0))
            return events
        written = _WRITING.search(line)
        if written:
            return [EngineEvent.output(written.group(1))]
        if _DONE.search(line):
            return [self.chunk_progress(1.0), EngineEvent.status("render done")]
        if _ERROR.search(line):
            return [EngineEvent.error(line.strip())]
        if _WARNING.search(line):
            return [EngineEvent.warning(line.strip())]
        return []
