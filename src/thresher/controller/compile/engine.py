"""Compiling engine jobs: the accsyn-shaped fields checked against the engine and turned into
one block of the ordinary kind (frames, chunk) plus the payload workers read.

What is refused with a 422 naming the field: no or an unknown engine, a disabled one, a
command or blocks (engine jobs have neither), a range missing while the engine has no default,
a malformed range, a bucket size above the engine's ``max_bucketsize``, several inputs for an
engine that takes one, an input whose extension the engine does not read, parameters the
engine's ``merge_parameters`` refuses (``parameters.<name>``), an ``output`` of a kind the
engine cannot write (its ``SETTINGS["output_kinds"]``: POV-Ray numbers its files itself, so a
``####`` pattern is refused), and placeholders the engine could not expand in the parameters it
reads as argv templates (its ``SETTINGS["templated_parameters"]``: the command engine's
``command`` and ``arguments``). Nothing of the engine runs here but ``merge_parameters``, and
that of a published engine runs in the engine host, not in the controller.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from thresher.controller.compile.lookup import EngineRules, Lookup
from thresher.core import placeholders
from thresher.core.errors import InvalidInput, ProblemCollector
from thresher.core.frames import FrameSet
from thresher.engines import EngineConfigError, EngineTask, split_arguments
from thresher.engines.output import output_kind
from thresher.engines.placeholders import task_values
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
    engine = lookup.engine(job.engine)
    settings = engine.settings()
    problems = ProblemCollector()  # the fields below are checked independently
    frames_spec, frames, chunk = "", FrameSet(()), 0
    with problems.check():
        frames_spec, frames = _range(job, settings)
        chunk = _chunk(job, settings, len(frames))
    inputs: list[str] = []
    with problems.check():
        inputs = _inputs(job, settings)
    with problems.check():
        _output_fits(job, settings)
    parameters = dict(job.parameters)
    with problems.check():
        merged = _merge_parameters(engine, job, parameters)
        _templates_expand(merged, settings)
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
        "settings": {"task_bucketsize": chunk, **_flags(job)},
    }
    return EngineJob(
        frames_spec=frames_spec, frames=frames, chunk=chunk, engine=job.engine, payload=payload
    )


def _flags(job: api.JobIn) -> dict[str, bool | str]:
    """The settings kept for the file service: clear_output, download_output, ..., and
    output_site (where the outputs go back to)."""
    given = job.settings.model_dump(exclude_none=True) if job.settings else {}
    kept: dict[str, bool | str] = {k: v for k, v in given.items() if isinstance(v, bool)}
    if job.settings is not None and job.settings.output_site is not None:
        kept["output_site"] = job.settings.output_site
    return kept


def _merge_parameters(
    engine: EngineRules, job: api.JobIn, parameters: dict[str, Any]
) -> dict[str, Any]:
    """The parameters merged over the engine's defaults, as the engine checks them."""
    if job.envs is not None:
        if "envs" in parameters:
            raise InvalidInput("give 'envs' at the top or in parameters, not both", field="envs")
        parameters["envs"] = job.envs
    try:
        return engine.merge_parameters(parameters)
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


def _output_fits(job: api.JobIn, settings: dict[str, Any]) -> None:
    """Refuse an output the engine cannot write: a frame pattern for an engine that numbers its
    files itself, and the like."""
    kinds = settings.get("output_kinds")
    if not job.output or not kinds:
        return
    kind = output_kind(job.output)
    if kind.value not in kinds:
        raise InvalidInput(
            f"engine {job.engine!r} cannot write a {kind.value} output ({job.output!r}); it "
            f"takes a {' or a '.join(kinds)}",
            field="output",
        )


#: A task as the engine would see it, for the values its placeholders may name.
_SAMPLE_TASK = EngineTask(
    job_id="1", index=0, frames=(1, 2), workdir="/work", input="/in", output="/out", os_name="linux"
)


def _templates_expand(merged: dict[str, Any], settings: dict[str, Any]) -> None:
    """Refuse placeholders the engine could not expand in the parameters it reads as argv
    templates (unknown names, bad syntax, formats that do not fit a frame number)."""
    values = task_values(_SAMPLE_TASK)
    for name in settings.get("templated_parameters") or ():
        field = f"parameters.{name}"
        try:
            argv = split_arguments(merged.get(name))
        except EngineConfigError as exc:
            raise InvalidInput(exc.message, field=field) from None
        placeholders.expand_argv(argv, values, field=field)
