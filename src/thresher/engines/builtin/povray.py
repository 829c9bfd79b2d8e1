"""POV-Ray 3.7: render a chunk of an animation (``clock`` runs over the whole job range).

Command line::

    povray +I<scene.pov> +O<output> +F<fmt> [+W<w> +H<h>] -D +L<scene folder>
           +KFI<job first> +KFF<job last> +KI<clock start> +KF<clock end> +SF<first> +EF<last>
           [+A<threshold>] [arguments]

POV-Ray appends the frame number to the output name itself, padded to the width of the job's
last frame (``orbit.png`` gives ``orbit01.png``..``orbit48.png``); a folder output gets
``<scene>.<format>`` inside it, and no output the same name in the work directory. A task whose
frames are not consecutive renders each consecutive run with its own ``povray`` call, one after
another. The output file's folder is created before the run, and the scene's folder is put on
the include path (POV-Ray resolves includes against the working directory, not the scene's
folder). Parameters: ``width``, ``height``, ``format`` (png, exr, jpeg, tga, ppm, hdr, bmp),
``antialias`` (a threshold such as 0.3), ``clock_initial``/``clock_final`` (0 and 1).
Progress comes from stderr, where POV-Ray separates its pixel counter updates with carriage
returns.
"""

from __future__ import annotations

import ntpath
import posixpath
import re
from pathlib import Path
from typing import Any, ClassVar

from thresher.engines.base import Engine as BaseEngine
from thresher.engines.errors import EngineConfigError, EngineSetupError
from thresher.engines.events import EngineEvent
from thresher.engines.output import input_stem
from thresher.engines.placeholders import runs
from thresher.engines.sequence import Step, parse_marker
from thresher.engines.task import EngineTask

FORMATS = {
    "png": "N",
    "exr": "E",
    "jpeg": "J",
    "jpg": "J",
    "tga": "T",
    "ppm": "P",
    "hdr": "H",
    "bmp": "B",
}

_RENDERING_FRAME = re.compile(r"^Rendering frame (\d+) of (\d+)")
_PIXELS = re.compile(r"Rendered (\d+) of (\d+) pixels")
_OUTPUT_START = re.compile(r"^\s*Output file\.+")
_OUTPUT_FILE = re.compile(r"^\s*Output file\.+\s*(.+?), \d+ bpp")
_POSSIBLE = re.compile(r"Possible (?:Parse )?Error:\s*(.*)")
_PARSE_ERROR = re.compile(r"Parse Error:\s*(.*)")
_WARNING = re.compile(r"(?:Parse |Render )?Warning:\s*(.*)")
_FATAL = re.compile(r"^(Fatal error.*|Render failed.*|Cannot .*|Error:.*)$")


class Engine(BaseEngine):
    SETTINGS: ClassVar[dict[str, Any]] = {
        "description": "POV-Ray ray tracer",
        "vendor": "Persistence of Vision Raytracer",
        "colour": "#2980b9",
        "items": "frames",
        "type": "render",
        "filename_extensions": [".pov"],
        "binary_filename_extensions": [],
        "default_range": "1-48",
        "default_bucketsize": 4,
        # POV-Ray numbers its output files itself: a frame pattern (####) cannot be given.
        "output_kinds": ["file", "folder"],
    }
    PARAMETERS: ClassVar[dict[str, Any]] = {
        "width": None,
        "height": None,
        "format": "png",
        "antialias": None,
        "clock_initial": 0.0,
        "clock_final": 1.0,
    }

    def __init__(self) -> None:
        super().__init__()
        self._run_first: int | None = None
        self._frame_in_run: int | None = None
        self._pending_output: str | None = None
        self._wrapped_output: str | None = None

    def get_executable(self) -> str:
        return "povray"

    def output_name(self, task: EngineTask, stem: str) -> str:
        # POV-Ray appends the frame number itself
        return f"{stem}.{str(self.parameter(task, 'format', 'png')).lower()}"

    def _output_path(self, task: EngineTask) -> str:
        """The ``+O`` path: the task's output, else ``<scene name>.<format>``."""
        if not task.input:
            raise EngineConfigError("povray needs an input .pov file")
        return task.output or self.output_name(task, input_stem(task.input))

    def before_run(self, task: EngineTask) -> None:
        folder = Path(self._output_path(task)).parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise EngineSetupError(f"cannot create output folder {folder}: {exc}") from exc

    def get_commandline(self, task: EngineTask) -> list[str]:
        if not task.frames:
            raise EngineConfigError("povray needs frames to render")
        fmt = str(self.parameter(task, "format", "png")).lower()
        if fmt not in FORMATS:
            raise EngineConfigError(
                f"povray format must be one of {sorted(FORMATS)}", parameter="format"
            )
        output = self._output_path(task)
        common = [self.executable(task), f"+I{task.input}", f"+O{output}", f"+F{FORMATS[fmt]}"]
        for name, flag in (("width", "+W"), ("height", "+H")):
            value = self.parameter(task, name)
            if value is not None:
                common.append(f"{flag}{int(value)}")
        common.append("-D")
        for folder in dict.fromkeys(_folder(p) for p in (self.source_input, task.input) if p):
            if folder:
                common.append(f"+L{folder}")
        common += [
            f"+KFI{task.range_first}",
            f"+KFF{task.range_last}",
            f"+KI{float(self.parameter(task, 'clock_initial', 0.0))}",
            f"+KF{float(self.parameter(task, 'clock_final', 1.0))}",
        ]
        antialias = self.parameter(task, "antialias")
        if antialias is not None:
            common.append(f"+A{float(antialias)}")
        extra = self.arguments(task)
        steps = []
        for first, last in _consecutive_runs(task.frames):
            steps.append(Step((*common, f"+SF{first}", f"+EF{last}", *extra), frame=first))
        return self.sequence(steps)

    def parse_output(self, line: str, stream: str = "stdout") -> list[EngineEvent]:
        marker = parse_marker(line.strip())
        if marker is not None:
            self._run_first = marker.frame
            self._frame_in_run = None
        return super().parse_output(line, stream)

    def parse_line(self, line: str, stream: str) -> list[EngineEvent]:
        joined = self._join_wrapped(line)
        if joined is None:
            return []
        line = joined
        frame_line = _RENDERING_FRAME.match(line)
        if frame_line:
            return self._frame_events(int(frame_line.group(1)))
        pixels = _PIXELS.search(line)
        if pixels:
            return [self.chunk_progress(int(pixels.group(1)) / max(1, int(pixels.group(2))))]
        output = _OUTPUT_FILE.match(line)
        if output:
            self._pending_output = self._in_workdir(output.group(1).strip())
            return []
        if line.startswith("Render Statistics") and self._pending_output:
            done, self._pending_output = self._pending_output, None
            return [EngineEvent.output(done), self.chunk_progress(1.0)]
        diagnostic = _diagnostic(line)
        return [] if diagnostic is None else [diagnostic]

    def _join_wrapped(self, line: str) -> str | None:
        """The line, after the start of an "Output file" line held back before it; None when
        this line is such a start (its end comes on the next line)."""
        if self._wrapped_output is not None:
            # POV-Ray wraps its messages at 80 columns, in the middle of a path if need be
            line, self._wrapped_output = self._wrapped_output + line, None
        if _OUTPUT_START.match(line) and " bpp" not in line and len(line) < 8192:
            self._wrapped_output = line
            return None
        return line

    def _frame_events(self, index: int) -> list[EngineEvent]:
        """POV-Ray's "Rendering frame <index> of n": index 1 is the first frame of this run."""
        if index == self._frame_in_run:
            return []
        self._frame_in_run = index
        first = self._run_first
        if first is None:
            first = self.task.first_frame if self.task and self.task.frames else 1
        return [*self.enter_frame(first + index - 1), self.chunk_progress(0.0)]

    def _in_workdir(self, path: str) -> str:
        """A relative output path is relative to the task's working directory."""
        if self.task is not None and not Path(path).is_absolute():
            return str(Path(self.task.workdir) / path)
        return path


def _diagnostic(line: str) -> EngineEvent | None:
    """The warning or error a line of POV-Ray's says, or None for any other line."""
    text = line.strip()
    if _POSSIBLE.search(line):  # before errors: "Possible Parse Error" is only a warning
        return EngineEvent.warning(text)
    if _PARSE_ERROR.search(line):
        return EngineEvent.error(text)
    if _WARNING.match(line):
        return EngineEvent.warning(text)
    if _FATAL.match(text):
        return EngineEvent.error(text)
    return None


def _consecutive_runs(frames: tuple[int, ...]) -> list[tuple[int, int]]:
    result: list[tuple[int, int]] = []
    for first, last, step in runs(frames):
        if step == 1:
            result.append((first, last))
        else:
            result += [(f, f) for f in range(first, last + 1, step)]
    return result


def _is_windows(path: str) -> bool:
    return "\\" in path or re.match(r"^[A-Za-z]:", path) is not None


def _folder(path: str) -> str:
    return ntpath.dirname(path) if _is_windows(path) else posixpath.dirname(path)
