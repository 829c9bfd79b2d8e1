"""Compiling engine jobs: the accsyn-shaped fields checked against the engine and turned into
one block of the ordinary kind (frames, chunk) plus the payload workers read.

What is refused with a 422 naming the field: no or an unknown engine, a disabled one, a
command or blocks (engine jobs have neither), a range missing while the engine has no default,
a malformed range, a bucket size above the engine's ``max_bucketsize``, several inputs for an
engine that takes one, an input whose extension the engine does not read, and parameters the
engine's ``merge_parameters`` refuses (``parameters.<name>``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from thresher.controller.compile.lookup import Lookup
from thresher.core.errors import InvalidInput, ProblemCollector
from thresher.core.frames import FrameSet
from thresher.engines import Engine, EngineConfigError
from thresher.schemas import api


@dataclass(frozen=True)
class EngineJob:
    """A checked engine submission: its items (parsed once), items per task, the engine's
    name (the block's engine) and what workers get as the job's payload."""

    frames_spec: str
    frames: FrameSet
    chunk: int
    engine: str
    payload: dict[str, Any]


def compile_engine(lookup: Lookup, job: api.JobIn) -> EngineJob:
    """Check an engine job against its engine; :class:`InvalidInput` says what is wrong."""
    if not job.engine:
        raise InvalidInput("an engine job needs 'engine' (blender, povray, ...)", field="engine")
    if job.command is not None:
        raise InvalidInput("an engine job takes no command; the engine builds it", field="command")
    if job.blocks is not None:
        raise InvalidInput("an engine job has one block; give no 'blocks'", field="blocks")
    engine_class = lookup.engine_class(job.engine)
    settings = engine_class.settings()
    problems = ProblemCollector()  # the fields below are checked independently
    frames_spec, frames, chunk = "", FrameSet(()), 0
    with problems.check():
        frames_spec, frames = _range(job, settings)
        chunk = _chunk(job, settings, len(frames))
    inputs: list[str] = []
    with problems.check():
        inputs = _inputs(job, settings)
    parameters = dict(job.parameters)
    with problems.check():
        _merge_parameters(engine_class, job, parameters)
    problems.raise_found()
    payload: dict[str, Any] = {
        "engine": job.engine,
        "input": inputs[0] if inputs else None,
        "inputs": inputs,
        "output": job.output,
        "range": frames_spec,
        "job_range": [frames.first, frames.last],
        "parameters": parameters,
        "dependencies": list(job.dependencies),
        "settings": {"task_bucketsize": chunk},
    }
    return EngineJob(
        frames_spec=frames_spec, frames=frames, chunk=chunk, engine=job.engine, payload=payload
    )


def _merge_parameters(
    engine_class: type[Engine], job: api.JobIn, parameters: dict[str, Any]
) -> None:
    if job.envs is not None:
        if "envs" in parameters:
            raise InvalidInput("give 'envs' at the top or in parameters, not both", field="envs")
        parameters["envs"] = job.envs
    try:
        engine_class.merge_parameters(parameters)
    except EngineConfigError as exc:
        field = f"parameters.{exc.parameter}" if exc.parameter else "parameters"
        raise InvalidInput(exc.message, field=field) from None
    except Exception as exc:  # engine code: its error is the answer, never a 500
        raise InvalidInput(
            f"engine {job.engine!r} refused the parameters: {type(exc).__name__}: {exc}",
            field="parameters",
        ) from None


def _range(job: api.JobIn, settings: dict[str, Any]) -> tuple[str, FrameSet]:
    if job.range is not None and job.frames is not None:
        raise InvalidInput("give 'range' or 'frames', not both", field="range")
    spec = job.range if job.range is not None else job.frames
    if spec is None:
        spec = settings.get("default_range")
        if not spec:
            raise InvalidInput(
                f"engine {job.engine!r} has no default range: give a 'range'", field="range"
            )
    return spec, FrameSet.parse(spec, field="range")


def _chunk(job: api.JobIn, settings: dict[str, Any], count: int) -> int:
    given = job.settings.task_bucketsize if job.settings else None
    if given is not None and job.chunk is not None and given != job.chunk:
        raise InvalidInput(
            "give 'settings.task_bucketsize' or 'chunk', not both", field="settings.task_bucketsize"
        )
    if given is None:
        given = job.chunk
    limit = settings.get("max_bucketsize")
    if given is not None and limit is not None and given > limit:
        raise InvalidInput(
            f"engine {job.engine!r} takes at most {limit} items per task, not {given}",
            field="settings.task_bucketsize",
        )
    if job.settings is not None and job.settings.split_mode == "single":
        return count
    size = given if given is not None else int(settings.get("default_bucketsize") or 0)
    return count if size == 0 else min(size, count)


def _inputs(job: api.JobIn, settings: dict[str, Any]) -> list[str]:
    inputs = list(job.inputs)
    if job.input is not None and job.input not in inputs:
        inputs.insert(0, job.input)
    if len(inputs) > 1 and not settings.get("multiple_inputs"):
        raise InvalidInput(f"engine {job.engine!r} takes one input", field="inputs")
    extensions = [e.lower() for e in settings.get("filename_extensions") or []]
    if extensions:
        if not inputs:
            raise InvalidInput(
                f"engine {job.engine!r} needs an input ({', '.join(extensions)})", field="input"
            )
        for path in inputs:
            suffix = PurePosixPath(path.replace("\\", "/")).suffix.lower()
            if suffix not in extensions:
                raise InvalidInput(
                    f"engine {job.engine!r} reads {', '.join(extensions)} files, not {path!r}",
                    field="input" if path == job.input else "inputs",
                )
    return inputs
