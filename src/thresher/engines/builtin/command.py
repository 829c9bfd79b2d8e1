"""Command: run any program from an argv template.

Parameters: ``command`` (required) is the argv template, a list or a string split like a POSIX
shell (backslashes kept), with placeholders ``{start}``, ``{end}``, ``{frame}``,
``{frame:04d}``, ``{frames}`` (comma-separated), ``{count}``, ``{step}``, ``{input}``,
``{output}`` (a folder output is created and stays the folder), ``{workdir}``, ``{job_id}``,
``{task}``, ``{lane}``. With ``per_frame: true`` the template runs once per frame of the task
(``{frame}`` is that frame), one after another in one process, stopping at the first failure.
``arguments`` are appended to each command. ``progress_pattern`` and ``error_pattern`` are
regular expressions applied to every output line: the first group of a progress match is a
percentage of the current command.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

from thresher.engines.base import Engine as BaseEngine
from thresher.engines.base import split_arguments
from thresher.engines.errors import EngineConfigError
from thresher.engines.events import EngineEvent
from thresher.engines.placeholders import expand_argv, task_values
from thresher.engines.sequence import Step
from thresher.engines.task import EngineTask


class Engine(BaseEngine):
    SETTINGS: ClassVar[dict[str, Any]] = {
        "description": "Any command line",
        "vendor": "Thresher",
        "colour": "#7f8c8d",
        "items": "frames",
        "type": "compute",
        "default_range": None,
        "default_bucketsize": 1,
        # Argv templates, expanded per task: their placeholders are checked at submit.
        "templated_parameters": ["command", "arguments"],
    }
    PARAMETERS: ClassVar[dict[str, Any]] = {
        "command": None,
        "per_frame": False,
        "progress_pattern": r"(?i)\bprogress\b\W*(\d+(?:\.\d+)?)\s*%?",
        "error_pattern": r"(?i)^\s*(?:error|fatal)\b",
    }
    OUTPUT_NAME: ClassVar[str | None] = None  # the template names the files in the folder

    def __init__(self) -> None:
        super().__init__()
        self._progress: re.Pattern[str] | None = None
        self._error: re.Pattern[str] | None = None

    def get_executable(self) -> str:
        return ""  # the program is the template's first item

    def template(self, task: EngineTask) -> list[str]:
        template = split_arguments(task.parameters.get("command"))
        if not template:
            raise EngineConfigError("the command engine needs a 'command'", parameter="command")
        executable = task.parameters.get("executable")
        if executable:
            template[0] = self.executable(task)
        return template + self.arguments(task)

    def before_run(self, task: EngineTask) -> None:
        self._progress = _compile(task, "progress_pattern")
        self._error = _compile(task, "error_pattern")

    def get_commandline(self, task: EngineTask) -> list[str]:
        template = self.template(task)
        if not task.parameters.get("per_frame") or len(task.frames) <= 1:
            return expand_argv(template, task_values(task))
        steps = [
            Step(tuple(expand_argv(template, task_values(task, frame=f))), frame=f)
            for f in task.frames
        ]
        return self.sequence(steps)

    def parse_line(self, line: str, stream: str) -> list[EngineEvent]:
        if self._error is not None and self._error.search(line):
            return [EngineEvent.error(line.strip())]
        if self._progress is not None:
            match = self._progress.search(line)
            if match:
                try:
                    percent = float(match.group(1))
                except (IndexError, ValueError):
                    return []
                return [self.chunk_progress(percent / 100.0)]
        return []


def _compile(task: EngineTask, name: str) -> re.Pattern[str] | None:
    pattern = task.parameters.get(name)
    if not pattern:
        return None
    try:
        return re.compile(str(pattern))
    except re.error as exc:
        raise EngineConfigError(f"{name}: {exc}", parameter=name) from None
