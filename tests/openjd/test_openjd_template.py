"""Templates to plans: errors with locations, parameter values, lazy tasks, chunking, host
requirements, and the stored form a controller keeps for its workers."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from thresher.core.errors import InvalidInput
from thresher.openjd import (
    JobPlan,
    PlanCache,
    TemplateError,
    TemplateIssue,
    adapt_chunk_size,
    host_filters,
    load_template,
    plan_job,
)

if TYPE_CHECKING:
    from tests.openjd.conftest import ReferenceCli

pytestmark = pytest.mark.openjd

BROKEN = """
specificationVersion: jobtemplate-2023-09
name: ""
parameterDefinitions:
- {name: Count, type: INT, default: many}
steps:
- name: Render
  parameterSpace:
    taskParameterDefinitions:
    - {name: Frame, type: INT, range: "1-x"}
  script:
    actions:
      onRun: {command: ""}
- name: Encode
  script:
    actions: {}
"""


def test_an_invalid_template_reports_every_error_with_its_location() -> None:
    with pytest.raises(TemplateError) as refused:
        load_template(BROKEN)

    assert refused.value.errors == [
        TemplateIssue("name", "String must be at least 1 characters long"),
        TemplateIssue(
            "steps[0] -> script -> actions -> onRun -> command",
            "String must be at least 1 characters long",
        ),
        TemplateIssue(
            "steps[0] -> parameterSpace -> taskParameterDefinitions[0] -> INT -> range",
            "Unexpected 'x' in '1-x' after '1-'",
        ),
        TemplateIssue("steps[1] -> script -> actions -> onRun", "Field required"),
        TemplateIssue(
            "parameterDefinitions[0] -> INT -> default",
            "Input should be a valid integer, unable to parse string as an integer",
        ),
    ]
    assert isinstance(refused.value, InvalidInput)  # the API answers 422
    assert "5 template errors" in str(refused.value)


def test_the_errors_are_those_openjd_check_prints(
    reference: ReferenceCli, tmp_path: Path, assert_same_issues: Any
) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(BROKEN)
    with pytest.raises(TemplateError) as refused:
        load_template(BROKEN)

    checked = reference.check(path)
    assert not checked.succeeded
    assert "validation errors for JobTemplate" in checked.text
    assert_same_issues(refused.value.errors, checked.text)


def test_environment_template_errors_say_which_environment() -> None:
    job = {
        "specificationVersion": "jobtemplate-2023-09",
        "name": "J",
        "steps": [{"name": "S", "script": {"actions": {"onRun": {"command": "echo"}}}}],
    }
    fine = {
        "specificationVersion": "environment-2023-09",
        "environment": {"name": "Fine", "variables": {"A": "1"}},
    }
    broken = {"specificationVersion": "environment-2023-09", "environment": {"name": "Broken"}}

    with pytest.raises(TemplateError) as refused:
        load_template(job, env_templates=[fine, broken, "not: [valid"])

    locations = [issue.location for issue in refused.value.errors]
    assert locations[0].startswith("environments[1] -> environment")
    assert locations[-1] == "environments[2]"


def test_a_document_that_is_not_a_mapping_is_refused() -> None:
    with pytest.raises(TemplateError) as refused:
        load_template("- just\n- a list\n")
    assert refused.value.errors[0].location == ""


PARAMETERS = """
specificationVersion: jobtemplate-2023-09
name: "Render {{Param.Shot}}"
parameterDefinitions:
- {name: Shot, type: STRING, allowedValues: [sh010, sh020]}
- {name: Frames, type: STRING, default: "1-5"}
- {name: Scale, type: FLOAT, default: 0.5}
- {name: Scene, type: PATH}
- {name: Output, type: PATH, default: renders/out}
steps:
- name: Render
  parameterSpace:
    taskParameterDefinitions:
    - {name: Frame, type: INT, range: "{{Param.Frames}}"}
  script:
    actions:
      onRun: {command: echo, args: ["{{Param.Scene}}", "{{Task.Param.Frame}}"]}
"""


def test_parameter_values_merge_with_defaults_and_paths_stay_as_submitted() -> None:
    plan = plan_job(PARAMETERS, {"Shot": "sh020", "Frames": "1-100:2", "Scene": "./shots//a.blend"})

    assert plan.name == "Render sh020"
    assert plan.parameter_values == {
        "Shot": {"type": "STRING", "value": "sh020"},
        "Frames": {"type": "STRING", "value": "1-100:2"},
        "Scale": {"type": "FLOAT", "value": "0.5"},
        "Scene": {"type": "PATH", "value": "./shots//a.blend"},
        "Output": {"type": "PATH", "value": "renders/out"},
    }


def test_path_defaults_join_the_template_folder_when_one_is_given() -> None:
    plan = plan_job(
        PARAMETERS, {"Shot": "sh010", "Scene": "s3://bucket/a.blend"}, template_dir="/jobs/x/"
    )

    assert plan.parameter_values["Output"]["value"] == "/jobs/x/renders/out"
    assert plan.parameter_values["Scene"]["value"] == "s3://bucket/a.blend"


def test_bad_parameter_values_report_every_problem() -> None:
    with pytest.raises(TemplateError) as refused:
        plan_job(PARAMETERS, {"Shot": "sh999", "Extra": "1", "Scale": 2})

    messages = [issue.message for issue in refused.value.errors]
    assert {issue.location for issue in refused.value.errors} == {"parameters"}
    assert any("not defined in the template: Extra" in m for m in messages)
    assert any("sh999" in m for m in messages)
    assert any("required job parameters: Scene" in m for m in messages)


def test_values_that_break_the_job_are_reported_at_their_location() -> None:
    with pytest.raises(TemplateError) as refused:
        plan_job(PARAMETERS, {"Shot": "sh010", "Scene": "/a", "Frames": "1-x"})
    assert refused.value.errors[0].location.startswith("steps[0] -> parameterSpace")


def test_tasks_are_computed_from_their_index_without_a_list() -> None:
    started = time.perf_counter()
    plan = plan_job(PARAMETERS, {"Shot": "sh010", "Scene": "/a", "Frames": "1-1000000"})
    step = plan.step("Render")

    assert step.task_count == step.item_count == 1_000_000
    assert step.task_parameters(0) == {"Frame": "1"}
    assert step.task_parameters(999_999) == {"Frame": "1000000"}
    assert time.perf_counter() - started < 2
    with pytest.raises(IndexError):
        step.task_parameters(1_000_000)
    with pytest.raises(IndexError):
        step.task_parameters(-1)
    with pytest.raises(KeyError):
        plan.step("Encode")


CHUNKED = """
specificationVersion: jobtemplate-2023-09
extensions: [TASK_CHUNKING]
name: Chunks
parameterDefinitions:
- {name: Target, type: INT, default: 0}
steps:
- name: Render
  parameterSpace:
    taskParameterDefinitions:
    - name: Frame
      type: CHUNK[INT]
      range: "1-10"
      chunks:
        defaultTaskCount: 3
        targetRuntimeSeconds: "{{Param.Target}}"
        rangeConstraint: CONTIGUOUS
    - {name: Layer, type: STRING, range: [bg, fg]}
  script:
    actions:
      onRun: {command: echo, args: ["{{Task.Param.Frame}}"]}
- name: Encode
  dependencies: [{dependsOn: Render}]
  script:
    actions:
      onRun: {command: echo}
"""


def test_chunked_steps_honour_default_task_count() -> None:
    plan = plan_job(CHUNKED)
    step = plan.step("Render")

    assert (step.chunk_parameter, step.chunk_size, step.default_chunk_size) == ("Frame", 3, 3)
    assert step.target_runtime_s == 0
    assert not step.adaptive
    assert step.item_count == 20
    assert step.task_count == 8
    frames = [step.task_parameters(i)["Frame"] for i in range(step.task_count)]
    assert sorted(set(frames)) == ["1-3", "4-5", "6-8", "9-10"]
    assert plan.step("Encode").dependencies == ("Render",)


def test_a_target_runtime_makes_a_step_adaptive_and_it_keeps_random_access() -> None:
    step = plan_job(CHUNKED, {"Target": 60}).step("Render")
    assert step.adaptive
    assert step.target_runtime_s == 60
    assert step.task_count == 8

    bigger = step.with_chunk_size(5)
    assert bigger.task_count == 4
    assert {bigger.task_parameters(i)["Frame"] for i in range(4)} == {"1-5", "6-10"}
    assert bigger.to_json() == {"step": "Render", "chunk_size": 5}
    with pytest.raises(ValueError, match="CHUNK"):
        plan_job(CHUNKED).step("Encode").with_chunk_size(2)


def test_the_stored_form_is_json_and_rebuilds_the_same_plan() -> None:
    plan = plan_job(PARAMETERS, {"Shot": "sh010", "Scene": "/shots/a.blend"})
    stored = json.loads(json.dumps(plan.to_json()))

    rebuilt = JobPlan.from_json(stored)

    assert rebuilt == plan
    assert rebuilt.step("Render").task_parameters(4) == {"Frame": "5"}
    assert {k: v.to_json_str() for k, v in rebuilt.symbol_tables.items()} == {
        k: v.to_json_str() for k, v in plan.symbol_tables.items()
    }
    chunked = plan_job(CHUNKED)
    block = chunked.step("Render").with_chunk_size(4).to_json()
    assert JobPlan.from_json(chunked.to_json()).step_from_json(block).task_count == 6
    with pytest.raises(ValueError, match="format"):
        JobPlan.from_json({"format": "something else"})


def test_the_plan_cache_rebuilds_once_and_forgets_the_oldest() -> None:
    cache = PlanCache(max_entries=1)
    first = plan_job(CHUNKED).to_json()
    second = plan_job(CHUNKED, {"Target": 30}).to_json()

    assert cache.get(first) is cache.get(json.loads(json.dumps(first)))
    kept = cache.get(first)
    cache.get(second)
    assert cache.get(first) is not kept
    assert cache.get(first, key="job-1") is cache.get({}, key="job-1")


def test_templates_come_as_yaml_json_or_mappings() -> None:
    document = {
        "specificationVersion": "jobtemplate-2023-09",
        "name": "J",
        "steps": [{"name": "S", "script": {"actions": {"onRun": {"command": "echo"}}}}],
    }
    for source in (document, json.dumps(document), json.dumps(document).encode()):
        assert load_template(source).document == document


def test_host_requirements_become_filters() -> None:
    requirements = {
        "amounts": [
            {"name": "amount.worker.vcpu", "min": 4, "max": 16},
            {"name": "amount.worker.memory", "min": 8192},
            {"name": "amount.worker.gpu", "min": 0.5, "max": 2.5},
            {"name": "amount.worker.disk.scratch", "min": 100},
            {"name": "amount.custom.licence", "min": 1},
        ],
        "attributes": [
            {"name": "attr.worker.os.family", "anyOf": ["Linux", "macos"]},
            {"name": "attr.worker.cpu.arch", "allOf": ["x86_64"]},
            {"name": "attr.custom.host_config", "anyOf": ["A", "C"]},
        ],
    }

    converted = host_filters(requirements)

    assert converted.filters == (
        "cores:>3",
        "cores:<17",
        "ram:>8191MB",
        "gpu:>0",
        "gpu:<3",
        "os:linux+macos",
        "label:worker.cpu.arch=x86_64",
        "label:custom.host_config=A+custom.host_config=C",
    )
    assert converted.unmapped == ("amount.worker.disk.scratch", "amount.custom.licence")
    assert host_filters(None).filters == ()


def test_a_step_keeps_its_raw_requirements_and_filters(samples_dir: Path) -> None:
    path = samples_dir / "v2023-09" / "job_templates" / "host-requirements.yaml"
    step = plan_job(path.read_text()).step("StepOne")

    assert step.host_filters == (
        "cores:>0",
        "cores:<2",
        "ram:>255MB",
        "ram:<1025MB",
        "os:linux+macos",
        "label:custom.host_config=HostConfigA+custom.host_config=HostConfigC",
    )
    assert step.host_requirements is not None
    assert step.host_requirements["amounts"][0] == {
        "name": "amount.worker.vcpu",
        "min": 1,
        "max": 1,
    }
    assert json.loads(json.dumps(step.host_requirements)) == step.host_requirements


@pytest.mark.parametrize(
    ("current", "runtimes", "target", "options", "expected"),
    [
        (10, [], 60, {}, 10),  # nothing measured yet
        (10, [30.0] * 3, 0, {}, 10),  # a target of 0 means no adapting
        (10, [120.0] * 2, 60, {}, 5),  # too slow: shrink at once
        (10, [6.0] * 2, 60, {}, 100),  # 10 items measured: no damping
        (2, [1.0], 60, {}, 31),  # 2 items measured: a quarter of the way to 120
        (10, [6.0] * 2, 60, {"max_size": 40}, 40),
        (10, [600.0] * 2, 60, {"min_size": 2}, 2),
        (10, [6.0, 1.0], 60, {"items_per_chunk": [10, 2]}, 102),
        (10, [0.0], 60, {}, 10),  # unmeasurably fast: keep the size
    ],
)
def test_adapt_chunk_size(
    current: int, runtimes: list[float], target: float, options: dict[str, Any], expected: int
) -> None:
    assert adapt_chunk_size(current, runtimes, target, **options) == expected


def test_adapt_chunk_size_wants_one_count_per_runtime() -> None:
    with pytest.raises(ValueError, match="one count"):
        adapt_chunk_size(5, [1.0, 2.0], 60, items_per_chunk=[5])


def test_no_machine_paths_in_the_stored_plan(tmp_path: Path) -> None:
    plan = plan_job(PARAMETERS, {"Shot": "sh010", "Scene": "/a"})
    assert os.fspath(tmp_path) not in json.dumps(plan.to_json())


def test_the_package_exports_every_public_name_of_its_modules() -> None:
    import importlib

    import thresher.openjd as package

    modules = ["chunking", "errors", "host_requirements", "runner", "steps", "template"]
    public = {
        name
        for module in modules
        for name in importlib.import_module(f"thresher.openjd.{module}").__all__
    }
    assert public == set(package.__all__)
