"""Maya: batch-render a chunk of frames with Maya's command-line renderer ``Render``.

Command line, from Autodesk's "Render from the command line" and common-flags pages::

    Render -r RENDERER -s FIRST -e LAST [-b STEP] [-rd OUTPUT_DIR] [-im IMAGE_NAME]
           [-of FORMAT] [-x WIDTH -y HEIGHT] [-cam CAMERA] [-proj PROJECT] [arguments] scene.mb

``RENDERER`` defaults to ``file`` (the renderer saved in the scene); the task's ``output`` is
the image directory (``-rd``), created before the run when it is a folder. A task whose
frames are not one evenly stepped run renders each run with its own ``Render`` call, one after
another. Parameters: ``renderer``, ``image_name``, ``image_format``, ``width``, ``height``,
``camera``, ``project``. Output lines parsed: Maya Software's
``Percentage of rendering done: 40 (...)``, Arnold's ``|  40% done - 12 rays/pixel`` and
``[driver_exr] writing file `/out/beauty.0001.exr'``, ``Finished Rendering PATH``,
``// Error: ...``/``// Warning: ...`` and Arnold ``ERROR``/``WARNING`` lines.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

from thresher.engines.base import Engine as BaseEngine
from thresher.engines.errors import EngineConfigError
from thresher.engines.events import EngineEvent
from thresher.engines.placeholders import runs
from thresher.engines.sequence import Step
from thresher.engines.task import EngineTask

_FRAME = re.compile(r"(?i)^(?:\[mtoa\]\s*)?(?:rendering|starting to render) frame (-?\d+)")
_PERCENT_SW = re.compile(r"Percentage of rendering done:\s*(\d+(?:\.\d+)?)")
_PERCENT_ARNOLD = re.compile(r"(?:^|\|)\s*(\d{1,3})% done")
_WRITING = re.compile(r"writing file [`'\"](.+?)['\"]")
_FINISHED = re.compile(r"^(?:Finished Rendering|Result:)\s+(.+?)\.?\s*$")
_ERROR = re.compile(r"^(?://\s*)?Error:|\bERROR\s*\|")
_WARNING = re.compile(r"^(?://\s*)?Warning:|\bWARNING\s*\|")


class Engine(BaseEngine):
    SETTINGS: ClassVar[dict[str, Any]] = {
        "description": "Maya batch rendering",
        "vendor": "Autodesk",
        "colour": "#16a085",
        "items": "frames",
        "type": "render",
        "filename_extensions": [".ma", ".mb"],
        "binary_filename_extensions": [".mb"],
        "default_range": "1-100",
        "default_bucketsize": 5,
    }
    PARAMETERS: ClassVar[dict[str, Any]] = {
        "renderer": "file",
        "image_name": None,
        "image_format": None,
        "width": None,
        "height": None,
        "camera": None,
        "project": None,
    }
    OUTPUT_NAME: ClassVar[str | None] = None  # Render takes the image folder itself

    def get_executable(self) -> str:
        return "Render"

    def get_commandline(self, task: EngineTask) -> list[str]:
        if not task.input:
            raise EngineConfigError("maya needs an input scene (.ma or .mb)")
        if not task.frames:
            raise EngineConfigError("maya needs frames to render")
        options = ["-r", str(self.parameter(task, "renderer", "file"))]
        tail: list[str] = []
        if task.output:
            tail += ["-rd", task.output]
        for name, flag in (
            ("image_name", "-im"),
            ("image_format", "-of"),
            ("width", "-x"),
            ("height", "-y"),
            ("camera", "-cam"),
            ("project", "-proj"),
        ):
            value = self.parameter(task, name)
            if value is not None:
                tail += [flag, str(value)]
        tail += self.arguments(task)
        steps = []
        for first, last, step in runs(task.frames):
            frames = ["-s", str(first), "-e", str(last)] + (["-b", str(step)] if step != 1 else [])
            argv = (self.executable(task), *options, *frames, *tail, task.input)
            steps.append(Step(argv, frame=first))
        return self.sequence(steps)

    def parse_line(self, line: str, stream: str) -> list[EngineEvent]:
        frame = _FRAME.match(line.strip())
        if frame:
            return [*self.enter_frame(int(frame.group(1))), self.chunk_progress(0.0)]
        percent = _PERCENT_SW.search(line) or _PERCENT_ARNOLD.search(line)
        if percent:
            return [self.chunk_progress(float(percent.group(1)) / 100.0)]
        written = _WRITING.search(line) or _FINISHED.match(line.strip())
        if written:
            return [EngineEvent.output(written.group(1))]
        if _ERROR.search(line):
            return [EngineEvent.error(line.strip())]
        if _WARNING.search(line):
            return [EngineEvent.warning(line.strip())]
        return []
