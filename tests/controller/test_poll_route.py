"""The workers' lean routes (`/agent/poll`, `/agent/report`): same contract as every route.

They skip FastAPI's dependency solving and response validation, so these tests pin what must not
change: bad bodies answer 422 {error, message, field}, a missing token 401, and the OpenAPI
document still describes their bodies and answers.
"""

from __future__ import annotations

import httpx
import pytest

from thresher.schemas import api
from thresher.testing import ServedController

from .test_dispatch import worker


@pytest.fixture
def http(served: ServedController) -> httpx.Client:
    sim = worker(served, "w1")
    return httpx.Client(base_url=served.url, headers={"Authorization": f"Bearer {sim.token}"})


@pytest.mark.parametrize("path", ["/api/v1/agent/poll", "/api/v1/agent/report"])
@pytest.mark.parametrize(
    ("body", "field", "says"),
    [
        (b'{"wait_s": -1}', "wait_s", "greater than or equal to 0"),
        (b'{"finished": [{"attempt_id": "x", "token": "t", "status": "succeeded"}]}', "", ""),
        (b'{"bogus": 1}', "bogus", "Extra inputs are not permitted"),
        (
            b'{"output": [{"attempt_id": 1, "token": "t", "first_line": 9007199254740993}]}',
            "output.0.first_line",
            "less than or equal to 9007199254740992",
        ),
        (b"{not json", "body", "JSON"),
        (b"", "body", ""),
    ],
)
def test_a_bad_body_is_answered_422_naming_the_field(
    http: httpx.Client, path: str, body: bytes, field: str, says: str
) -> None:
    if path.endswith("report") and field == "wait_s":
        body, field, says = b'{"output": [{"attempt_id": 1}]}', "output.0.token", "required"
    r = http.post(path, content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 422, r.text
    answer = r.json()
    assert answer["error"] == "invalid"
    if field:
        assert answer["field"] == field
    else:
        assert answer["field"].startswith("finished.0.attempt_id")
    assert says in answer["message"]


def test_a_poll_without_a_token_is_401(served: ServedController) -> None:
    r = httpx.post(f"{served.url}/api/v1/agent/poll", json={})
    assert r.status_code == 401
    assert r.json()["error"] == "unauthorized"
    assert r.headers["WWW-Authenticate"] == "Bearer"


def test_an_admin_token_cannot_poll(served: ServedController) -> None:
    r = httpx.post(
        f"{served.url}/api/v1/agent/poll",
        json={},
        headers={"Authorization": f"Bearer {served.admin_token}"},
    )
    assert r.status_code == 403
    assert r.json()["error"] == "forbidden"


def test_a_poll_answer_is_a_poll_out(http: httpx.Client) -> None:
    r = http.post("/api/v1/agent/poll", json={"lanes": [0], "wait_s": 0})
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    out = api.PollOut.model_validate_json(r.content)
    assert out.assignments == []
    assert out.enabled is True


def test_the_openapi_document_describes_the_lean_routes(served: ServedController) -> None:
    doc = httpx.get(f"{served.url}/openapi.json", timeout=60).json()
    for path, body in (("/api/v1/agent/poll", "PollIn"), ("/api/v1/agent/report", "ReportIn")):
        op = doc["paths"][path]["post"]
        schema = op["requestBody"]["content"]["application/json"]["schema"]
        assert schema == {"$ref": f"#/components/schemas/{body}"}
        answer = op["responses"]["200"]["content"]["application/json"]["schema"]
        assert answer == {"$ref": "#/components/schemas/PollOut"}
    assert "RunningIn" in doc["components"]["schemas"]
