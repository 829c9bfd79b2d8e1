"""Nothing a request carries is unbounded, through a served controller on SQLite and PostgreSQL:
bodies over the limit are answered 413, numbers past what a column or a timer holds and text
with NUL bytes are answered 422 naming the field, never a 500; and `after_name` is a glob whose
matching is bounded work."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from tests.controller.conftest import Serve

from thresher.client import Client
from thresher.schemas.base import MAX_INT64, MAX_RUNTIME_S
from thresher.store.scheduling import NameGlob
from thresher.testing import ServedController

JOB: dict[str, Any] = {"name": "j", "command": ["echo", "{frame}"], "frames": "1-2"}


def http(served: ServedController) -> httpx.Client:
    headers = {"Authorization": f"Bearer {served.admin_token}"}
    return httpx.Client(base_url=served.url, headers=headers, timeout=30)


@pytest.fixture
def api(served: ServedController) -> Iterator[httpx.Client]:
    with http(served) as client:
        yield client


def refused(response: httpx.Response, status: int = 422) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert set(body) >= {"error", "message", "field"}
    return body


# -- request bodies ------------------------------------------------------------------------------


def test_a_body_over_the_limit_is_answered_413_naming_the_body(serve: Serve) -> None:
    served = serve(max_request_bytes=2000)
    with http(served) as client:
        small = client.post("/api/v1/jobs", json=JOB)
        big = client.post("/api/v1/jobs", json={**JOB, "env": {"PAD": "x" * 5000}})
        chunked = client.post(
            "/api/v1/jobs", content=iter([b'{"name": "j", "env": {"PAD": "', b"x" * 5000, b'"}}'])
        )
        health = client.get("/healthz")

    assert small.status_code == 201
    body = refused(big, 413)
    assert (body["error"], body["field"]) == ("too_large", "body")
    assert "2000 bytes" in body["message"]
    assert refused(chunked, 413)["field"] == "body"  # no Content-Length: counted as read
    assert health.status_code == 200
    with Client(served.url, served.admin_token) as admin:
        assert [j.name for j in admin.jobs()] == ["j"]  # the refused ones were never stored


def test_workers_reports_have_a_limit_of_their_own(serve: Serve) -> None:
    served = serve(max_request_bytes=2000, max_agent_request_bytes=100_000)
    with http(served) as client:
        facts = {"name": "w1", "hostname": "h", "os": "linux", "cores": 1, "ram_bytes": 1}
        padded = {**facts, "attributes": {f"a{i}": "x" * 900 for i in range(5)}}  # over 2000
        register = client.post("/api/v1/agent/register", json=padded)
        too_big = client.post("/api/v1/agent/poll", content=b"{" + b" " * 200_000 + b"}")

    assert register.status_code == 200, register.text
    assert refused(too_big, 413)["field"] == "body"


# -- numbers -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"after": [2**70]}, "after.0"),
        ({"after": [MAX_INT64 + 1]}, "after.0"),
        ({"max_running": 2**40}, "max_running"),
        ({"max_running_per_host": 2**40}, "max_running_per_host"),
        ({"preview_every": 2**40}, "preview_every"),
        ({"max_runtime_s": MAX_RUNTIME_S + 1}, "max_runtime_s"),
        ({"max_runtime_s": 25 * 86_400}, "max_runtime_s"),  # the worker's timers stop at 24.8 d
        ({"min_runtime_s": 1e300}, "min_runtime_s"),
        ({"forgive_s": 1e300}, "forgive_s"),
        ({"blocks": [{"command": ["true"], "after": [2**40]}]}, "blocks.0.after.0"),
        ({"blocks": [{"command": ["true"], "max_runtime_s": 1e12}]}, "blocks.0.max_runtime_s"),
    ],
)
def test_numbers_past_a_column_or_a_timer_are_422_naming_the_field(
    api: httpx.Client, fields: dict[str, Any], field: str
) -> None:
    body = refused(api.post("/api/v1/jobs", json={**JOB, **fields}))
    assert body["field"] == field


def test_a_max_runtime_within_the_bound_is_kept(api: httpx.Client) -> None:
    made = api.post("/api/v1/jobs", json={**JOB, "max_runtime_s": MAX_RUNTIME_S})
    assert made.status_code == 201
    assert made.json()["blocks"][0]["max_runtime_s"] == MAX_RUNTIME_S


def test_non_finite_numbers_are_422(api: httpx.Client) -> None:
    raw = b'{"name": "j", "command": ["true"], "max_runtime_s": Infinity}'
    headers = {"Content-Type": "application/json"}
    assert refused(api.post("/api/v1/jobs", content=raw, headers=headers))["field"] == (
        "max_runtime_s"
    )
    raw = b'{"name": "j", "engine": "command", "range": "1", "parameters": {"x": NaN}}'
    assert refused(api.post("/api/v1/jobs", content=raw, headers=headers))["field"] == (
        "parameters"
    )


@pytest.mark.parametrize(
    ("path", "method", "body", "field"),
    [
        ("/api/v1/limits/lic", "PUT", {"max_total": 2**40}, "max_total"),
        ("/api/v1/users/alice", "PUT", {"max_running": 2**40}, "max_running"),
        (
            "/api/v1/agent/register",
            "POST",
            {"name": "w", "hostname": "h", "os": "linux", "cores": 2**40, "ram_bytes": 1},
            "cores",
        ),
        (
            "/api/v1/agent/register",
            "POST",
            {"name": "w", "hostname": "h", "os": "linux", "cores": 1, "ram_bytes": 2**64},
            "ram_bytes",
        ),
        ("/api/v1/engines/povray/rollback", "POST", {"revision": 2**40}, "revision"),
    ],
)
def test_numbers_past_their_columns_are_422_on_every_route(
    api: httpx.Client, path: str, method: str, body: dict[str, Any], field: str
) -> None:
    assert refused(api.request(method, path, json=body))["field"] == field


# -- sizes ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"command": ["x" * (128 * 1024)]}, "command.0"),
        ({"command": ["x"] * 10_001}, "command"),
        ({"command": ["x" * 100_000] * 11}, "command"),  # over 1 MiB in all
        ({"env": {f"V{i}": "x" for i in range(1001)}}, "env"),
        ({"env": {"V": "x" * (128 * 1024)}}, "env.V"),
        ({"env": {"A=B": "x"}}, "env.A=B.[key]"),
        ({"name": "n" * 301}, "name"),
        ({"cwd": "/" + "d" * 5000}, "cwd"),
        ({"filters": "x" * 10_001}, "filters"),
        ({"limits": [f"l{i}" for i in range(101)]}, "limits"),
    ],
)
def test_sizes_past_their_bound_are_422_naming_the_field(
    api: httpx.Client, fields: dict[str, Any], field: str
) -> None:
    assert refused(api.post("/api/v1/jobs", json={**JOB, **fields}))["field"] == field


# -- NUL bytes -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"name": "a\x00b"}, "name"),
        ({"command": ["echo", "a\x00"]}, "command"),
        ({"env": {"A": "b\x00"}}, "env"),
        ({"env": {"A\x00": "b"}}, "env"),
        ({"cwd": "/tmp/\x00"}, "cwd"),
        ({"filters": "os:linux\x00"}, "filters"),
        ({"after_name": "x\x00"}, "after_name"),
        ({"blocks": [{"name": "b\x00", "command": ["true"]}]}, "blocks.0.name"),
        ({"blocks": [{"command": ["true"], "limits": ["l\x00"]}]}, "blocks.0.limits"),
    ],
)
def test_nul_bytes_in_any_text_field_are_422_naming_it(
    api: httpx.Client, fields: dict[str, Any], field: str
) -> None:
    body = refused(api.post("/api/v1/jobs", json={**JOB, **fields}))
    assert body["field"] == field
    assert "NUL" in body["message"]


def test_nul_bytes_in_engine_parameters_and_other_routes_are_422(api: httpx.Client) -> None:
    engine_job = {"name": "e", "engine": "command", "range": "1", "parameters": {"a": ["\x00"]}}
    assert refused(api.post("/api/v1/jobs", json=engine_job))["field"] == "parameters"
    token = {"name": "bob\x00", "role": "user"}
    assert refused(api.post("/api/v1/admin/tokens", json=token))["field"] == "name"
    template = {"template": "name: x\x00"}
    assert refused(api.post("/api/v1/templates/jobs", json=template))["field"] == "template"


def test_nesting_past_the_bound_is_422(api: httpx.Client) -> None:
    nested: Any = "leaf"
    for _ in range(40):
        nested = [nested]
    job = {"name": "e", "engine": "command", "range": "1", "parameters": {"deep": nested}}
    body = refused(api.post("/api/v1/jobs", json=job))
    assert body["field"] == "parameters"
    assert "nested deeper" in body["message"]


# -- after_name ----------------------------------------------------------------------------------


def test_after_name_is_a_glob_over_the_whole_name(api: httpx.Client) -> None:
    ids = {
        name: api.post("/api/v1/jobs", json={**JOB, "name": name}).json()["id"]
        for name in ("shot010_render", "shot010_sim", "shot0100_render", "xshot010_comp")
    }

    def waits_on(pattern: str) -> list[int]:
        made = api.post("/api/v1/jobs", json={**JOB, "name": "probe", "after_name": pattern})
        assert made.status_code == 201, made.text
        return sorted(made.json()["after"])

    assert waits_on("shot010_*") == sorted([ids["shot010_render"], ids["shot010_sim"]])
    assert waits_on("shot010_[rs]?[mn]*") == sorted([ids["shot010_render"], ids["shot010_sim"]])
    assert waits_on("shot01?_render") == [ids["shot010_render"]]
    assert waits_on("*comp") == [ids["xshot010_comp"]]
    assert waits_on("shot010") == []  # whole names only
    assert refused(api.post("/api/v1/jobs", json={**JOB, "after_name": "shot[01"}))["field"] == (
        "after_name"
    )


def test_a_pathological_pattern_is_answered_at_once(api: httpx.Client) -> None:
    api.post("/api/v1/jobs", json={**JOB, "name": "a" * 299 + "!"})
    # As a backtracking regex this pattern takes time doubling with each character of the name.
    made = api.post("/api/v1/jobs", json={**JOB, "name": "c", "after_name": "(a+)+$"})
    assert (made.status_code, made.json()["after"]) == (201, [])
    made = api.post("/api/v1/jobs", json={**JOB, "name": "d", "after_name": "*a*a*a*a*a*a*b"})
    assert (made.status_code, made.json()["after"]) == (201, [])


class CountingName(str):
    """A name that counts how often its characters are read."""

    reads = 0

    def __iter__(self) -> Iterator[str]:
        for char in str.__str__(self):
            CountingName.reads += 1
            yield char


def test_matching_reads_each_character_of_a_name_once() -> None:
    name = CountingName("a" * 10_000)
    glob = NameGlob.parse("*a*a*a*a*a*a*a*a*a*a*b")

    assert glob.matches(name) is False
    assert CountingName.reads == 10_000
    assert NameGlob.parse("*a*a*a*a*a*a*a*a*a*a").matches("a" * 10_000) is True


def test_job_listings_are_pages_bounded_in_bytes(admin: Client, api: httpx.Client) -> None:
    """A page never carries more than `max_bytes` (one job at least); `more` and `next_offset`
    lead through every job exactly once."""
    big_env = {f"V{i}": "x" * 1000 for i in range(50)}  # about 50 KB of JSON per job
    ids = [admin.submit(f"j{i}", ["true"], env=big_env).id for i in range(12)]

    seen: list[int] = []
    offset, pages = 0, 0
    while True:
        response = api.get("/api/v1/jobs", params={"offset": offset, "max_bytes": 120_000})
        assert response.status_code == 200
        assert len(response.content) <= 120_000 + 200  # the page's own few bytes around the jobs
        page = response.json()
        seen += [job["id"] for job in page["jobs"]]
        pages += 1
        if not page["more"]:
            break
        offset = page["next_offset"]
    assert seen == ids[::-1]  # newest first, each once
    assert pages == 6  # two jobs of about 52 KB fit 120,000 bytes

    assert [j.id for j in admin.jobs(limit=5)] == ids[::-1][:5]  # the client pages for itself
    tiny = api.get("/api/v1/jobs", params={"max_bytes": 1}).json()
    assert (len(tiny["jobs"]), tiny["more"]) == (1, True)  # one at least: a reader moves on
    assert refused(api.get("/api/v1/jobs", params={"max_bytes": 2**40}))["field"] == "max_bytes"
