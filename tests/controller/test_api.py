"""The people's HTTP API on a real controller: auth, validation at the edge, ownership, OpenAPI."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from thresher.client import AgentClient, Client, Forbidden, InvalidRequest, NotFound
from thresher.schemas import api
from thresher.store.tables import blocks, jobs, tasks
from thresher.testing import ServedController

GOOD_JOB: dict[str, Any] = {"name": "good", "command": ["echo", "{start}"], "frames": "1-10"}
DOCUMENTED_ROUTES = [
    ("/healthz", "get"),
    ("/api/v1/jobs", "post"),
    ("/api/v1/jobs", "get"),
    ("/api/v1/jobs/{job_id}", "get"),
    ("/api/v1/jobs/{job_id}", "delete"),
    ("/api/v1/jobs/{job_id}/pause", "post"),
    ("/api/v1/jobs/{job_id}/resume", "post"),
    ("/api/v1/jobs/{job_id}/cancel", "post"),
    ("/api/v1/jobs/{job_id}/retry", "post"),
    ("/api/v1/jobs/{job_id}/priority", "put"),
    ("/api/v1/jobs/{job_id}/tasks", "get"),
    ("/api/v1/jobs/{job_id}/blocks/{block}/tasks/{index}", "get"),
    ("/api/v1/jobs/{job_id}/blocks/{block}/tasks/{index}/retry", "post"),
    ("/api/v1/jobs/{job_id}/blocks/{block}/tasks/{index}/skip", "post"),
    ("/api/v1/jobs/{job_id}/blocks/{block}/tasks/{index}/log", "get"),
    ("/api/v1/workers", "get"),
    ("/api/v1/workers/{name}/disable", "post"),
    ("/api/v1/admin/tokens", "post"),
    ("/api/v1/agent/register", "post"),
    ("/api/v1/agent/poll", "post"),
]


def register_body(name: str) -> api.RegisterIn:
    return api.RegisterIn(
        name=name, hostname=name, os="linux", cores=2, ram_bytes=1 << 30, site="hq"
    )


def register(url: str, token: str, name: str) -> api.RegisterOut:
    async def go() -> api.RegisterOut:
        agent = AgentClient(url, token)
        try:
            return await agent.register(register_body(name))
        finally:
            await agent.aclose()

    return asyncio.run(go())


def poll(url: str, token: str) -> api.PollOut:
    async def go() -> api.PollOut:
        agent = AgentClient(url, token)
        try:
            return await agent.poll(api.PollIn(lanes=[0]))
        finally:
            await agent.aclose()

    return asyncio.run(go())


def rows(served: ServedController, table: sa.Table) -> int:
    with served.store.engine.connect() as conn:
        return int(conn.scalar(sa.select(sa.func.count()).select_from(table)) or 0)


# -- health and authentication ------------------------------------------------------------------


def test_healthz_is_open_and_the_openapi_document_lists_the_routes(
    served: ServedController,
) -> None:
    response = httpx.get(f"{served.url}/healthz", timeout=30)  # not a latency test (test_stalls)

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["database"] == served.store.dialect

    response = httpx.get(  # built on first request, in a thread: seconds on a busy machine
        f"{served.url}/openapi.json",
        headers={"Authorization": f"Bearer {served.admin_token}"},
        timeout=60,
    )
    assert response.status_code == 200
    doc = response.json()
    assert doc["openapi"].startswith("3.")
    paths = doc["paths"]
    for path, method in DOCUMENTED_ROUTES:
        assert method in paths.get(path, {}), f"{method.upper()} {path} missing from OpenAPI"
    assert "JobIn" in doc["components"]["schemas"]


def test_every_other_route_needs_a_known_bearer_token(served: ServedController) -> None:
    routes = [
        ("GET", "/api/v1/jobs", None),
        ("POST", "/api/v1/jobs", GOOD_JOB),
        ("POST", "/api/v1/jobs/1/pause", None),
        ("DELETE", "/api/v1/jobs/1", None),
        ("GET", "/api/v1/jobs/1/tasks", None),
        ("GET", "/api/v1/workers", None),
        ("POST", "/api/v1/admin/tokens", {"name": "x"}),
        ("POST", "/api/v1/agent/register", register_body("w").model_dump()),
        ("POST", "/api/v1/agent/poll", {}),
    ]
    headers: list[dict[str, str]] = [
        {},
        {"Authorization": "Bearer not-a-token"},
        {"Authorization": f"Basic {served.admin_token}"},
    ]
    refused = []
    with httpx.Client(base_url=served.url) as http:
        for method, path, body in routes:
            for header in headers:
                response = http.request(method, path, json=body, headers=header)
                refused.append((method, path, response.status_code, response.json()["error"]))
                assert response.headers["www-authenticate"] == "Bearer"
                assert response.json()["message"]
    assert {(status, error) for *_, status, error in refused} == {(401, "unauthorized")}, refused
    assert rows(served, jobs) == 0


# -- validation at the edge ---------------------------------------------------------------------


MALFORMED: list[tuple[str, dict[str, Any], str]] = [
    ("open range", {"frames": "1-"}, "frames"),
    ("not a range", {"frames": "abc"}, "frames"),
    ("backwards", {"frames": "10-1"}, "frames"),
    ("blank", {"frames": "   "}, "frames"),
    ("too many frames", {"frames": "1-20000000"}, "frames"),
    ("zero step", {"frames": "1-10x0"}, "frames"),
    ("overlap", {"frames": "1-10,5"}, "frames"),
    ("chunk 0", {"chunk": 0}, "chunk"),
    ("priority 101", {"priority": 101}, "priority"),
    ("priority -1", {"priority": -1}, "priority"),
    ("retries -1", {"retries": -1}, "retries"),
    ("unknown placeholder", {"command": ["render", "{foo}"]}, "command"),
    ("frame with chunk", {"command": ["render", "{frame}"], "chunk": 2}, "command"),
    ("bad format", {"command": ["render", "{start:q}"]}, "command"),
    ("empty command", {"command": []}, "command"),
    ("unknown after", {"after": [4242]}, "after"),
    ("unknown field", {"colour": "red"}, "colour"),
    ("priority frame outside", {"priority_frames": "50"}, "priority_frames"),
    ("frames and blocks", {"blocks": [{"frames": "1"}]}, "frames"),
    ("empty name", {"name": ""}, "name"),
]


def test_malformed_submissions_get_422_naming_the_field_and_create_nothing(
    served: ServedController, admin: Client
) -> None:
    wrong = []
    with httpx.Client(
        base_url=served.url, headers={"Authorization": f"Bearer {served.admin_token}"}
    ) as http:
        for label, change, field in MALFORMED:
            response = http.post("/api/v1/jobs", json={**GOOD_JOB, **change})
            body = response.json()
            got = (response.status_code, body.get("error"), body.get("field"))
            if got != (422, "invalid", field) or not body.get("message"):
                wrong.append((label, got, body.get("message")))
    assert wrong == []
    assert admin.jobs() == []
    assert (rows(served, jobs), rows(served, blocks), rows(served, tasks)) == (0, 0, 0)


def test_a_refused_frame_range_says_what_is_wrong(admin: Client) -> None:
    with pytest.raises(InvalidRequest) as info:
        admin.submit("huge", ["echo", "{start}"], frames="1-20000000")
    assert info.value.status == 422
    assert info.value.field == "frames"
    assert "10,000,000" in info.value.message

    bad = {"name": "b", "command": ["true"], "blocks": [{"name": "x", "frames": "5-1"}]}
    with pytest.raises(InvalidRequest) as info:
        admin.submit_job(api.JobIn.model_validate(bad))
    assert info.value.field is not None
    assert info.value.field.startswith("blocks")
    assert admin.jobs() == []


def test_an_empty_frame_range_is_refused(served: ServedController, admin: Client) -> None:
    response = httpx.post(
        f"{served.url}/api/v1/jobs",
        json={**GOOD_JOB, "frames": ""},
        headers={"Authorization": f"Bearer {served.admin_token}"},
    )

    assert response.status_code == 422
    assert response.json()["field"] == "frames"
    assert admin.jobs() == []


def test_a_good_submission_is_shown_listed_changed_and_deleted(admin: Client) -> None:
    job = admin.submit(
        "shots", ["render", "-s", "{start}", "-e", "{end}"], frames="1-10", chunk=4, priority=70
    )

    assert job.status == "queued"
    assert (job.priority, job.owner) == (70, "admin")
    assert job.counts.total == 3
    assert job.counts.waiting == 3
    assert admin.job(job.id).name == "shots"
    assert [j.id for j in admin.jobs(status=["queued"])] == [job.id]
    assert admin.jobs(status=["running"]) == []
    with pytest.raises(InvalidRequest) as info:
        admin.jobs(status=["sleeping"])
    assert info.value.field == "status"
    assert admin.set_priority(job.id, 90).status == "queued"
    assert admin.job(job.id).priority == 90
    with pytest.raises(InvalidRequest):
        admin.set_priority(job.id, 101)

    admin.delete(job.id)
    with pytest.raises(NotFound):
        admin.job(job.id)
    assert admin.jobs() == []


def test_unknown_things_get_404_json(served: ServedController, admin: Client) -> None:
    with pytest.raises(NotFound) as info:
        admin.job(999)
    assert (info.value.code, info.value.field) == ("not_found", "job_id")
    with pytest.raises(NotFound):
        admin.tasks(999)
    job = admin.submit("one", ["true"], frames="1")
    with pytest.raises(NotFound):
        admin.task(job.id, 1)
    with pytest.raises(NotFound):
        admin.tasks(job.id, block=1)
    with pytest.raises(NotFound):
        admin.worker("nobody")
    response = httpx.get(
        f"{served.url}/api/v1/nothing-here",
        headers={"Authorization": f"Bearer {served.admin_token}"},
    )
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"


def test_a_negative_task_index_is_refused_naming_it(
    served: ServedController, admin: Client
) -> None:
    job = admin.submit("one", ["true"], frames="1-3")

    response = httpx.get(
        f"{served.url}/api/v1/jobs/{job.id}/blocks/0/tasks/-1",
        headers={"Authorization": f"Bearer {served.admin_token}"},
    )

    assert response.status_code == 422
    assert response.json()["field"] == "index"


def test_users_act_only_on_their_own_jobs(served: ServedController, admin: Client) -> None:
    alice_token = admin.create_token("alice", "user").token
    bob_token = admin.create_token("bob", "user").token
    with Client(served.url, alice_token) as alice, Client(served.url, bob_token) as bob:
        job = alice.submit("alice's", ["true"], frames="1-3")
        assert job.owner == "alice"

        refusals: dict[str, Callable[[], object]] = {
            "pause": lambda: bob.pause(job.id),
            "resume": lambda: bob.resume(job.id),
            "cancel": lambda: bob.cancel(job.id),
            "retry": lambda: bob.retry(job.id),
            "priority": lambda: bob.set_priority(job.id, 99),
            "delete": lambda: bob.delete(job.id),
            "retry task": lambda: bob.retry_task(job.id, 0),
            "skip task": lambda: bob.skip_task(job.id, 0),
        }
        # bob shares no group with alice: her job is invisible to him, as if it did not exist
        for action, call in refusals.items():
            with pytest.raises(NotFound) as info:
                call()
            assert (info.value.status, info.value.code) == (404, "not_found"), action

        after = alice.job(job.id)
        assert (after.status, after.priority, after.counts.skipped) == ("queued", 50, 0)
        assert alice.pause(job.id).status == "paused"
        assert admin.resume(job.id).status == "queued"  # an admin acts on every job


def test_users_cannot_create_tokens_or_manage_workers(
    served: ServedController, admin: Client
) -> None:
    user_token = admin.create_token("carol", "user").token
    enrol = admin.create_token("rack", "enrol").token
    register(served.url, enrol, "w1")
    with Client(served.url, user_token) as carol:
        for call in (
            lambda: carol.create_token("mallory", "admin"),
            lambda: carol.create_token("mallory", "user"),
            lambda: carol.disable_worker("w1"),
        ):
            with pytest.raises(Forbidden):
                call()
        with pytest.raises(Forbidden):
            register(served.url, user_token, "w2")
    assert admin.worker("w1").enabled is True
    assert [w.name for w in admin.workers()] == ["w1"]


def test_an_enrolment_token_registers_workers_but_cannot_submit(
    served: ServedController, admin: Client
) -> None:
    enrol = admin.create_token("rack", "enrol")
    assert enrol.role == "enrol"

    out = register(served.url, enrol.token, "render-01")

    assert out.token != enrol.token
    assert (out.heartbeat_s, out.lease_s) == (5.0, 15.0)
    assert admin.worker("render-01").status == "online"
    with Client(served.url, enrol.token) as enroller:
        with pytest.raises(Forbidden):
            enroller.submit("nope", ["true"])
        with pytest.raises(Forbidden):
            enroller.pause(1)
    with pytest.raises(Forbidden):
        poll(served.url, enrol.token)  # polling needs the worker's own token
    # The worker's own token polls, but cannot act as a person either.
    assert poll(served.url, out.token).assignments == []
    with Client(served.url, out.token) as worker, pytest.raises(Forbidden):
        worker.submit("nope", ["true"])
    assert admin.jobs() == []
