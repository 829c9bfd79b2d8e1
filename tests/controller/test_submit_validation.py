"""What compiling a submission refuses up front (422 naming the field) instead of charging failed
attempts to hosts, through a served controller on SQLite and PostgreSQL: a relative `cwd`, empty
frame sets, too many blocks, an output an engine cannot write, placeholders an engine cannot
expand."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from thresher.client import Client, InvalidRequest
from thresher.controller.compile import SubmitPolicy, compile_job
from thresher.core.errors import InvalidInput
from thresher.schemas import api
from thresher.testing import ServedController

JOB: dict[str, Any] = {"name": "j", "command": ["echo", "{frame}"], "frames": "1-2"}


@pytest.fixture
def http(served: ServedController) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {served.admin_token}"}
    with httpx.Client(base_url=served.url, headers=headers, timeout=30) as client:
        yield client


def field_of(response: httpx.Response) -> str:
    assert response.status_code == 422, response.text
    field: str = response.json()["field"]
    return field


# -- cwd -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("cwd", ["render", "./shot", "../up", "~/render", "C:render", "."])
def test_a_relative_cwd_is_refused(http: httpx.Client, cwd: str) -> None:
    response = http.post("/api/v1/jobs", json={**JOB, "cwd": cwd})
    assert field_of(response) == "cwd"
    assert "absolute" in response.json()["message"]


@pytest.mark.parametrize("cwd", ["/render/shot", "C:\\render", "\\\\server\\share\\shot"])
def test_an_absolute_cwd_of_either_os_is_kept(http: httpx.Client, cwd: str) -> None:
    made = http.post("/api/v1/jobs", json={**JOB, "cwd": cwd})
    assert made.status_code == 201, made.text
    assert made.json()["cwd"] == cwd


def test_an_engine_job_with_a_relative_cwd_is_refused(admin: Client) -> None:
    with pytest.raises(InvalidRequest) as info:
        admin.submit_engine("povray", input="/s.pov", range="1", cwd="scenes")
    assert info.value.field == "cwd"


# -- frames --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"frames": ""}, "frames"),
        ({"frames": "  "}, "frames"),
        ({"priority_frames": ""}, "priority_frames"),
        ({"frames": None, "blocks": [{"command": ["true"], "frames": ""}]}, "blocks[0].frames"),
    ],
)
def test_an_empty_frame_set_is_refused_never_frame_1(
    http: httpx.Client, fields: dict[str, Any], field: str
) -> None:
    body = {k: v for k, v in {**JOB, **fields}.items() if v is not None}
    assert field_of(http.post("/api/v1/jobs", json=body)) == field
    assert http.get("/api/v1/jobs").json()["jobs"] == []


def test_an_engine_job_with_empty_frames_is_refused(http: httpx.Client) -> None:
    job = {"name": "e", "engine": "povray", "input": "/s.pov", "frames": ""}
    assert field_of(http.post("/api/v1/jobs", json=job)) == "range"


# -- blocks per job ------------------------------------------------------------------------------


def test_more_blocks_than_the_farm_allows_are_refused(http: httpx.Client) -> None:
    allowed = SubmitPolicy().max_blocks_per_job
    blocks = [{"name": f"b{i}", "command": ["true"]} for i in range(allowed + 1)]
    response = http.post("/api/v1/jobs", json={"name": "many", "blocks": blocks})
    assert field_of(response) == "blocks"
    assert "max_blocks_per_job" in response.json()["message"]


def test_the_block_limit_is_the_farms_setting() -> None:
    job = api.JobIn(
        name="j", blocks=[api.BlockIn(name=f"b{i}", command=["true"]) for i in range(3)]
    )
    with pytest.raises(InvalidInput) as info:
        compile_job(job, owner="u", lookup=_NO_FARM, policy=SubmitPolicy(max_blocks_per_job=2))
    assert info.value.field == "blocks"
    spec = compile_job(job, owner="u", lookup=_NO_FARM, policy=SubmitPolicy(max_blocks_per_job=3))
    assert len(spec.blocks) == 3


class _EmptyFarm:
    """A farm with no jobs, limits or engines: what compiling a plain command job looks up."""

    def engine(self, name: str) -> Any:
        raise InvalidInput(f"unknown engine {name!r}", field="engine")

    def missing_jobs(self, ids: Any) -> list[int]:
        return list(ids)

    def missing_limits(self, names: Any) -> list[str]:
        return list(names)

    def jobs_matching(self, pattern: str, *, owner: str | None) -> list[int]:
        return []


_NO_FARM = _EmptyFarm()


# -- engines: outputs and placeholders -----------------------------------------------------------

# The built-in POV-Ray and command engines, saying what compiling checks for them.
POVRAY_NUMBERS_ITS_FILES = """
from thresher.engines.builtin.povray import Engine as PovRay


class Engine(PovRay):
    SETTINGS = {"output_kinds": ["file", "folder"]}
"""
COMMAND_WITH_TEMPLATES = """
from thresher.engines.builtin.command import Engine as Command


class Engine(Command):
    SETTINGS = {"templated_parameters": ["command", "arguments"]}
"""


def test_an_output_pattern_the_engine_cannot_write_is_refused(admin: Client) -> None:
    admin.publish_engine("povray", POVRAY_NUMBERS_ITS_FILES)

    with pytest.raises(InvalidRequest) as info:
        admin.submit_engine("povray", input="/s.pov", range="1-4", output="/r/orbit_####.png")
    assert info.value.field == "output"
    assert "pattern" in str(info.value)
    for output in ("/r/orbit.png", "/r/frames/"):
        assert admin.submit_engine("povray", input="/s.pov", range="1", output=output).id


@pytest.mark.parametrize(
    ("parameters", "field"),
    [
        ({"command": ["echo", "{fram}"]}, "parameters.command"),
        ({"command": "echo {start:q}"}, "parameters.command"),
        ({"command": ["echo", "{0}"]}, "parameters.command"),
        ({"command": ["echo"], "arguments": ["{nope}"]}, "parameters.arguments"),
    ],
)
def test_placeholders_the_engine_cannot_expand_are_refused(
    admin: Client, parameters: dict[str, Any], field: str
) -> None:
    admin.publish_engine("command", COMMAND_WITH_TEMPLATES)

    with pytest.raises(InvalidRequest) as info:
        admin.submit_engine("command", range="1-4", parameters=parameters)
    assert info.value.field == field
    assert admin.jobs() == []


def test_placeholders_the_engine_knows_are_kept(admin: Client) -> None:
    admin.publish_engine("command", COMMAND_WITH_TEMPLATES)
    command = ["render", "{frame:04d}", "{start}-{end}", "{input}", "{output}", "{workdir}"]

    job = admin.submit_engine(
        "command", input="/in.txt", output="/out/", range="1-4", parameters={"command": command}
    )

    assert job.payload["parameters"]["command"] == command
