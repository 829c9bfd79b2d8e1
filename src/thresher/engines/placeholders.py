"""Placeholders for engines: the values of an :class:`EngineTask`, over
:mod:`thresher.core.placeholders` (the one implementation), with errors as
:class:`EngineConfigError`.

Names an engine template may use: ``{start}``, ``{end}``, ``{frame}``, ``{frame:04d}``,
``{frames}``, ``{count}``, ``{step}``, ``{input}``, ``{output}``, ``{workdir}``, ``{job_id}``,
``{task}``, ``{lane}``. File name patterns (``####``, ``%04d``, ``$F4``) are read by
:func:`frame_path`, :func:`printf_pattern` and :func:`has_frame_token`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from thresher.core import placeholders as _core
from thresher.core.errors import InvalidInput
from thresher.core.placeholders import (
    frame_path,
    has_frame_token,
    printf_pattern,
    runs,
    uniform_step,
)
from thresher.engines.errors import EngineConfigError
from thresher.engines.task import EngineTask

__all__ = [
    "expand",
    "expand_argv",
    "frame_path",
    "has_frame_token",
    "printf_pattern",
    "runs",
    "task_values",
    "uniform_step",
]


def task_values(task: EngineTask, *, frame: int | None = None) -> dict[str, object]:
    """The placeholder values for ``task``; ``frame`` defaults to the task's first frame."""
    values: dict[str, object] = {
        "input": task.input or "",
        "output": task.output or "",
        "workdir": task.workdir,
        "job_id": task.job_id,
        "task": task.index,
        "lane": task.lane,
    }
    values.update(_core.frame_values(task.frames, frame=frame))
    return values


def expand(template: str, values: Mapping[str, object]) -> str:
    """Expand the placeholders of ``template``; unknown names or bad formats raise
    :class:`EngineConfigError` naming the placeholder."""
    try:
        return _core.expand_text(template, values)
    except InvalidInput as exc:
        raise EngineConfigError(exc.message) from None


def expand_argv(template: Sequence[str], values: Mapping[str, object]) -> list[str]:
    """Expand every item of an argv template."""
    return [expand(item, values) for item in template]
