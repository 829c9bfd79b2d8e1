"""GIVEN a controller (and a worker registered through the agent API) WHEN the scheduling
commands run (submit options, limits, users, pools, error hosts, worker lanes and NIMBY)
THEN they change and show what the controller holds."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from tests.cli.conftest import Invoke, RunningController

from thresher.client import AgentClient
from thresher.schemas import api


def as_json(cli: Invoke, *args: str) -> Any:
    result = cli(*args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def register(controller: RunningController, name: str, **facts: Any) -> AgentClient:
    async def go() -> AgentClient:
        agent = AgentClient(controller.url, controller.token)
        body = {"name": name, "hostname": name, "os": "linux", "cores": 4, "ram_bytes": 1 << 33}
        await agent.register(api.RegisterIn.model_validate({**body, **facts}))
        await agent.aclose()
        return agent

    return asyncio.run(go())


def test_submit_takes_the_scheduling_options(cli: Invoke) -> None:
    assert cli("limits", "set", "nuke", "--max", "2").exit_code == 0
    first = cli("submit", "--name", "shot010_render", "--", "true")
    assert first.exit_code == 0, first.output
    result = cli(
        "submit",
        "--name",
        "shot010_comp",
        "--filters",
        "ram:>60GB,pool:@comp",
        "--limits",
        "nuke",
        "--max-running",
        "4",
        "--max-per-host",
        "1",
        "--after-name",
        "shot010_render",
        "--preempt",
        "--capacity",
        "500",
        "--min-runtime",
        "2",
        "--preview-every",
        "10",
        "--errors-to-avoid",
        "2",
        "--forgive",
        "60",
        "--frames",
        "1-100",
        "--",
        "true",
    )
    assert result.exit_code == 0, result.output

    job = as_json(cli, "job", "show", result.stdout.strip())

    assert job["filters"] == "ram:>60GB,pool:@comp"
    assert (job["max_running"], job["max_running_per_host"], job["preempt"]) == (4, 1, True)
    assert (job["after"], job["after_name"], job["status"]) == (
        [int(first.stdout)],
        "shot010_render",
        "waiting",
    )
    block = job["blocks"][0]
    assert (block["limits"], block["capacity"], block["min_runtime_s"]) == (["nuke"], 500, 2.0)
    assert (block["preview_every"], block["errors_to_avoid"], block["forgive_s"]) == (10, 2, 60)


def test_a_bad_filter_is_refused_with_its_reason(cli: Invoke) -> None:
    result = cli("submit", "--name", "bad", "--filters", "ram:>lots", "--", "true")

    assert result.exit_code == 2
    assert "ram:>lots" in result.stderr
    assert as_json(cli, "jobs") == []


def test_limits_set_list_and_delete(cli: Invoke) -> None:
    assert cli("limits", "set", "arnold", "--max", "5", "--per-host", "1").exit_code == 0
    shown = cli("limits", "set", "nuke", "--max-hosts", "3")
    assert "nuke" in shown.stdout

    found = as_json(cli, "limits")

    assert [(x["name"], x["max_total"], x["max_per_host"], x["max_hosts"]) for x in found] == [
        ("arnold", 5, 1, None),
        ("nuke", None, None, 3),
    ]
    assert found[0]["in_use"] == 0
    assert "arnold" in cli("limits").stdout
    assert cli("limits", "delete", "arnold").exit_code == 0
    assert [x["name"] for x in as_json(cli, "limits")] == ["nuke"]
    assert cli("limits", "delete", "arnold").exit_code == 2


def test_users_set_and_list(cli: Invoke) -> None:
    result = cli("users", "set", "alice", "--priority", "20", "--max-running", "8")
    assert result.exit_code == 0, result.output

    assert as_json(cli, "users") == [
        {"name": "alice", "priority": 20, "max_running": 8, "running": 0}
    ]


def test_worker_lanes_nimby_and_sickness(cli: Invoke, controller: RunningController) -> None:
    register(controller, "ren01", lanes=2, pools=["render"], lane_engines={0: ["blender"]})

    lane = cli("workers", "lane", "ren01", "1", "--engines", "povray,command")
    assert lane.exit_code == 0, lane.output
    worker = as_json(cli, "workers", "show", "ren01")
    assert [(x["index"], x["engines"], x["overridden"]) for x in worker["lanes_detail"]] == [
        (0, ["blender"], False),
        (1, ["command", "povray"], True),
    ]
    assert cli("workers", "lane", "ren01", "1", "--reset").exit_code == 0
    assert as_json(cli, "workers", "show", "ren01")["lanes_detail"][1]["engines"] is None
    assert cli("workers", "lane", "ren01", "1").exit_code != 0  # one of the three options

    assert cli("workers", "pause", "ren01").exit_code == 0
    assert as_json(cli, "workers", "show", "ren01")["nimby"] == "paused"
    assert "paused" in cli("workers").stdout
    assert cli("workers", "stop", "ren01").exit_code == 0
    assert as_json(cli, "workers", "show", "ren01")["nimby"] == "stopped"
    assert cli("workers", "resume", "ren01").exit_code == 0
    assert as_json(cli, "workers", "show", "ren01")["nimby"] is None

    assert as_json(cli, "workers", "sick") == []
    assert cli("workers", "heal", "ren01").exit_code == 0
    assert as_json(cli, "pools") == [{"name": "render", "workers": ["ren01"], "jobs": {}}]


def test_workers_pools_sets_adds_removes_and_resets(
    cli: Invoke, controller: RunningController
) -> None:
    register(controller, "ren02", pools=["render"])

    added = cli("workers", "pools", "ren02", "--add", "gpu,sim", "--remove", "render")
    assert added.exit_code == 0, added.output
    assert added.stdout.strip() == "worker ren02: pools gpu, sim"
    shown = cli("workers", "show", "ren02").stdout
    assert "pools: gpu, sim (set from the controller; declared: render)" in shown
    assert as_json(cli, "workers", "pools", "ren02", "--set", "lighting")["pools"] == ["lighting"]
    assert as_json(cli, "pools") == [{"name": "lighting", "workers": ["ren02"], "jobs": {}}]
    reset = as_json(cli, "workers", "pools", "ren02", "--reset")
    assert (reset["pools"], reset["pools_declared"]) == (["render"], None)
    assert cli("workers", "pools", "ren02").exit_code != 0  # nothing asked
    assert cli("workers", "pools", "ren02", "--set", "a", "--add", "b").exit_code != 0
    bad = cli("workers", "pools", "ren02", "--set", "no spaces")
    assert bad.exit_code != 0
    assert "pools" in bad.output


def test_error_hosts_of_a_job(cli: Invoke) -> None:
    job_id = cli("submit", "--name", "j", "--", "true").stdout.strip()

    assert as_json(cli, "error-hosts", job_id) == []
    assert as_json(cli, "error-hosts", job_id, "--reset") == {"forgotten": 0}
    assert cli("error-hosts", "999").exit_code == 2


def test_nimby_writes_the_file_the_worker_watches(cli: Invoke, tmp_path: Path) -> None:
    work = tmp_path / "work"

    assert cli("nimby", "stop", "--work-dir", str(work)).exit_code == 0
    assert (work / "nimby").read_text().strip() == "stop"
    assert cli("nimby", "pause", "--work-dir", str(work)).exit_code == 0
    assert (work / "nimby").read_text().strip() == "pause"
    assert cli("nimby", "resume", "--work-dir", str(work)).exit_code == 0
    assert not (work / "nimby").exists()
