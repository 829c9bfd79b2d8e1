"""`thresher submit-template` and `thresher submit-bundle` against a real controller."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from tests.cli.conftest import Invoke, RunningController

from thresher.client import Client

TEMPLATE = """
specificationVersion: jobtemplate-2023-09
name: "Render {{Param.Shot}}"
parameterDefinitions:
- {name: Shot, type: STRING}
- {name: Frames, type: STRING, default: "1-3"}
- {name: OutputDir, type: PATH, default: out}
steps:
- name: Render
  parameterSpace:
    taskParameterDefinitions:
    - {name: Frame, type: INT, range: "{{Param.Frames}}"}
  script:
    actions: {onRun: {command: echo, args: ["{{Task.Param.Frame}}", "{{Param.OutputDir}}"]}}
"""
ENVIRONMENT = """
specificationVersion: environment-2023-09
environment:
  name: Licences
  variables: {LICENSE: "27000@licence"}
"""
BROKEN = """
specificationVersion: jobtemplate-2023-09
name: Broken
steps:
- name: A
  script: {actions: {onRun: {}}}
- name: B
  script: {actions: {onRun: {args: [x]}}}
"""


def test_submit_template_with_parameters_and_an_environment(
    cli: Invoke, controller: RunningController, tmp_path: Path
) -> None:
    template = tmp_path / "render.yaml"
    template.write_text(TEMPLATE)
    env = tmp_path / "licences.yaml"
    env.write_text(ENVIRONMENT)

    result = cli(
        "submit-template", str(template), "-p", "Shot=sh010", "-p", "Frames=1-10",
        "--env", str(env), "--priority", "80", "--json",
    )  # fmt: skip

    assert result.exit_code == 0, result.output
    job_id = json.loads(result.output)["id"]
    with Client(controller.url, controller.token) as client:
        job = client.job(job_id)
    assert (job.name, job.kind, job.priority, job.counts.total) == (
        "Render sh010",
        "openjd",
        80,
        10,
    )
    values = job.payload["openjd"]["parameter_values"]
    assert values["Frames"]["value"] == "1-10"
    # A relative PATH default is joined to the template's folder, as `openjd run` does.
    assert values["OutputDir"]["value"] == str(tmp_path / "out")
    assert [e["environment"]["name"] for e in job.payload["openjd"]["env_templates"]] == [
        "Licences"
    ]


def test_an_invalid_template_prints_every_issue_and_exits_2(cli: Invoke, tmp_path: Path) -> None:
    template = tmp_path / "broken.yaml"
    template.write_text(BROKEN)

    result = cli("submit-template", str(template))

    assert result.exit_code == 2
    assert "steps[0] -> script -> actions -> onRun -> command: Field required" in result.output
    assert "steps[1] -> script -> actions -> onRun -> command: Field required" in result.output

    as_json = cli("submit-template", str(template), "--json")
    assert as_json.exit_code == 2
    assert len(json.loads(as_json.output)["errors"]) == 2


def test_a_missing_parameter_is_refused(cli: Invoke, tmp_path: Path) -> None:
    template = tmp_path / "render.yaml"
    template.write_text(TEMPLATE)
    result = cli("submit-template", str(template))
    assert result.exit_code == 2
    assert "Shot" in result.output


def test_check_shows_the_steps_and_submits_nothing(
    cli: Invoke, controller: RunningController, tmp_path: Path
) -> None:
    template = tmp_path / "render.yaml"
    template.write_text(TEMPLATE)
    result = cli("submit-template", str(template), "-p", "Shot=x", "--check")
    assert result.exit_code == 0, result.output
    assert "Render: 3 task(s)" in result.output
    with Client(controller.url, controller.token) as client:
        assert client.jobs() == []


def test_submit_bundle_reads_the_bundle_files(
    cli: Invoke, controller: RunningController, tmp_path: Path
) -> None:
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "template.yaml").write_text(TEMPLATE)
    values = [
        {"name": "Shot", "value": "sh030"},
        {"name": "Frames", "value": "1-4"},
        {"name": "deadline:priority", "value": 65},
        {"name": "deadline:maxRetriesPerTask", "value": 1},
        {"name": "deadline:targetTaskRunStatus", "value": "READY"},
    ]
    (bundle / "parameter_values.json").write_text(json.dumps({"parameterValues": values}))
    assets = {"assetReferences": {"inputs": {"filenames": ["/in/a.exr"], "directories": []}}}
    (bundle / "asset_references.yaml").write_text(yaml.safe_dump(assets))

    result = cli("submit-bundle", str(bundle), "-p", "Frames=1-5", "--json")

    assert result.exit_code == 0, result.output
    with Client(controller.url, controller.token) as client:
        job = client.job(json.loads(result.output)["id"])
    assert (job.name, job.priority, job.counts.total) == ("Render sh030", 65, 5)
    assert job.blocks[0].retries == 1
    assert job.payload["asset_references"] == assets


def test_a_folder_without_a_template_is_not_a_bundle(cli: Invoke, tmp_path: Path) -> None:
    result = cli("submit-bundle", str(tmp_path))
    assert result.exit_code == 2
    assert "not a job bundle" in result.output
