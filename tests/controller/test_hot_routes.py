"""The workers' polls and reports served ahead of FastAPI (`controller/hot_routes.py`) answer
exactly as the FastAPI routes do: each request below is sent with the hot routes on and off,
and both answers must agree (status, body, the headers that matter, a request id)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from thresher.controller.app import ThresherApp
from thresher.testing import ServedController, wait_until

from .conftest import Serve
from .test_dispatch import worker
from .test_metrics import scrape

LIMIT = 4096
POLL, REPORT = "/api/v1/agent/poll", "/api/v1/agent/report"
HEADERS = ("content-type", "content-length", "www-authenticate", "retry-after", "connection")


class Spy:
    """The app's hot routes, counting the requests they serve."""

    def __init__(self, app: ThresherApp) -> None:
        assert app.hot is not None
        self.hot, self.served = app.hot, 0
        self.serves = self.hot.serves

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.served += 1
        await self.hot(scope, receive, send)


@pytest.fixture
def farm(serve: Serve) -> Iterator[tuple[ServedController, Spy, str]]:
    served = serve(max_agent_request_bytes=LIMIT, heartbeat_s=0.3)
    assert served.app is not None
    spy = Spy(served.app)
    served.app.hot = spy  # type: ignore[assignment]
    yield served, spy, worker(served, "w1").token
    served.app.hot_routes = True


def answer(r: httpx.Response) -> tuple[int, Any, dict[str, str]]:
    assert len(r.headers["x-request-id"]) == 16
    return r.status_code, r.json(), {h: r.headers[h] for h in HEADERS if h in r.headers}


def both(served: ServedController, spy: Spy, send: Any) -> tuple[Any, Any]:
    """`send(client)`'s answer with the hot routes on, then off; the spy saw only the first."""
    app = served.app
    assert app is not None
    out = []
    for hot in (True, False):
        app.hot_routes = hot
        before = spy.served
        with httpx.Client(base_url=served.url, timeout=30) as client:
            out.append(answer(send(client)))
        assert spy.served - before == (1 if hot else 0)
    app.hot_routes = True
    return out[0], out[1]


WORKER = "worker"  # the registered worker's token


@pytest.mark.parametrize("path", [POLL, REPORT])
@pytest.mark.parametrize(
    ("auth", "body", "status"),
    [
        (None, b"{}", 401),
        ("Basic abc", b"{}", 401),
        ("Bearer", b"{}", 401),
        ("Bearer not-a-token", b"{}", 401),
        ("admin", b"{}", 403),
        (WORKER, b"x" * (LIMIT + 1), 413),
        (WORKER, (b"{" * LIMIT, b"}"), 413),
        (WORKER, b"{not json", 422),
        (WORKER, b"", 422),
        (WORKER, b'{"bogus": 1}', 422),
        (WORKER, b'{"finished": [{"attempt_id": "x"}]}', 422),
        (WORKER, b'{"wait_s": -1, "output": 3}', 422),
        (WORKER, b'{"lanes": [0], "wait_s": 0}', 200),
        (WORKER, (b'{"lanes": [0],', b' "wait_s": 0}'), 200),
        (WORKER, b"{}", 200),
    ],
)
def test_the_hot_routes_answer_as_the_fastapi_routes(
    farm: tuple[ServedController, Spy, str],
    path: str,
    auth: str | None,
    body: bytes | tuple[bytes, ...],
    status: int,
) -> None:
    """A body given in parts is sent chunked (no Content-Length)."""
    served, spy, token = farm
    if path == REPORT and status == 200:  # a report has no lanes
        body = b'{"output": []}' if isinstance(body, bytes) else (b'{"output":', b" []}")
    headers = {"Content-Type": "application/json"}
    if auth is not None:
        headers["Authorization"] = {
            WORKER: f"Bearer {token}",
            "admin": f"Bearer {served.admin_token}",
        }.get(auth, auth)

    def send(client: httpx.Client) -> httpx.Response:
        content = body if isinstance(body, bytes) else iter(body)
        return client.post(path, content=content, headers=headers)

    hot, fastapi = both(served, spy, send)
    assert hot[0] == status, hot
    assert hot == fastapi


def test_a_revoked_token_still_remembered_is_refused_alike(
    farm: tuple[ServedController, Spy, str],
) -> None:
    """A token the controller remembers, revoked since: the answer confirms it first (401),
    whatever else was wrong with the request. One worker for each way (a refusal forgets it)."""
    served, spy, _ = farm
    assert served.app is not None
    admin = {"Authorization": f"Bearer {served.admin_token}"}
    answers = {}
    for hot in (True, False):
        served.app.hot_routes = hot
        token = worker(served, f"revoked-{hot}").token
        auth = {"Authorization": f"Bearer {token}"}
        ok = httpx.post(served.url + POLL, json={"wait_s": 0}, headers=auth)
        assert ok.status_code == 200  # the token is now one the controller remembers
        listed = httpx.get(served.url + "/api/v1/tokens?all=true", headers=admin).json()
        (mine,) = [t for t in listed["tokens"] if t["name"] == f"worker:revoked-{hot}"]
        assert httpx.delete(f"{served.url}/api/v1/tokens/{mine['id']}", headers=admin).is_success
        answers[hot] = [
            answer(httpx.post(served.url + POLL, content=body, headers=auth))
            for body in (b"{not json", b'{"wait_s": 0}')
        ]
    assert [status for status, _, _ in answers[True]] == [401, 401]
    assert answers[True] == answers[False]
    assert spy.served == 3


@pytest.mark.parametrize(("given", "echoed"), [("w1-0001", True), ("not a sane id!", False)])
def test_a_request_id_is_answered_back(
    farm: tuple[ServedController, Spy, str], given: str, echoed: bool
) -> None:
    served, spy, token = farm
    for auth in (f"Bearer {token}", "Bearer wrong"):
        r = httpx.post(
            served.url + POLL,
            json={"wait_s": 0},
            headers={"Authorization": auth, "X-Request-Id": given},
        )
        assert (r.headers["x-request-id"] == given) is echoed
        assert len(r.headers["x-request-id"]) == (len(given) if echoed else 16)
    assert spy.served == 2


def test_the_hot_routes_count_in_the_metrics(farm: tuple[ServedController, Spy, str]) -> None:
    served, spy, token = farm
    auth = {"Authorization": f"Bearer {token}"}

    def counts() -> tuple[float, float, float, float]:
        got = scrape(served, served.admin_token)
        requests = got["thresher_request_seconds_count"]

        def n(route: str, status: str) -> float:
            key = (("method", "POST"), ("route", route), ("status", status))
            return requests.get(key, 0.0)

        polls = got["thresher_poll_seconds_count"][()]
        return n(POLL, "200"), n(POLL, "422"), n(REPORT, "200"), polls

    before = counts()
    for _ in range(3):
        assert httpx.post(served.url + POLL, json={"wait_s": 0}, headers=auth).status_code == 200
    assert httpx.post(served.url + POLL, content=b"[", headers=auth).status_code == 422
    assert httpx.post(served.url + REPORT, json={}, headers=auth).status_code == 200
    after = counts()
    assert [a - b for a, b in zip(after, before, strict=True)] == [3, 1, 1, 4]
    assert scrape(served, served.admin_token)["thresher_polls_in_flight"][()] == 0
    assert spy.served == 5


def test_a_held_poll_whose_worker_went_away_ends(farm: tuple[ServedController, Spy, str]) -> None:
    """The hold notices the closed connection (at the next heartbeat, 0.3 s here), well before
    its 20 s are over."""
    served, spy, token = farm
    host, port = served.url.removeprefix("http://").split(":")
    body = b'{"lanes": [0], "wait_s": 20}'
    request = (
        f"POST {POLL} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body

    def in_flight() -> float:
        return scrape(served, served.admin_token)["thresher_polls_in_flight"][()]

    def wait_for(value: float) -> None:
        wait_until(lambda: in_flight() == value, timeout=10, what=f"{value} polls in flight")

    with socket.create_connection((host, int(port))) as sock:
        sock.sendall(request)
        wait_for(1)
    wait_for(0)
    assert spy.served == 1
