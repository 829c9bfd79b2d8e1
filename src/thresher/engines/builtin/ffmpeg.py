"""FFmpeg: encode an image sequence into a movie (MP4, MOV) or an animated GIF.

Command line::

    ffmpeg -hide_banner -nostdin -start_number FIRST -framerate RATE -i PATTERN
           -frames:v COUNT [codec options] [arguments] -progress pipe:1 -nostats -y OUTPUT

``PATTERN`` is the task's input with its frame token written the printf way (``####`` and
``$F4`` become ``%04d``); the frames encoded are those from the task's first to its last frame,
so a job normally runs as one task (``default_bucketsize`` 0). MP4/MOV use H.264 (``libx264``,
``yuv420p``, dimensions rounded down to even numbers); GIF builds a palette from the frames
first. Parameters: ``framerate`` (24), ``codec``, ``crf``, ``pix_fmt``, ``format`` (default:
the output's extension; ``mp4`` for a folder output, which gets ``<sequence name>.<format>``
inside it), ``arguments`` (output options). Progress comes from the
``-progress pipe:1`` key=value lines on stdout.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, ClassVar

from thresher.engines.base import Engine as BaseEngine
from thresher.engines.errors import EngineConfigError, EngineSetupError
from thresher.engines.events import EngineEvent
from thresher.engines.placeholders import has_frame_token, printf_pattern
from thresher.engines.task import EngineTask

GIF_FILTER = "[0:v]split[a][b];[a]palettegen[p];[b][p]paletteuse"
EVEN_SIZE = "scale=trunc(iw/2)*2:trunc(ih/2)*2"

_KEY_VALUE = re.compile(r"^([a-z_0-9]+)=\s*(.*)$")
_ERROR = re.compile(
    r"(No such file or directory|Could not|Could find no file|Invalid|Error|error while|"
    r"Unable to|Permission denied|Conversion failed|does not contain any stream|not found)"
)


class Engine(BaseEngine):
    SETTINGS: ClassVar[dict[str, Any]] = {
        "description": "FFmpeg: transcoding and encoding",
        "vendor": "FFmpeg",
        "colour": "#2e8b57",
        "items": "frames",
        "type": "transcode",
        "filename_extensions": [".png", ".exr", ".jpg", ".jpeg", ".tif", ".tiff", ".dpx"],
        "binary_filename_extensions": [".png", ".exr", ".jpg", ".jpeg", ".tif", ".tiff", ".dpx"],
        "default_range": None,
        "default_bucketsize": 0,
    }
    PARAMETERS: ClassVar[dict[str, Any]] = {
        "framerate": 24,
        "codec": None,
        "crf": None,
        "pix_fmt": None,
        "format": None,
    }

    def __init__(self) -> None:
        super().__init__()
        self._count = 0
        self._rate = 24.0
        self._best = -1.0

    def get_executable(self) -> str:
        return "ffmpeg"

    def output_name(self, task: EngineTask, stem: str) -> str:
        return f"{stem}.{str(self.parameter(task, 'format', 'mp4')).lower()}"

    def before_run(self, task: EngineTask) -> None:
        if task.output:
            folder = Path(task.output).parent
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise EngineSetupError(f"cannot create output folder {folder}: {exc}") from exc

    def get_commandline(self, task: EngineTask) -> list[str]:
        if not task.input or not has_frame_token(task.input):
            raise EngineConfigError("ffmpeg needs an input image sequence such as out/f_####.png")
        if not task.output:
            raise EngineConfigError("ffmpeg needs an output file such as movie.mp4")
        if not task.frames:
            raise EngineConfigError("ffmpeg needs the frame range to encode")
        first, last = min(task.frames), max(task.frames)
        self._count = last - first + 1
        self._rate = float(self.parameter(task, "framerate", 24))
        fmt = str(self.parameter(task, "format", Path(task.output).suffix.lstrip("."))).lower()
        argv = [
            self.executable(task),
            "-hide_banner",
            "-nostdin",
            "-start_number",
            str(first),
            "-framerate",
            _number(self._rate),
            "-i",
            printf_pattern(task.input),
            "-frames:v",
            str(self._count),
        ]
        argv += self._codec_options(task, fmt)
        argv += self.arguments(task)
        argv += ["-progress", "pipe:1", "-nostats", "-y", task.output]
        return argv

    def _codec_options(self, task: EngineTask, fmt: str) -> list[str]:
        if fmt == "gif":
            return ["-filter_complex", GIF_FILTER, "-loop", "0"]
        codec = self.parameter(task, "codec", "libx264" if fmt in ("mp4", "mov", "mkv") else None)
        options: list[str] = []
        if codec is not None:
            options += ["-c:v", str(codec)]
        if codec == "libx264":
            options += [
                "-pix_fmt",
                str(self.parameter(task, "pix_fmt", "yuv420p")),
                "-vf",
                EVEN_SIZE,
            ]
        elif self.parameter(task, "pix_fmt") is not None:
            options += ["-pix_fmt", str(self.parameter(task, "pix_fmt"))]
        crf = self.parameter(task, "crf")
        if crf is not None:
            options += ["-crf", str(int(crf))]
        if fmt in ("mp4", "mov"):
            options += ["-movflags", "+faststart"]
        return options

    def parse_line(self, line: str, stream: str) -> list[EngineEvent]:
        pair = _KEY_VALUE.match(line.strip()) if stream == "stdout" else None
        if pair:
            return self._progress_pair(pair.group(1), pair.group(2).strip())
        if stream == "stderr" and _ERROR.search(line):
            return [EngineEvent.error(line.strip())]
        return []

    def _progress_pair(self, key: str, value: str) -> list[EngineEvent]:
        if key == "frame" and value.isdigit() and self._count:
            return self._advance(int(value))
        if key in ("out_time_us", "out_time_ms") and value.isdigit() and self._count:
            # both keys carry microseconds (out_time_ms is misnamed in FFmpeg); the frame shown
            # at time t is number t * rate (from 0), so t * rate + 1 frames are done
            return self._advance(int(value) / 1_000_000 * self._rate + 1)
        if key == "progress" and value == "end":
            events = [EngineEvent.progress(100.0), EngineEvent.status("encoding finished")]
            if self.task is not None and self.task.output:
                events.insert(0, EngineEvent.output(self.task.output))
            return events
        return []

    def _advance(self, frames_done: float) -> list[EngineEvent]:
        percent = min(100.0, frames_done / self._count * 100.0)
        if percent <= self._best:
            return []  # frame= and out_time lines repeat each other; keep progress monotonic
        self._best = percent
        return [EngineEvent.progress(percent)]


def _number(value: float) -> str:
    return str(int(value)) if value == int(value) else str(value)
