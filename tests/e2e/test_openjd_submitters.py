"""The submitters users already have, unmodified, pointed at Thresher: renderacre's Python client
(`submit_job`) and AWS Deadline Cloud's `deadline bundle submit`. Each runs in a virtualenv of
its own (scripts/renderacre-client.sh, scripts/deadline-client.sh)."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import Farm
from tests.e2e.openjd_support import start_worker, task_texts, wait_final

pytestmark = [pytest.mark.e2e, pytest.mark.openjd]

TEMPLATE = """
specificationVersion: jobtemplate-2023-09
name: FromASubmitter
parameterDefinitions:
- {name: Greeting, type: STRING, default: hello}
steps:
- name: Say
  parameterSpace:
    taskParameterDefinitions:
    - {name: N, type: INT, range: "1-3"}
  script:
    actions:
      onRun: {command: bash, args: ["-c", "echo '{{Param.Greeting}} {{Task.Param.N}}'"]}
"""
BAD_TEMPLATE = """
specificationVersion: jobtemplate-2023-09
name: Broken
steps:
- name: A
  script: {actions: {onRun: {}}}
- name: B
  script: {actions: {onRun: {args: [x]}}}
"""


@pytest.fixture(scope="module")
def submit_farm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Farm]:
    farm = Farm(tmp_path_factory.mktemp("submitters"), None)
    try:
        farm.controller()
        start_worker(farm, "s1")
        yield farm
    finally:
        farm.stop_all()


# -- renderacre ----------------------------------------------------------------------------------


def renderacre(script: str, **values: Any) -> subprocess.CompletedProcess[str]:
    python = os.environ.get("THRESHER_RENDERACRE_PYTHON")
    if not python or not os.access(python, os.X_OK):
        pytest.skip(
            "THRESHER_RENDERACRE_PYTHON is not set: run scripts/renderacre-client.sh DIR and "
            "export THRESHER_RENDERACRE_PYTHON=DIR/bin/python"
        )
    prelude = "import json, sys, renderacre\nv = json.loads(sys.argv[1])\n"
    return subprocess.run(
        [python, "-c", prelude + script, json.dumps(values)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def renderacre_url(farm: Farm) -> str:
    """The token as the URL's password: renderacre's client sends it as a Basic header, so it
    stays out of the request line (and the access logs)."""
    scheme, rest = farm.url.split("://", 1)
    return f"{scheme}://thresher:{farm.token}@{rest}/renderacre"


def test_renderacre_submits_an_openjd_job_that_runs_to_completion(submit_farm: Farm) -> None:
    url = renderacre_url(submit_farm)
    done = renderacre(
        "job = renderacre.openjd_job(v['name'], v['template'], json.dumps(v['params']))\n"
        "print(renderacre.submit_job(v['url'], job))",
        url=url,
        name="via renderacre",
        template=TEMPLATE,
        params={"Greeting": "howdy"},
    )
    assert done.returncode == 0, done.stderr
    job_id = int(json.loads(done.stdout)["id"])

    [job] = wait_final(submit_farm, [job_id], timeout=60).values()
    assert (job.name, job.kind, job.status) == ("via renderacre", "openjd", "succeeded")
    for index in range(3):
        assert f"howdy {index + 1}" in task_texts(submit_farm, job_id, 0, index)


def test_renderacre_submits_a_command_job_that_runs_to_completion(submit_farm: Farm) -> None:
    url = renderacre_url(submit_farm)
    done = renderacre(
        "print(renderacre.submit_job(v['url'], renderacre.command_job('cmd', 'echo', v['args'])))",
        url=url,
        args=["plain", "{braces}", "$HOME"],
    )
    assert done.returncode == 0, done.stderr
    job_id = int(json.loads(done.stdout)["id"])

    [job] = wait_final(submit_farm, [job_id], timeout=60).values()
    assert (job.kind, job.status) == ("command", "succeeded")
    assert task_texts(submit_farm, job_id, 0, 0) == ["plain {braces} $HOME"]  # no shell


def test_renderacre_bad_template_and_bad_token_are_clear_errors(submit_farm: Farm) -> None:
    url = f"{submit_farm.url}/renderacre/{submit_farm.token}"
    done = renderacre(
        "print(renderacre.submit_job(v['url'], renderacre.openjd_job('bad', v['template'])))",
        url=url,
        template=BAD_TEMPLATE,
    )
    assert done.returncode != 0
    assert "422" in done.stderr  # the client says only the status; the body says the rest

    body = json.loads(
        subprocess.run(
            [
                os.environ["THRESHER_RENDERACRE_PYTHON"],
                "-c",
                "import renderacre, sys; print(renderacre.openjd_job('bad', sys.argv[1]))",
                BAD_TEMPLATE,
            ],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout
    )
    answer = httpx.post(f"{url}/v1/jobs", json=body, timeout=30)
    assert answer.status_code == 422
    error = answer.json()
    assert error["error"] == "invalid_template"
    assert len(error["errors"]) == 2
    assert all(issue["location"] and issue["message"] for issue in error["errors"])
    assert error["message"].startswith("2 template errors")

    refused = httpx.post(f"{submit_farm.url}/renderacre/nope/v1/jobs", json=body, timeout=30)
    assert refused.status_code == 401
    assert "token" in refused.json()["message"]


# -- AWS Deadline Cloud's `deadline` CLI ---------------------------------------------------------

FARM_ID = "farm-" + "0123456789abcdef" * 2
QUEUE_ID = "queue-" + "fedcba9876543210" * 2


def deadline(
    farm: Farm, home: Path, key: dict[str, str], *args: str
) -> subprocess.CompletedProcess[str]:
    cli = os.environ.get("THRESHER_DEADLINE_CLI")
    if not cli or not os.access(cli, os.X_OK):
        pytest.skip(
            "THRESHER_DEADLINE_CLI is not set: run scripts/deadline-client.sh DIR and export "
            "THRESHER_DEADLINE_CLI=DIR/bin/deadline"
        )
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(home),  # its configuration file lives here
        "AWS_ENDPOINT_URL_DEADLINE": f"{farm.url}/deadline",
        "AWS_DISABLE_HOST_PREFIX_INJECTION": "true",
        "AWS_ACCESS_KEY_ID": key["access_key_id"],
        "AWS_SECRET_ACCESS_KEY": key["secret_access_key"],
        "AWS_DEFAULT_REGION": "us-west-2",
        "DEADLINE_CLOUD_TELEMETRY_OPT_OUT": "true",
    }
    return subprocess.run(
        [cli, *args, "--farm-id", FARM_ID, "--queue-id", QUEUE_ID],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def bundle(folder: Path, template: str, values: dict[str, Any]) -> Path:
    folder.mkdir()
    (folder / "template.yaml").write_text(template)
    entries = [{"name": k, "value": v} for k, v in values.items()]
    (folder / "parameter_values.json").write_text(json.dumps({"parameterValues": entries}))
    return folder


def test_deadline_bundle_submit_runs_on_the_farm_and_job_get_follows_it(
    submit_farm: Farm, tmp_path: Path
) -> None:
    with submit_farm.client() as client:
        key = client.create_access_key("deadline-user")
    folder = bundle(tmp_path / "bundle", TEMPLATE, {"Greeting": "bonjour"})

    done = deadline(submit_farm, tmp_path, key, "bundle", "submit", str(folder), "--yes")
    assert done.returncode == 0, done.stderr
    job_ref = done.stdout.split()[-1]
    assert job_ref.startswith("job-")
    job_id = int(job_ref[4:], 16)

    [job] = wait_final(submit_farm, [job_id], timeout=60).values()
    assert (job.owner, job.kind, job.status) == ("deadline-user", "openjd", "succeeded")
    assert "bonjour 3" in task_texts(submit_farm, job_id, 0, 2)
    followed = deadline(submit_farm, tmp_path, key, "job", "get", "--job-id", job_ref)
    assert followed.returncode == 0, followed.stderr
    assert "taskRunStatus: SUCCEEDED" in followed.stdout
    assert "SUCCEEDED: 3" in followed.stdout


def test_deadline_bad_template_and_bad_signature_are_clear_errors(
    submit_farm: Farm, tmp_path: Path
) -> None:
    with submit_farm.client() as client:
        key = client.create_access_key("deadline-user")
    folder = bundle(tmp_path / "bad", BAD_TEMPLATE, {})

    refused = deadline(submit_farm, tmp_path, key, "bundle", "submit", str(folder), "--yes")
    assert refused.returncode != 0
    assert "ValidationException" in refused.stdout + refused.stderr
    assert "2 template errors" in refused.stdout + refused.stderr

    with submit_farm.client() as client:
        before = len(client.jobs())
    forged = dict(key, secret_access_key=key["secret_access_key"][::-1])
    good = bundle(tmp_path / "good", TEMPLATE, {})
    denied = deadline(submit_farm, tmp_path, forged, "bundle", "submit", str(good), "--yes")
    assert denied.returncode != 0
    assert "InvalidSignatureException" in denied.stdout + denied.stderr
    unknown = dict(key, access_key_id="THRNOSUCHKEY")
    denied = deadline(submit_farm, tmp_path, unknown, "bundle", "submit", str(good), "--yes")
    assert "UnrecognizedClientException" in denied.stdout + denied.stderr
    with submit_farm.client() as client:
        assert len(client.jobs()) == before  # nothing was created
