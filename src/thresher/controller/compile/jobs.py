"""Compiling command and engine jobs (`api.JobIn`, accsyn's payload shape included).

Field names in errors are the request's: `frames`, `command`, `limits` for a job given as one
block; `blocks[2].frames` and the like for a job given block by block.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from typing import Any

from thresher.controller.compile.engine import EngineJob, compile_engine
from thresher.controller.compile.lookup import Lookup
from thresher.controller.compile.policy import SubmitPolicy, check_cwd
from thresher.core import placeholders
from thresher.core.deps import find_cycle
from thresher.core.errors import InvalidInput, ProblemCollector
from thresher.core.filters import parse_filters
from thresher.core.frames import FrameSet, TaskLayout
from thresher.core.model import BlockSpec, JobSpec
from thresher.schemas import api

LIMIT_NAME = re.compile(r"[A-Za-z0-9_.-]{1,100}")


def compile_job(
    job: api.JobIn, *, owner: str, lookup: Lookup, policy: SubmitPolicy | None = None
) -> JobSpec:
    """The job spec of a command or engine submission, or every problem found in it."""
    if job.blocks:
        (policy or SubmitPolicy()).check_blocks(len(job.blocks), field="blocks")
    problems = ProblemCollector()
    engine_job: EngineJob | None = None
    if job.kind == "engine":
        engine_job = compile_engine(lookup, job)  # nothing else can be checked without it
    elif job.blocks and job.frames is not None:
        raise InvalidInput("give either 'frames' or 'blocks', not both", field="frames")
    given = _given_blocks(job, engine_job)
    names = [b.name for b in given]
    compiled: list[BlockSpec | None] = []
    commands: list[list[str]] = []
    for index, block in enumerate(given):
        where = f"blocks[{index}]." if job.blocks else ""
        spec: BlockSpec | None = None
        with problems.check():
            spec = _block(block, job, names, where=where, engine_job=engine_job)
        compiled.append(spec)
        commands.append(list(block.command or job.command or []))
    blocks = [b for b in compiled if b is not None]
    if len(blocks) == len(compiled):
        with problems.check():
            _refuse_cycles(blocks, names, job)
    filters = ""
    with problems.check():
        filters = parse_filters(job.filters or "", field="filters").text
    with problems.check():
        check_cwd(job.cwd)
    after = list(job.after)
    with problems.check():
        after += _after_checked(job, owner=owner, lookup=lookup)
    with problems.check():
        _limits_exist(blocks, job, lookup)
    problems.raise_found()
    return JobSpec(
        name=job.name,
        owner=owner,
        priority=job.priority,
        kind=job.kind,
        blocks=tuple(blocks),
        after=tuple(dict.fromkeys(after)),
        env=dict(job.env),
        cwd=job.cwd,
        payload=with_container(engine_job.payload if engine_job else {"commands": commands}, job),
        paused=job.paused,
        filters=filters,
        max_running=job.max_running,
        max_running_per_host=job.max_running_per_host,
        preempt=job.preempt,
        after_name=job.after_name,
        after_global=job.after_global,
    )


def _given_blocks(job: api.JobIn, engine_job: EngineJob | None) -> list[api.BlockIn]:
    """The blocks as given, or the one block a job given as a single block stands for."""
    if job.blocks:
        return list(job.blocks)
    frames = engine_job.frames_spec if engine_job else ("1" if job.frames is None else job.frames)
    return [
        api.BlockIn(
            name="main",
            frames=frames,
            chunk=engine_job.chunk if engine_job else (job.chunk or 1),
            priority_frames=job.priority_frames,
            retries=3 if job.retries is None else job.retries,
            max_runtime_s=job.max_runtime_s,
        )
    ]


def _block(
    block: api.BlockIn,
    job: api.JobIn,
    names: list[str],
    *,
    where: str,
    engine_job: EngineJob | None,
) -> BlockSpec:
    """One block's spec: its frames cut into tasks, its command checked, its scheduling
    fields its own when given, else the job's, else the defaults."""
    problems = ProblemCollector()
    task_count = 0
    with problems.check():
        task_count = _task_count(block, where=where, engine_job=engine_job)
    if job.kind == "command":  # an engine builds its own command
        with problems.check():
            command = block.command or job.command
            if not command:
                raise InvalidInput("a command job needs a command", field=f"{where}command")
            placeholders.check_template(command, chunk=block.chunk, field=f"{where}command")
    limits = block.limits if block.limits is not None else (job.limits or [])
    for name in limits:
        if not LIMIT_NAME.fullmatch(name):
            with problems.check():
                raise InvalidInput(f"bad limit name {name!r}", field=f"{where}limits")
    after: tuple[int, ...] = ()
    with problems.check():
        after = _block_refs(block.after, names, field=f"{where}after")
    after_frames: tuple[int, ...] = ()
    with problems.check():
        after_frames = _block_refs(block.after_frames, names, field=f"{where}after_frames")
    problems.raise_found()
    return BlockSpec(
        **_given_fields(block, job),
        task_count=task_count,
        engine=engine_job.engine if engine_job else None,
        limits=tuple(dict.fromkeys(limits)),
        after=after,
        after_frames=tuple(i for i in after_frames if i not in after),
    )


#: Fields of a block spec that compiling works out; every other field is taken as given.
_WORKED_OUT = frozenset(
    {"task_count", "engine", "limits", "after", "after_frames", "host_filters", "chunking"}
)


def _given_fields(block: api.BlockIn, job: api.JobIn) -> dict[str, Any]:
    """The block's fields as given: its own value, else the job's of the same name (the job's
    fields are defaults for its blocks), else the spec's default. By name, so a new field of
    `BlockSpec` and `BlockIn` flows through without a line here."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(BlockSpec):
        if f.name in _WORKED_OUT or f.name not in api.BlockIn.model_fields:
            continue
        value = getattr(block, f.name)
        if value is None:
            value = getattr(job, f.name, None)
        if value is not None:
            out[f.name] = tuple(value) if isinstance(value, list) else value
    return out


def _task_count(block: api.BlockIn, *, where: str, engine_job: EngineJob | None) -> int:
    """Parse the block's frame sets (the one time they are parsed) and count its tasks."""
    frames = (
        engine_job.frames
        if engine_job is not None
        else FrameSet.parse(block.frames, field=f"{where}frames")
    )
    priority = None
    if block.priority_frames is not None:
        priority = FrameSet.parse(block.priority_frames, field=f"{where}priority_frames")
    return TaskLayout(frames, block.chunk, priority_frames=priority).task_count


def _block_refs(refs: Sequence[int | str], names: list[str], *, field: str) -> tuple[int, ...]:
    """Block references (indices or names) as indices; refuse unknown ones."""
    out = []
    for ref in refs:
        if isinstance(ref, int) or ref.isdigit():
            found = int(ref)
            if not 0 <= found < len(names):
                raise InvalidInput(f"the job has no block {found}", field=field)
        elif ref in names:
            found = names.index(ref)
        else:
            raise InvalidInput(f"the job has no block named {ref!r}", field=field)
        out.append(found)
    return tuple(dict.fromkeys(out))


def _refuse_cycles(blocks: list[BlockSpec], names: list[str], job: api.JobIn) -> None:
    graph = {i: [*b.after, *b.after_frames] for i, b in enumerate(blocks)}
    cycle = find_cycle(graph)
    if cycle is not None:
        shown = " -> ".join(names[i] for i in cycle)
        where = f"blocks[{cycle[0]}].after" if job.blocks else "after"
        raise InvalidInput(f"dependency cycle: {shown}", field=where)


def _after_checked(job: api.JobIn, *, owner: str, lookup: Lookup) -> list[int]:
    """Refuse `after` naming jobs that do not exist; the jobs `after_name` matches."""
    missing = lookup.missing_jobs(job.after)
    if missing:
        raise InvalidInput(f"job {missing[0]} does not exist", field="after")
    if not job.after_name:
        return []
    return list(lookup.jobs_matching(job.after_name, owner=None if job.after_global else owner))


def _limits_exist(blocks: list[BlockSpec], job: api.JobIn, lookup: Lookup) -> None:
    for index, block in enumerate(blocks):
        missing = lookup.missing_limits(block.limits)
        if missing:
            raise InvalidInput(
                f"limit {missing[0]!r} does not exist (create it with: thresher limits set "
                f"{missing[0]} --max N)",
                field=f"blocks[{index}].limits" if job.blocks else "limits",
            )


def with_container(payload: dict[str, Any], job: api.JobIn) -> dict[str, Any]:
    """The payload workers read, naming the job's container image if it has one."""
    if job.container is None:
        return payload
    return {**payload, "container": {"image": job.container.image}}
