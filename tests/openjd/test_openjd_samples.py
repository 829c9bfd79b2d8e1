"""Every public OpenJD sample template is accepted or refused as `openjd check` decides, and makes
the tasks `openjd summary` and the library's parameter-space iterator make."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from openjd.model import (
    DocumentType,
    StepParameterSpaceIterator,
    create_job,
    decode_job_template,
    document_string_to_object,
    preprocess_job_parameters,
)

from thresher.openjd import (
    EXTENSIONS,
    TemplateError,
    load_environment_template,
    load_template,
    plan_job,
)

if TYPE_CHECKING:
    from tests.openjd.conftest import ReferenceCli

pytestmark = pytest.mark.openjd

SAMPLES = (Path(__file__).resolve().parents[2] / ".." / "shared" / "openjd-samples").resolve()

# Parameter sets per sample (templates with required parameters need one; more sets exercise
# parameters that shape the parameter space). Samples not named here run with their defaults.
PARAMETER_SETS: dict[str, list[dict[str, Any]]] = {
    "expr-test-job.yaml": [{}, {"FrameStart": 3, "FrameEnd": 7, "Quality": "final"}],
    "v2023-09/job_templates/algorithmic-art.yaml": [
        {"RenderScript": "/s/art.py", "OutputDirectory": "/out", "NumAnimationFrames": 4},
        {"RenderScript": "/s/art.py", "OutputDirectory": "/out", "NumAnimationFrames": 0},
    ],
    "v2023-09/job_templates/ffmpeg.yaml": [
        {"InputFile": "/in/frame-####.png", "OutputDir": "/out", "EndFrame": 10},
    ],
    "v2023-09/job_templates/ffmpeg.json": [
        {"InputFile": "/in/frame-####.png", "OutputDir": "/out", "EndFrame": 10},
    ],
    "v2023-09/job_templates/blender-ffmpeg.yaml": [{}, {"EndFrame": 12}],
    "v2023-09/job_templates/blender-ffmpeg-expr.yaml": [{}, {"StartFrame": 5, "EndFrame": 9}],
    "v2023-09/job_templates/task-parameter-definition-showcase.yaml": [
        {"PathValue": "/mnt/shared/value"},
        {"PathValue": "/mnt/shared/value", "IntRange": "1-50", "IntValue": 3},
    ],
    "v2023-09/job_templates/ui-controls-showcase.yaml": [
        {"InputFilePicker": "/in/a.txt", "OutputFilePicker": "/out/b.txt", "DirectoryPicker": "/d"},
    ],
}


def _documents() -> list[Path]:
    if not SAMPLES.is_dir():
        return []
    return sorted(p for p in SAMPLES.rglob("*") if p.suffix in (".yaml", ".json"))


def _is_environment(path: Path) -> bool:
    return "environment_templates" in path.parts


def _job_cases() -> list[tuple[Path, dict[str, Any]]]:
    cases = []
    for path in _documents():
        if _is_environment(path) or path.name == "sample-template.yaml":
            continue
        for params in PARAMETER_SETS.get(path.relative_to(SAMPLES).as_posix(), [{}]):
            cases.append((path, params))
    return cases


def _id(path: Path) -> str:
    return path.relative_to(SAMPLES).as_posix()


@pytest.mark.parametrize("path", _documents(), ids=_id)
def test_accepted_or_refused_as_openjd_check_decides(
    path: Path, samples_dir: Path, reference: ReferenceCli, assert_same_issues: Any
) -> None:
    expected = reference.check(path)
    load = load_environment_template if _is_environment(path) else load_template
    try:
        load(path.read_text())
    except TemplateError as exc:
        errors = exc.errors
    else:
        errors = []

    assert (not errors) == expected.succeeded, expected.text
    assert_same_issues(errors, expected.text)


@pytest.mark.parametrize(
    ("path", "params"),
    _job_cases(),
    ids=[f"{_id(p)}-{i}" for i, (p, _) in enumerate(_job_cases())],
)
def test_task_counts_match_openjd_summary(
    path: Path, params: dict[str, Any], samples_dir: Path, reference: ReferenceCli
) -> None:
    summary = reference.summary(path, params)
    assert summary.succeeded, summary.text

    plan = plan_job(path.read_text(), params, template_dir=path.parent)

    expected = {step["name"]: step["total_tasks"] for step in summary.output["steps"]}
    assert {step.name: step.item_count for step in plan.steps} == expected
    assert plan.name == summary.output["name"]
    if path.name == "task-parameter-definition-showcase.yaml" and "IntRange" not in params:
        assert sum(step.task_count for step in plan.steps) == 264


@pytest.mark.parametrize(
    ("path", "params"),
    _job_cases(),
    ids=[f"{_id(p)}-{i}" for i, (p, _) in enumerate(_job_cases())],
)
def test_tasks_by_index_equal_the_library_iterator(
    path: Path, params: dict[str, Any], samples_dir: Path
) -> None:
    plan = plan_job(path.read_text(), params, template_dir=path.parent)

    library_job = _library_job(path, params)
    for step, library_step in zip(plan.steps, library_job.steps, strict=True):
        iterated = Counter(
            frozenset((name, value.value) for name, value in task.items())
            for task in StepParameterSpaceIterator(space=library_step.parameterSpace)
        )
        by_index = Counter(
            frozenset(step.task_parameters(i).items()) for i in range(step.task_count)
        )
        assert by_index == iterated, step.name
        assert step.task_count == sum(iterated.values())


def _library_job(path: Path, params: dict[str, Any]) -> Any:
    kind = DocumentType.JSON if path.suffix == ".json" else DocumentType.YAML
    document = document_string_to_object(document=path.read_text(), document_type=kind)
    template = decode_job_template(template=document, supported_extensions=EXTENSIONS)
    values = preprocess_job_parameters(
        job_template=template,
        job_parameter_values={k: str(v) for k, v in params.items()},
        job_template_dir=path.parent,
        current_working_dir=path.parent,
    )
    return create_job(job_template=template, job_parameter_values=values)
