"""Compiling a submission: every problem of a request reported together, each naming its field;
a block's fields flow from the request to the stored job and back."""

from __future__ import annotations

from typing import Any

import httpx

from thresher.client import Client
from thresher.testing import ServedController


def post(served: ServedController, body: dict[str, Any]) -> httpx.Response:
    headers = {"Authorization": f"Bearer {served.admin_token}"}
    with httpx.Client(base_url=served.url, headers=headers) as http:
        return http.post("/api/v1/jobs", json=body)


def test_every_problem_of_a_submission_is_reported_at_once(
    served: ServedController, admin: Client
) -> None:
    response = post(
        served,
        {
            "name": "three mistakes",
            "filters": "ram:>lots",
            "after": [4242],
            "blocks": [
                {"name": "render", "frames": "1-x", "command": ["true"]},
                {"name": "comp", "frames": "1-4", "command": ["true", "{nope}"]},
                {"name": "enc", "frames": "1", "command": ["true"], "after": ["missing"]},
            ],
        },
    )

    assert response.status_code == 422
    body = response.json()
    fields = [e["field"] for e in body["errors"]]
    assert fields == [
        "blocks[0].frames",
        "blocks[1].command",
        "blocks[2].after",
        "filters",
        "after",
    ]
    assert body["field"] == "blocks[0].frames"
    assert all(e["message"] for e in body["errors"])
    assert admin.jobs() == []  # nothing stored


def test_a_lone_problem_is_answered_as_it_is(served: ServedController) -> None:
    response = post(served, {"name": "x", "frames": "", "command": ["true"]})

    assert response.status_code == 422
    assert response.json()["field"] == "frames"
    assert "errors" not in response.json()


def test_a_block_field_flows_from_the_request_to_the_job(served: ServedController) -> None:
    response = post(
        served,
        {
            "name": "described",
            "max_running": 3,
            "min_runtime_s": 2.0,
            "blocks": [
                {"name": "sim", "description": "fluid cache", "frames": "1-10", "chunk": 5},
                {"name": "render", "frames": "1-10", "min_runtime_s": 5.0, "after": ["sim"]},
            ],
            "command": ["true", "{start}"],
        },
    )

    assert response.status_code == 201, response.text
    sim, render = response.json()["blocks"]
    assert (sim["description"], sim["counts"]["total"], sim["min_runtime_s"]) == (
        "fluid cache",
        2,
        2.0,  # the job's value, as the block gave none
    )
    assert (render["description"], render["min_runtime_s"], render["after"]) == ("", 5.0, [0])
