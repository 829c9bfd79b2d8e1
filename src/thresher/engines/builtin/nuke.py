"""Nuke: execute a script's Write node(s) over a chunk of frames.

Command line, from Foundry's command-line documentation::

    nuke -x [-X WRITE_NODE] [-i] [-m THREADS] [--cont] [-V LEVEL] [arguments]
         -F FIRST-LAST[xSTEP] [-F ...] script.nk

``-x`` executes the script, ``-X`` limits it to one Write node, ``-F`` gives a frame range (one
per evenly stepped run of the task's frames), ``-i`` uses an interactive licence, ``-m`` sets
the thread count and ``--cont`` continues past frames that fail. Parameters: ``write_node``,
``interactive_license``, ``threads``, ``continue_on_error``, ``verbosity``. The Write nodes name
the files: the job's ``output`` is not passed to Nuke (a folder output is created). Output lines
parsed: ``Frame 12 (2 of 10)``, ``Writing /out/comp.0012.exr took 1.20 seconds``
(also ``Writing PATH frame N``), ``ERROR: ...`` and ``Warning: ...``.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

from thresher.engines.base import Engine as BaseEngine
from thresher.engines.errors import EngineConfigError
from thresher.engines.events import EngineEvent
from thresher.engines.placeholders import runs
from thresher.engines.task import EngineTask

_FRAME = re.compile(r"^Frame (-?\d+) \((\d+) of (\d+)\)")
_WRITING = re.compile(r"^Writing (.+?)(?: frame (-?\d+))?(?: took [\d.]+ seconds?)?\.?$")
_ERROR = re.compile(r"(?:^|\s|:)(?:ERROR|Error)\s*:\s*(.*)")
_WARNING = re.compile(r"(?:^|\s|:)(?:WARNING|Warning)\s*:\s*(.*)")


class Engine(BaseEngine):
    SETTINGS: ClassVar[dict[str, Any]] = {
        "description": "Nuke compositing",
        "vendor": "Foundry",
        "colour": "#f1c40f",
        "items": "frames",
        "type": "render",
        "filename_extensions": [".nk"],
        "binary_filename_extensions": [],
        "default_range": "1-100",
        "default_bucketsize": 10,
    }
    PARAMETERS: ClassVar[dict[str, Any]] = {
        "write_node": None,
        "interactive_license": False,
        "threads": None,
        "continue_on_error": False,
        "verbosity": None,
    }
    OUTPUT_NAME: ClassVar[str | None] = None

    def get_executable(self) -> str:
        return "nuke"

    def get_commandline(self, task: EngineTask) -> list[str]:
        if not task.input:
            raise EngineConfigError("nuke needs an input .nk script")
        if not task.frames:
            raise EngineConfigError("nuke needs frames to execute")
        argv = [self.executable(task), "-x"]
        write_node = self.parameter(task, "write_node")
        if write_node:
            argv += ["-X", str(write_node)]
        if self.parameter(task, "interactive_license", False):
            argv.append("-i")
        threads = self.parameter(task, "threads")
        if threads is not None:
            argv += ["-m", str(int(threads))]
        if self.parameter(task, "continue_on_error", False):
            argv.append("--cont")
        verbosity = self.parameter(task, "verbosity")
        if verbosity is not None:
            argv += ["-V", str(int(verbosity))]
        argv += self.arguments(task)
        for first, last, step in runs(task.frames):
            if first == last:
                argv += ["-F", str(first)]
            else:
                argv += ["-F", f"{first}-{last}" + (f"x{step}" if step != 1 else "")]
        argv.append(task.input)
        return argv

    def parse_line(self, line: str, stream: str) -> list[EngineEvent]:
        frame = _FRAME.match(line)
        if frame:
            number, index, total = (int(g) for g in frame.groups())
            return [*self.enter_frame(number), EngineEvent.progress((index - 1) / total * 100.0)]
        writing = _WRITING.match(line)
        if writing:
            events: list[EngineEvent] = []
            if writing.group(2) is not None:
                events += self.enter_frame(int(writing.group(2)))
            events.append(EngineEvent.output(writing.group(1)))
            if self.current_frame is not None:
                events.append(self.chunk_progress(1.0))
            return events
        error = _ERROR.search(line)
        if error:
            return [EngineEvent.error(line.strip())]
        if _WARNING.search(line):
            return [EngineEvent.warning(line.strip())]
        return []
