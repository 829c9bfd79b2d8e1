"""The common base of every engine: settings, parameter defaults, and the run preparation.

An engine is a Python module defining ``class Engine(thresher.engines.base.Engine)``. Engine
authors write four things:

- ``get_executable()``: the application's program name (``"blender"``); a job may override it
  with the ``executable`` parameter (a string, or ``{"linux": ..., "windows": ...}``), which
  :meth:`Engine.executable` resolves;
- ``get_envs()``: environment variables the application always needs (usually none);
- ``get_commandline(task)``: the full argv for one task, starting with
  ``self.executable(task)``; no shell is involved;
- ``parse_line(line, stream)`` (or ``parse_output`` for raw lines): events from one line of the
  application's output.

and optionally ``before_run(task)``, ``input_files`` (the concrete files of a sequence input,
for input conversion) and ``OUTPUT_NAME`` or ``output_name`` (the file written inside a folder
``output``, see :mod:`thresher.engines.output`).

The worker makes one instance per task run and calls :meth:`Engine.prepare`, which applies
what every engine shares: parameter defaults, path mapping of inputs, outputs, arguments and
environment values, input conversion, a folder output made into a file inside it, and per-OS
environment variables. It then runs
``PreparedCommand.argv`` and feeds every output line to :meth:`Engine.parse_output`.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar

from thresher.engines.conversion import (
    CONVERSION_MODES,
    convert_file,
    has_binary_extension,
    should_convert,
)
from thresher.engines.environment import apply_envs, select_envs
from thresher.engines.errors import EngineConfigError, EngineSetupError
from thresher.engines.events import EngineEvent, EventKind
from thresher.engines.output import (
    OutputKind,
    in_folder,
    input_stem,
    output_kind,
    staging_for,
)
from thresher.engines.pathmap import PathMapper, is_windows_style
from thresher.engines.placeholders import expand
from thresher.engines.platforms import normalize_os
from thresher.engines.sequence import Step, parse_marker, sequence_commandline
from thresher.engines.task import EngineTask, PreparedCommand, Staging

CONVERTED_DIR = "converted"


class Engine:
    """Base class of all engines; see the module docstring for what subclasses provide.

    ``SETTINGS`` describe the engine to the controller:

    - ``items``: what a task's range counts (``"frames"``);
    - ``multiple_inputs``: whether a job may name several inputs;
    - ``filename_extensions``: input extensions the engine accepts (``[".blend"]``);
    - ``binary_filename_extensions``: inputs that input conversion must never rewrite;
    - ``default_range``: range used when a job gives none (``"1-100"``; ``None`` for none);
    - ``default_bucketsize``: frames per task by default; ``0`` means the whole range in one task;
    - ``max_bucketsize``: upper bound for a job's ``task_bucketsize`` (``None``: no bound);
    - ``type``: ``"render"``, ``"compute"`` or ``"transcode"``;
    - ``cancel_signal``: what the worker sends to cancel (``"SIGTERM"``; Blender ignores SIGINT
      until its current samples end);
    - ``output_kinds``: the outputs it can write, of ``"file"``, ``"pattern"`` (frame numbers
      like ``####``) and ``"folder"`` (unset: any); another is refused at submit;
    - ``templated_parameters``: parameters it expands as argv templates per task; their
      placeholders are checked at submit.

    ``PARAMETERS`` are the defaults a job's ``parameters`` are merged over: ``arguments``
    (extra application arguments, a string split like a POSIX shell but keeping backslashes,
    or a list), ``input_conversion`` (``always``/``platform``/``never``), ``mapped_share_paths``
    (see :mod:`thresher.engines.pathmap`), ``remote_os`` (the submitter's OS), ``envs`` (see
    :mod:`thresher.engines.environment`) and ``executable``. A subclass's ``SETTINGS`` and
    ``PARAMETERS`` only list what differs from its bases.
    """

    SETTINGS: ClassVar[dict[str, Any]] = {
        "items": "frames",
        "multiple_inputs": False,
        "filename_extensions": [],
        "binary_filename_extensions": [],
        "default_range": "1-100",
        "default_bucketsize": 1,
        "max_bucketsize": None,
        "type": "render",
        "cancel_signal": "SIGTERM",
    }
    PARAMETERS: ClassVar[dict[str, Any]] = {
        "arguments": [],
        "input_conversion": "never",
        "mapped_share_paths": [],
        "remote_os": None,
        "envs": {},
        "executable": None,
    }
    #: progress events closer than this (in percent) to the last one reported are dropped
    PROGRESS_STEP: ClassVar[float] = 0.5
    #: the file written inside a folder ``output``, ``{stem}`` being the input's name without
    #: extension or frame token; ``None`` hands the application the folder itself
    OUTPUT_NAME: ClassVar[str | None] = "{stem}_####"

    def __init__(self) -> None:
        self.task: EngineTask | None = None
        #: the input as mapped for this machine, before conversion replaced it with a copy
        self.source_input: str | None = None
        self.current_frame: int | None = None
        self._frame_index: dict[int, int] = {}
        self._last_progress: float | None = None

    # ----------------------------------------------------------------- settings and parameters

    @classmethod
    def settings(cls) -> dict[str, Any]:
        """``SETTINGS`` merged along the class hierarchy (base first)."""
        return cls._merged("SETTINGS")

    @classmethod
    def default_parameters(cls) -> dict[str, Any]:
        """``PARAMETERS`` merged along the class hierarchy (base first)."""
        return cls._merged("PARAMETERS")

    @classmethod
    def _merged(cls, attribute: str) -> dict[str, Any]:
        merged: dict[str, Any] = {}
        for klass in reversed(cls.__mro__):
            own = klass.__dict__.get(attribute)
            if isinstance(own, Mapping):
                merged.update(own)
        return merged

    @classmethod
    def merge_parameters(cls, parameters: Mapping[str, Any] | None) -> dict[str, Any]:
        """A job's ``parameters`` over the engine's defaults, validated.

        Raises :class:`EngineConfigError` naming the bad parameter; the controller can call
        this at submit time to refuse a job early.
        """
        merged = cls.default_parameters()
        merged.update(parameters or {})
        if merged["input_conversion"] not in CONVERSION_MODES:
            raise EngineConfigError(
                f"input_conversion must be one of {CONVERSION_MODES}, "
                f"not {merged['input_conversion']!r}",
                parameter="input_conversion",
            )
        if merged["remote_os"] not in (None, ""):
            try:
                merged["remote_os"] = normalize_os(str(merged["remote_os"]))
            except ValueError as exc:
                raise EngineConfigError(str(exc), parameter="remote_os") from None
        split_arguments(merged["arguments"])
        PathMapper.from_parameter(merged["mapped_share_paths"], os_name="linux")
        select_envs(merged["envs"], os_name="linux")
        return merged

    # ----------------------------------------------------------------- what engines implement

    def get_executable(self) -> str:
        """The application's program name or path."""
        raise NotImplementedError(f"{type(self).__name__} does not define get_executable()")

    def get_envs(self) -> dict[str, str]:
        """Environment variables this application always needs."""
        return {}

    def get_commandline(self, task: EngineTask) -> list[str]:
        """The full argv (program first) that runs ``task``."""
        raise NotImplementedError(f"{type(self).__name__} does not define get_commandline()")

    def before_run(self, task: EngineTask) -> None:
        """Called by :meth:`prepare` before the command line is built (paths already mapped)."""

    def input_files(self, task: EngineTask, path: str) -> list[str]:
        """The concrete files behind input ``path`` (a sequence pattern names several)."""
        return [path]

    def output_name(self, task: EngineTask, stem: str) -> str | None:
        """The file name (or frame pattern) this engine writes inside a folder ``output``,
        ``stem`` being the input's name; ``None`` when the application takes the folder itself.

        The default fills ``{stem}`` into ``OUTPUT_NAME``; override it when the name depends on
        parameters (POV-Ray's ``format``).
        """
        return None if self.OUTPUT_NAME is None else expand(self.OUTPUT_NAME, {"stem": stem})

    def parse_line(self, line: str, stream: str) -> list[EngineEvent]:
        """Events from one output line (no ``\\r`` or ``\\n`` in it)."""
        return []

    def parse_output(self, line: str, stream: str = "stdout") -> list[EngineEvent]:
        """Events from one raw output line of ``stream`` (``"stdout"`` or ``"stderr"``).

        A line may hold several carriage-return separated updates (progress meters); each
        part goes to :meth:`parse_line`. Sequence-driver markers become frame and progress
        events here, for every engine. Progress that moved less than ``PROGRESS_STEP`` since
        the last reported value is dropped (POV-Ray alone reports every few pixels).
        """
        events: list[EngineEvent] = []
        for part in line.replace("\r\n", "\n").replace("\n", "\r").split("\r"):
            text = part.rstrip()
            if not text:
                continue
            marker = parse_marker(text)
            if marker is not None:
                if marker.frame is not None:
                    events.extend(self.enter_frame(marker.frame))
                events.append(EngineEvent.progress((marker.number - 1) / marker.total * 100.0))
                continue
            events.extend(self.parse_line(text, stream))
        return self._throttled(events)

    def _throttled(self, events: list[EngineEvent]) -> list[EngineEvent]:
        kept: list[EngineEvent] = []
        for event in events:
            if event.kind is EventKind.PROGRESS:
                value, last = float(event.value), self._last_progress
                if last is not None and (
                    value == last or (last < value < 100.0 and value - last < self.PROGRESS_STEP)
                ):
                    continue
                self._last_progress = value
            kept.append(event)
        return kept

    # ----------------------------------------------------------------- helpers for engines

    def executable(self, task: EngineTask) -> str:
        """The program: the ``executable`` parameter (for this OS), else ``get_executable()``."""
        value = task.parameters.get("executable")
        if isinstance(value, Mapping):
            value = value.get(task.os_name) or value.get("common")
        return str(value) if value else self.get_executable()

    def arguments(self, task: EngineTask) -> list[str]:
        """The job's extra ``arguments`` as a list."""
        return split_arguments(task.parameters.get("arguments"))

    def parameter(self, task: EngineTask, name: str, default: Any = None) -> Any:
        """A parameter of ``task``, ``default`` when missing or empty."""
        value = task.parameters.get(name)
        return default if value in (None, "") else value

    def sequence(self, steps: Sequence[Step]) -> list[str]:
        """The argv running ``steps`` in one process (a single step runs directly)."""
        if len(steps) == 1:
            return list(steps[0].argv)
        return sequence_commandline(steps)

    def enter_frame(self, frame: int) -> list[EngineEvent]:
        """A frame event when ``frame`` is not the current one (parsers call it on every
        line that names a frame)."""
        if frame == self.current_frame:
            return []
        self.current_frame = frame
        return [EngineEvent.frame(frame)]

    def chunk_progress(self, fraction: float, frame: int | None = None) -> EngineEvent:
        """Task progress for ``fraction`` (0..1) of ``frame`` (default: the current frame) done.

        In a task of N frames, frame i (0-based) at fraction f is (i + f) / N of the task.
        """
        frame = self.current_frame if frame is None else frame
        total = len(self._frame_index)
        if frame is None or frame not in self._frame_index or total == 0:
            return EngineEvent.progress(fraction * 100.0)
        return EngineEvent.progress((self._frame_index[frame] + fraction) / total * 100.0)

    # ----------------------------------------------------------------- the driver

    def prepare(
        self, task: EngineTask, *, base_env: Mapping[str, str] | None = None
    ) -> PreparedCommand:
        """Everything needed to run ``task`` on this machine.

        Merges the parameters with the defaults; maps the input, inputs, output and arguments
        through ``mapped_share_paths`` for ``task.os_name``; converts ASCII inputs into
        ``<workdir>/converted/`` when ``input_conversion`` says so; creates a folder ``output``
        and names the file inside it (:meth:`output_name`); with ``task.staging``, makes that
        staging folder in the output's folder and points the output into it (undone when the
        command line does not name it: the command writes elsewhere); calls :meth:`before_run`
        and :meth:`get_commandline`; maps every argv item; and builds the environment:
        ``base_env`` (default: this process's environment), then ``get_envs()``, then the
        job's ``envs`` for this OS, values path-mapped.

        Raises :class:`EngineConfigError` for bad parameters and :class:`EngineSetupError`
        when files cannot be written; exceptions from engine code propagate unchanged.
        """
        parameters = self.merge_parameters(task.parameters)
        mapper = PathMapper.from_parameter(parameters["mapped_share_paths"], os_name=task.os_name)
        local = _localized(task, parameters, mapper)
        self.source_input = local.input
        notes: list[str] = []
        converted_input: str | None = None
        if should_convert(
            parameters["input_conversion"], remote_os=parameters["remote_os"], local_os=task.os_name
        ):
            local, converted_input = self._convert_inputs(local, mapper, notes)
        local = self._place_output(local)
        unstaged = local
        staging, local = _staged(local)

        self.task = local
        self.current_frame = None
        self._last_progress = None
        self._frame_index = {frame: i for i, frame in reversed(list(enumerate(local.frames)))}
        try:
            self.before_run(local)
            argv = self.get_commandline(local)
            if not argv or not all(isinstance(a, str) for a in argv):
                raise EngineConfigError(
                    f"{type(self).__name__}.get_commandline() must return a non-empty list of str"
                )
        except BaseException:
            if staging is not None:  # nothing runs: nothing is left behind
                shutil.rmtree(staging.staged, ignore_errors=True)
            raise
        if staging is not None and not _mentions(argv, staging.staged):
            # the command writes where it names itself, not in the output: nothing to stage
            shutil.rmtree(staging.staged, ignore_errors=True)
            staging, local = None, unstaged
            self.task = local
        return PreparedCommand(
            argv=tuple(mapper.map_argument(a) for a in argv),
            env=self._environment(local, mapper, os.environ if base_env is None else base_env),
            cwd=local.workdir,
            converted_input=converted_input,
            task=local,
            notes=tuple(notes),
            staging=staging,
        )

    def _place_output(self, task: EngineTask) -> EngineTask:
        """``task`` with a folder ``output`` created and replaced by the file inside it."""
        if not task.output:
            return task
        folder = Path(task.workdir, task.output)  # a relative output is the process's cwd's
        if output_kind(task.output, is_directory=folder.is_dir()) is not OutputKind.FOLDER:
            return task
        # a Windows path left unmapped on a POSIX worker is no folder here: the application
        # reports it, rather than a stray folder appearing in the work directory
        if not (is_windows_style(task.output) and os.name != "nt"):
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise EngineSetupError(f"cannot create output folder {folder}: {exc}") from exc
        name = self.output_name(task, input_stem(self.source_input or task.input))
        return task if name is None else replace(task, output=in_folder(task.output, name))

    def _environment(
        self, task: EngineTask, mapper: PathMapper, base_env: Mapping[str, str]
    ) -> dict[str, str]:
        updates: dict[str, str | None] = {
            name: mapper.map_text(value) for name, value in self.get_envs().items()
        }
        for name, value in select_envs(task.parameters["envs"], os_name=task.os_name).items():
            updates[name] = None if value is None else mapper.map_text(value)
        return apply_envs(base_env, updates)

    def _convert_inputs(
        self, task: EngineTask, mapper: PathMapper, notes: list[str]
    ) -> tuple[EngineTask, str | None]:
        binary = self.settings().get("binary_filename_extensions") or []
        target_dir = Path(task.workdir) / CONVERTED_DIR

        def convert(path: str) -> str:
            if has_binary_extension(path, binary):
                notes.append(f"input {path} not converted: binary file type")
                return path
            files = self.input_files(task, path)
            missing = [f for f in files if not Path(f).is_file()]
            if missing:
                notes.append(f"input {path} not converted: {missing[0]} does not exist")
                return path
            try:
                for name in files:
                    if not convert_file(Path(name), target_dir / Path(name).name, mapper):
                        notes.append(f"input {path} not converted: {name} is not a text file")
                        return path
            except OSError as exc:
                raise EngineSetupError(f"could not convert input {path}: {exc}") from exc
            converted = str(target_dir / _basename(path))
            notes.append(f"input {path} converted to {converted}")
            return converted

        new_input = None if task.input is None else convert(task.input)
        new_inputs = tuple(convert(i) if i != task.input else new_input or i for i in task.inputs)
        converted_input = new_input if new_input != task.input else None
        return replace(task, input=new_input, inputs=new_inputs), converted_input


def _localized(task: EngineTask, parameters: dict[str, Any], mapper: PathMapper) -> EngineTask:
    """``task`` with merged parameters and its paths and arguments mapped for this machine."""
    parameters["arguments"] = [
        mapper.map_argument(a) for a in split_arguments(parameters["arguments"])
    ]
    return replace(
        task,
        parameters=parameters,
        input=None if task.input is None else mapper.map_argument(task.input),
        inputs=tuple(mapper.map_argument(i) for i in task.inputs),
        output=None if task.output is None else mapper.map_argument(task.output),
    )


def _staged(task: EngineTask) -> tuple[Staging | None, EngineTask]:
    """The task's staging folder, made, and the task writing into it; (None, the task) when it
    asks for none, has no output, or the folder cannot be made (the application then meets
    the output folder as it is, and says what is wrong with it)."""
    if not task.staging or not task.output:
        return None, task
    found = staging_for(task.output, workdir=task.workdir, name=task.staging)
    if found is None:
        return None, task
    staging, output = found
    try:
        os.makedirs(staging.staged, exist_ok=True)
    except OSError:
        return None, task
    return staging, replace(task, output=output)


def _mentions(argv: Sequence[str], path: str) -> bool:
    """Whether an argument names `path` (also inside a sequence's JSON)."""
    escaped = json.dumps(path)[1:-1]
    return any(path in a or escaped in a for a in argv)


def _basename(path: str) -> str:
    return path.replace("\\", "/").rsplit("/", 1)[-1]


def split_arguments(value: object) -> list[str]:
    """The ``arguments`` parameter as a list: a string is split like a POSIX shell (quotes
    group words) but backslashes are kept, so Windows paths survive; a list is taken as is."""
    if value in (None, ""):
        return []
    if isinstance(value, str):
        lexer = shlex.shlex(value, posix=True)
        lexer.whitespace_split = True
        lexer.escape = ""
        lexer.commenters = ""
        try:
            return list(lexer)
        except ValueError as exc:
            raise EngineConfigError(f"arguments: {exc}", parameter="arguments") from None
    if isinstance(value, Sequence) and not isinstance(value, bytes):
        if not all(isinstance(a, str | int | float) for a in value):
            raise EngineConfigError("arguments must be strings", parameter="arguments")
        return [str(a) for a in value]
    raise EngineConfigError("arguments must be a string or a list", parameter="arguments")
