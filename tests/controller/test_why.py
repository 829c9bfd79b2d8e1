"""`GET /api/v1/jobs/{id}/why`: every reason a queued job or its blocks wait, named."""

from __future__ import annotations

from typing import Any

import httpx
from tests.controller.test_scheduling import GB, Sim, job

from thresher.client import Client
from thresher.schemas import api
from thresher.testing import ServedController


def why(served: ServedController, job_id: int) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {served.admin_token}"}
    with httpx.Client(base_url=served.url, headers=headers) as http:
        response = http.get(f"/api/v1/jobs/{job_id}/why")
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def reasons(served: ServedController, job_id: int) -> list[tuple[str, int]]:
    (block,) = why(served, job_id)["blocks"]
    return [(r["text"], r["workers"]) for r in block["reasons"]]


def test_no_online_worker(served: ServedController, admin: Client) -> None:
    assert reasons(served, job(admin, "alone")) == [("no worker is online", 0)]


def test_filters_nimby_and_busy_workers_are_named_and_counted(
    served: ServedController, admin: Client
) -> None:
    Sim(served, "small1")
    Sim(served, "small2")
    busy = Sim(served, "big1", ram_bytes=128 * GB)
    Sim(served, "big2", ram_bytes=128 * GB)
    admin.pause_worker("big2")
    job(admin, "filler", filters="ram:>64g")
    assert len(busy.take()) == 1  # big1's one lane now runs the filler

    waiting = job(admin, "needs ram", filters="ram:>64g")

    got = reasons(served, waiting)
    assert got[0][1] == 2  # the two small workers
    assert "ram" in got[0][0]
    assert sorted(got[1:]) == [
        ("every lane of the worker runs a task", 1),
        ("the worker is paused (NIMBY)", 1),
    ]


def test_a_limit_in_use_and_a_cap_are_named(served: ServedController, admin: Client) -> None:
    sim = Sim(served, "w", lanes=3)
    admin.set_limit("nuke", max_total=1)
    licensed = job(admin, "comp", frames="1-3", limits=["nuke"], max_running=5)
    assert len(sim.take()) == 1  # one unit of nuke: one task

    assert reasons(served, licensed) == [("limit nuke is in use up to its maximum", 1)]


def test_a_paused_job_and_one_waiting_on_another_say_so(
    served: ServedController, admin: Client
) -> None:
    first = job(admin, "first")
    second = admin.submit("second", ["true"], after=[first]).id
    admin.pause(first)

    assert why(served, first)["reason"] == "the job is paused"
    assert str(first) in why(served, second)["reason"]


def test_a_block_waiting_on_another_block_says_which(
    served: ServedController, admin: Client
) -> None:
    Sim(served, "w")
    body = {
        "name": "two steps",
        "command": ["true"],
        "blocks": [{"name": "render", "frames": "1-2"}, {"name": "comp", "after": ["render"]}],
    }
    headers = {"Authorization": f"Bearer {served.admin_token}"}
    with httpx.Client(base_url=served.url, headers=headers) as http:
        job_id = http.post("/api/v1/jobs", json=body).json()["id"]

    answer = why(served, job_id)
    by_name = {b["name"]: b["reasons"] for b in answer["blocks"]}
    assert "render" in by_name["comp"][0]["text"]
    assert by_name["render"] == [
        {"text": "a free lane will take it at the worker's next poll", "workers": 1}
    ]


def test_a_task_says_what_it_waits_on_its_own_and_through_its_block(
    served: ServedController, admin: Client
) -> None:
    """Task level: the upstream tasks a frame-by-frame task waits on, the host a retry avoids,
    then its block's reasons; a running or finished task says where it is."""
    sim = Sim(served, "w", lanes=2)
    staged = admin.submit_job(
        api.JobIn(
            name="staged",
            command=["true"],
            blocks=[
                api.BlockIn(name="render", frames="1-2", retries=2),
                api.BlockIn(name="comp", frames="1-2", after_frames=["render"]),
            ],
        )
    )
    first, second = sim.take()
    sim.end(first, status="failed")

    def task_reasons(block: int, index: int) -> list[str]:
        return [r.text for r in admin.task_why(staged.id, index, block=block).reasons]

    assert task_reasons(1, 0)[0] == "waits on block render: task(s) 0 not done"
    assert task_reasons(1, 1)[0] != task_reasons(1, 0)[0]  # frame 2's render task is running
    assert task_reasons(0, 0)[0] == "failed 1 time(s); a retry avoids w"
    assert task_reasons(0, 1) == ["it runs on w"]
    sim.end(second)
    assert task_reasons(0, 1) == ["the task succeeded"]
