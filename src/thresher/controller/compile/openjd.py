"""Compiling OpenJD jobs: a template with parameter values becomes a job of one block per step.

- A step is a block whose "frames" are its task indices `0-(n-1)`, chunk 1: task `i` of the
  block is task `i` of the step's parameter-space iterator (`StepPlan.task_parameters(i)`), so no
  task is materialised at submission. A chunked step (CHUNK[INT]) has one block task per chunk
  of `defaultTaskCount` items.
- A chunked step with `targetRuntimeSeconds` (adaptive) is a block whose frames are its item
  positions `0-(N-1)` in `openjd run`'s adaptive order, chunk ADAPTIVE_CHUNK, with a chunk plan
  (`StepPlan.chunking()`) that starts at `defaultTaskCount` items a chunk and is re-planned from
  measured run times as tasks finish (`store.chunking`); a task's frames are its items.
- Step dependencies become block dependencies (`after`, block indices).
- `hostRequirements` become the block's own filters (`host_filters`), applied on top of the
  job's filters; requirements without a worker fact are kept in the plan, not enforced.
- The job's payload holds the plan (`JobPlan.to_json()`: template, environment templates,
  resolved parameter values, per-step symbol tables), each block's step (`StepPlan.to_json()`),
  and the submitter's path mapping rules: that is all a worker needs to run any task.
"""

from __future__ import annotations

from typing import Any

from thresher.controller.compile.lookup import Lookup
from thresher.controller.compile.policy import SubmitPolicy
from thresher.core.chunk_plan import ADAPTIVE_CHUNK, ChunkPlan, PlannedLayout
from thresher.core.errors import InvalidInput, ProblemCollector
from thresher.core.filters import parse_filters
from thresher.core.model import BlockSpec, JobSpec
from thresher.openjd import JobPlan, StepPlan, plan_job
from thresher.schemas import openjd as schema

KIND = "openjd"


def plan_template(body: schema.TemplateJobIn) -> JobPlan:
    """Validate the template, its environment templates and the parameter values.

    Raises TemplateError listing every issue, with its location.
    """
    if isinstance(body.template, str) and len(body.template) > schema.MAX_TEMPLATE_CHARS:
        raise InvalidInput(
            f"the template is over {schema.MAX_TEMPLATE_CHARS} characters", field="template"
        )
    return plan_job(
        body.template,
        body.parameters,
        env_templates=list(body.environments),
        template_dir=body.template_dir,
    )


def compile_template(
    body: schema.TemplateJobIn,
    *,
    owner: str,
    lookup: Lookup,
    policy: SubmitPolicy | None = None,
) -> JobSpec:
    """The job spec of a template submission, or every problem found in it."""
    problems = ProblemCollector()
    plan: JobPlan | None = None
    with problems.check():
        plan = plan_template(body)
        (policy or SubmitPolicy()).check_blocks(len(plan.steps), field="template")
    filters = ""
    with problems.check():
        filters = parse_filters(body.filters or "", field="filters").text
    with problems.check():
        missing = lookup.missing_jobs(body.after)
        if missing:
            raise InvalidInput(f"job {missing[0]} does not exist", field="after")
    problems.raise_found()
    assert plan is not None  # raise_found raised otherwise
    return JobSpec(
        name=body.name or plan.name,
        owner=owner,
        priority=body.priority,
        kind=KIND,
        blocks=tuple(block_spec(step, plan, retries=body.retries) for step in plan.steps),
        after=tuple(body.after),
        env=dict(body.env),
        payload=_payload(plan, body),
        paused=body.paused,
        filters=filters,
    )


def block_spec(step: StepPlan, plan: JobPlan, *, retries: int) -> BlockSpec:
    indices = {s.name: s.index for s in plan.steps}
    chunking = step.chunking()
    # Adaptive: the frames are the step's items, which the block's chunk plan cuts into tasks.
    last = (step.item_count if chunking is not None else step.task_count) - 1
    task_count = step.task_count
    if chunking is not None:
        task_count = PlannedLayout.of(ChunkPlan.from_json(chunking)).task_count
    return BlockSpec(
        name=step.name,
        frames=f"0-{last}" if last else "0",
        chunk=1 if chunking is None else ADAPTIVE_CHUNK,
        task_count=task_count,
        retries=retries,
        after=tuple(indices[name] for name in step.dependencies),
        host_filters=",".join(step.host_filters),
        chunking=chunking,
    )


def _payload(plan: JobPlan, body: schema.TemplateJobIn) -> dict[str, Any]:
    """What workers read from the job: the stored plan and which step each block runs."""
    out: dict[str, Any] = {
        "openjd": plan.to_json(),
        "steps": [step.to_json() for step in plan.steps],
        "path_mapping_rules": [rule.model_dump() for rule in body.path_mapping_rules],
    }
    if body.asset_references is not None:
        out["asset_references"] = body.asset_references
    return out


def template_summary(plan: JobPlan) -> schema.TemplateCheckOut:
    """What a submission would make, without making it."""
    return schema.TemplateCheckOut(
        name=plan.name,
        parameters={name: value["value"] for name, value in plan.parameter_values.items()},
        steps=[
            schema.StepSummary(
                name=step.name,
                index=step.index,
                dependencies=list(step.dependencies),
                tasks=step.task_count,
                items=step.item_count,
                chunk_size=step.chunk_size,
                target_runtime_s=step.target_runtime_s,
                host_filters=list(step.host_filters),
                unmapped_requirements=list(step.unmapped_requirements),
            )
            for step in plan.steps
        ],
    )
