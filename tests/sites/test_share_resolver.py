"""The worker's share resolver on assignments of every kind: an OpenJD job's PATH parameter
values (in its stored plan) and an engine job's fields become the site's paths; the volumes come
from the controller's answer (given here as the answer itself)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from thresher.controller.compile.openjd import plan_template
from thresher.core.volumes import VolumeError
from thresher.schemas import api
from thresher.schemas import openjd as schema
from thresher.worker.volumes import ShareResolver, local_root, needs_shares, volumes_of


class Volumes:
    def __init__(self, roots: dict[str, dict[str, str]]) -> None:
        self.listed = api.VolumeList(
            volumes=[api.VolumeOut(name="proj", description="", roots=roots)]
        )

    async def volumes(self) -> api.VolumeList:
        return self.listed


def _assignment(kind: str, payload: dict[str, Any]) -> api.AssignmentOut:
    return api.AssignmentOut(
        attempt_id=1,
        token="t",
        job_id=1,
        block=0,
        index=0,
        frames=[1],
        kind=kind,
        payload=payload,
        env={"SCENE": "share=proj/a.pov"},
        cwd=None,
        max_runtime_s=None,
    )


def test_an_openjd_path_parameter_resolves_in_the_stored_plan(tmp_path: Path) -> None:
    template = {
        "specificationVersion": "jobtemplate-2023-09",
        "name": "t",
        "parameterDefinitions": [{"name": "Scene", "type": "PATH"}],
        "steps": [
            {
                "name": "s",
                "script": {"actions": {"onRun": {"command": "cat", "args": ["{{Param.Scene}}"]}}},
            }
        ],
    }
    plan = plan_template(
        schema.TemplateJobIn(template=template, parameters={"Scene": "share=proj/shots/a.txt"})
    )
    a = _assignment("openjd", {"openjd": plan.to_json()})
    resolver = ShareResolver(
        Volumes({"sthlm": {"linux": str(tmp_path)}}), site="sthlm", os_name="linux"
    )

    resolved = asyncio.run(resolver.resolve(a))

    values = resolved.payload["openjd"]["parameter_values"]
    assert needs_shares(a)
    assert values["Scene"]["value"] == f"{tmp_path}/shots/a.txt"
    assert resolved.env["SCENE"] == f"{tmp_path}/a.pov"
    assert "share=" not in resolved.model_dump_json()


def test_a_volume_without_a_root_here_and_local_root(tmp_path: Path) -> None:
    source = Volumes({"hq": {"*": str(tmp_path)}})
    resolver = ShareResolver(source, site="sthlm", os_name="linux")
    with pytest.raises(VolumeError, match="no root at site 'sthlm'"):
        asyncio.run(resolver.resolve(_assignment("engine", {"input": "share=proj/a.pov"})))
    volumes = volumes_of(source.listed)
    assert local_root(volumes, "proj", site="hq", os_name="windows") == str(tmp_path)
