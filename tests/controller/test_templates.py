"""OpenJD templates through the API and the Python client, on SQLite and PostgreSQL: a step is
a block of lazy tasks, step dependencies are block dependencies, host requirements are block
filters, the plan is stored for workers, and a refused template lists every issue."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from thresher.client import Client, Forbidden, InvalidRequest, Unauthorized
from thresher.openjd import JobPlan
from thresher.testing import ServedController

SAMPLES = (Path(__file__).resolve().parents[2] / ".." / "shared" / "openjd-samples").resolve()
JOBS = SAMPLES / "v2023-09" / "job_templates"

PIPELINE = """
specificationVersion: jobtemplate-2023-09
extensions: [TASK_CHUNKING]
name: "Pipeline {{Param.Shot}}"
parameterDefinitions:
- {name: Shot, type: STRING, default: sh010}
- {name: Frames, type: STRING, default: "1-1000000"}
steps:
- name: Render
  parameterSpace:
    taskParameterDefinitions:
    - {name: Frame, type: INT, range: "{{Param.Frames}}"}
  hostRequirements:
    amounts:
    - {name: amount.worker.vcpu, min: 4}
    attributes:
    - {name: attr.worker.os.family, anyOf: [linux]}
  script:
    actions: {onRun: {command: echo, args: ["{{Task.Param.Frame}}"]}}
- name: Chunked
  parameterSpace:
    taskParameterDefinitions:
    - name: Frame
      type: CHUNK[INT]
      range: "1-95"
      chunks: {defaultTaskCount: 10, rangeConstraint: CONTIGUOUS}
  script:
    actions: {onRun: {command: echo, args: ["{{Task.Param.Frame}}"]}}
- name: Encode
  dependencies: [{dependsOn: Render}, {dependsOn: Chunked}]
  script:
    actions: {onRun: {command: echo, args: [done]}}
"""

BROKEN = """
specificationVersion: jobtemplate-2023-09
name: Broken
steps:
- name: A
  script: {actions: {onRun: {}}}
- name: B
  dependencies: [{dependsOn: A}]
  script: {actions: {onRun: {args: [x]}}}
"""


def test_each_step_becomes_a_block_of_lazy_tasks(admin: Client, served: ServedController) -> None:
    job = admin.submit_template(PIPELINE, {"Shot": "sh020"}, priority=70, retries=1)

    assert (job.name, job.kind, job.priority, job.status) == (
        "Pipeline sh020",
        "openjd",
        70,
        "queued",
    )
    render, chunked, encode = job.blocks
    assert [b.name for b in job.blocks] == ["Render", "Chunked", "Encode"]
    assert (render.frames, render.chunk, render.counts.total) == ("0-999999", 1, 1_000_000)
    assert render.host_filters == "cores:>3,os:linux"
    assert (chunked.frames, chunked.counts.total) == ("0-9", 10)  # defaultTaskCount 10 of 95
    assert (encode.frames, encode.counts.total) == ("0", 1)
    assert encode.host_filters == ""
    assert {b.retries for b in job.blocks} == {1}
    assert served.store.jobs.get(job.id).blocks[2].spec.after == (0, 1)  # block deps by index
    assert admin.tasks(job.id, block=0, offset=999_998, limit=5).total == 1_000_000
    # Workers rebuild the plan from the payload; block i's task k is step i's task k.
    plan = JobPlan.from_json(job.payload["openjd"])
    assert job.payload["steps"][1] == {"step": "Chunked", "chunk_size": 10}
    step = plan.step_from_json(job.payload["steps"][1])
    assert step.task_parameters(9) == {"Frame": "87-95"}  # split evenly, as the library does
    assert plan.step("Render").task_parameters(41) == {"Frame": "42"}


def test_the_showcase_makes_264_tasks(admin: Client) -> None:
    template = JOBS / "task-parameter-definition-showcase.yaml"
    if not template.is_file():
        pytest.skip(f"the OpenJD samples are not in {SAMPLES}")
    job = admin.submit_template(template.read_text(), {"PathValue": "/mnt/value"})
    assert job.counts.total == 264
    assert len(job.blocks) == 12


def test_a_refused_template_lists_every_issue_with_its_location(
    admin: Client, served: ServedController
) -> None:
    with pytest.raises(InvalidRequest) as refused:
        admin.submit_template(BROKEN)
    error = refused.value
    assert error.status == 422
    assert error.code == "invalid_template"
    assert error.errors == [
        {
            "location": "steps[0] -> script -> actions -> onRun -> command",
            "message": "Field required",
        },
        {
            "location": "steps[1] -> script -> actions -> onRun -> command",
            "message": "Field required",
        },
    ]
    assert error.message.startswith("2 template errors")
    assert admin.jobs() == []  # nothing was created


def test_bad_parameter_values_are_located(admin: Client) -> None:
    with pytest.raises(InvalidRequest) as refused:
        admin.submit_template(PIPELINE, {"Frames": "10-1", "Nope": 3})
    assert refused.value.errors
    assert all(e["location"] == "parameters" for e in refused.value.errors)
    assert any("Nope" in e["message"] for e in refused.value.errors)


def test_check_says_what_would_be_made_and_makes_nothing(admin: Client) -> None:
    summary = admin.check_template(PIPELINE)
    assert summary.name == "Pipeline sh010"
    assert [(s.name, s.tasks, s.items, s.dependencies) for s in summary.steps] == [
        ("Render", 1_000_000, 1_000_000, []),
        ("Chunked", 10, 95, []),
        ("Encode", 1, 1, ["Render", "Chunked"]),
    ]
    assert admin.jobs() == []


def test_yaml_json_and_objects_are_accepted_with_environment_templates(admin: Client) -> None:
    env = {
        "specificationVersion": "environment-2023-09",
        "environment": {"name": "Env", "variables": {"A": "1"}},
    }
    as_object = {
        "specificationVersion": "jobtemplate-2023-09",
        "name": "Obj",
        "steps": [{"name": "S", "script": {"actions": {"onRun": {"command": "true"}}}}],
    }
    job = admin.submit_template(as_object, env_templates=[env])
    assert JobPlan.from_json(job.payload["openjd"]).env_templates == (env,)
    with pytest.raises(InvalidRequest) as refused:
        admin.submit_template(as_object, env_templates=[{"specificationVersion": "nope"}])
    assert refused.value.errors[0]["location"].startswith("environments[0]")


def test_job_filters_and_dependencies_are_checked(admin: Client) -> None:
    with pytest.raises(InvalidRequest) as refused:
        admin.submit_template(PIPELINE, filters="ram:lots")
    assert refused.value.field == "filters"
    with pytest.raises(InvalidRequest) as missing:
        admin.submit_template(PIPELINE, after=[12345])
    assert missing.value.field == "after"


def test_submitting_needs_a_user_token(served: ServedController, admin: Client) -> None:
    with Client(served.url, None) as anonymous, pytest.raises(Unauthorized):
        anonymous.submit_template(PIPELINE)
    enrol = admin.create_token("enroller", role="enrol").token
    with Client(served.url, enrol) as worker_enroller, pytest.raises(Forbidden):
        worker_enroller.submit_template(PIPELINE)


def test_the_raw_answer_is_json_with_every_error(served: ServedController) -> None:
    answer = httpx.post(
        f"{served.url}/api/v1/templates/jobs",
        json={"template": BROKEN},
        headers={"Authorization": f"Bearer {served.admin_token}"},
    )
    assert answer.status_code == 422
    body = answer.json()
    assert body["error"] == "invalid_template"
    assert body["field"] == "template"
    assert len(body["errors"]) == 2
