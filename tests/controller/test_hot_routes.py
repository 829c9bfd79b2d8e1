"""The workers' polls and reports served ahead of FastAPI (`controller/hot_routes.py`) answer
exactly as the FastAPI routes do: each request below is sent three ways (through the server's
own protocol, `controller/hot_protocol.py`; through ASGI to the hot routes; to the FastAPI
routes), and the answers must agree (status, body, the headers that matter, a request id). The
protocol's answers are compared byte for byte with uvicorn's own (`test_the_protocol_...`)."""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from thresher.controller.app import ThresherApp
from thresher.controller.settings import ControllerSettings
from thresher.testing import ServedController, serve_in_thread, wait_until

from .conftest import Serve
from .test_dispatch import worker
from .test_metrics import scrape
from .test_security_rules import certificate

LIMIT = 4096
PEOPLE_LIMIT = 2 * LIMIT
POLL, REPORT, JOBS = "/api/v1/agent/poll", "/api/v1/agent/report", "/api/v1/jobs"
HEADERS = ("content-type", "content-length", "www-authenticate", "retry-after", "connection")


class Spy:
    """The app's hot routes, counting the requests they serve and noting who handed each over:
    the hot protocol's cycle (`HotCycle`) or uvicorn's (`RequestResponseCycle`)."""

    def __init__(self, app: ThresherApp) -> None:
        assert app.hot is not None
        self.hot, self.served = app.hot, 0
        self.serves = self.hot.serves
        self.cycles: list[str] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.served += 1
        self.cycles.append(type(getattr(send, "__self__", None)).__name__)
        await self.hot(scope, receive, send)


#: The ways a hot request is served: (hot_routes, hot_protocol), and the cycle that hands it
#: to the hot routes (None: the FastAPI routes serve it).
WAYS = {
    "protocol": ((True, True), "HotCycle"),
    "asgi": ((True, False), "RequestResponseCycle"),
    "fastapi": ((False, False), None),
}


def set_way(app: ThresherApp | None, way: str) -> None:
    assert app is not None
    app.hot_routes, app.hot_protocol = WAYS[way][0]


@pytest.fixture
def farm(serve: Serve) -> Iterator[tuple[ServedController, Spy, str]]:
    served = serve(max_agent_request_bytes=LIMIT, max_request_bytes=PEOPLE_LIMIT, heartbeat_s=0.3)
    assert served.app is not None
    spy = Spy(served.app)
    served.app.hot = spy  # type: ignore[assignment]
    yield served, spy, worker(served, "w1").token
    set_way(served.app, "protocol")


def answer(r: httpx.Response) -> tuple[int, Any, dict[str, str]]:
    assert len(r.headers["x-request-id"]) == 16
    return r.status_code, r.json(), {h: r.headers[h] for h in HEADERS if h in r.headers}


def every_way(served: ServedController, spy: Spy, send: Any, **client: Any) -> dict[str, Any]:
    """`send(client)`'s answer served each way (`WAYS`); the spy saw each hand-over."""
    out = {}
    for way, (_, cycle) in WAYS.items():
        set_way(served.app, way)
        before = len(spy.cycles)
        with httpx.Client(base_url=served.url, timeout=30, **client) as http:
            out[way] = answer(send(http))
        assert spy.cycles[before:] == ([] if cycle is None else [cycle])
    set_way(served.app, "protocol")
    return out


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

    answers = every_way(served, spy, send)
    assert answers["protocol"][0] == status, answers
    assert answers["protocol"] == answers["asgi"] == answers["fastapi"]


JOB = b'{"name": "shot", "command": ["echo", "{start}-{end}"], "frames": "1-3", "chunk": 2}'


@pytest.mark.parametrize(
    ("auth", "body", "status"),
    [
        (None, JOB, 401),
        ("Bearer not-a-token", JOB, 401),
        (WORKER, JOB, 403),  # a worker's token may not submit
        ("admin", b"x" * (PEOPLE_LIMIT + 1), 413),
        ("admin", (b"[" * PEOPLE_LIMIT, b"]"), 413),
        ("admin", b"{not json", 422),
        ("admin", b"", 422),
        ("admin", b'{"name": "shot"}', 422),
        ("admin", b'{"name": "shot", "command": ["true"], "frames": "1-", "bogus": 1}', 422),
        ("admin", b'{"name": "shot", "command": ["true"], "frames": "3-1"}', 422),
        ("admin", b'{"name": "shot", "command": ["true"], "after": [999999]}', 422),
        ("admin", JOB, 201),
        ("admin", (JOB[:20], JOB[20:]), 201),
    ],
)
def test_a_submit_is_answered_and_audited_as_by_the_fastapi_route(
    farm: tuple[ServedController, Spy, str],
    auth: str | None,
    body: bytes | tuple[bytes, ...],
    status: int,
) -> None:
    """The same answer each way (a created job's own ids and times aside), and the same row in
    the audit trail: who, what, the job's id, the status."""
    served, spy, token = farm
    admin = {"Authorization": f"Bearer {served.admin_token}"}
    headers = {"Content-Type": "application/json"}
    if auth is not None:
        headers["Authorization"] = {
            WORKER: f"Bearer {token}",
            "admin": f"Bearer {served.admin_token}",
        }.get(auth, auth)
    rows: dict[str, Any] = {}

    def send(client: httpx.Client) -> httpx.Response:
        content = body if isinstance(body, bytes) else iter(body)
        return client.post(JOBS, content=content, headers=headers)

    answers = {}
    for way in WAYS:
        (answers[way],) = every_way_one(served, spy, way, send)
        wait_until(lambda: audited(served, admin)[0]["status"] != 0, timeout=10, what="settled")
        rows[way] = audited(served, admin)[0]
    job_ids = []
    for way, (got, out, answered) in answers.items():
        assert got == status, (way, out)
        if got == 201:
            answered.pop("content-length")  # its ids and times are the job's own
            job_ids.append(out.pop("id"))
            for key in [k for k in out if k.endswith("_at")]:
                out.pop(key)
            assert rows[way]["object"] == f"/api/v1/jobs -> {job_ids[-1]}"
            rows[way]["object"] = "(the job)"
    if body == b"{not json":
        # A body that is not JSON: the hot route names the body and says why, as the workers'
        # routes do; FastAPI's names a position in it ("1: JSON decode error"). FastAPI reads
        # it before the caller, the hot route after (as the workers' routes): its row names
        # the caller.
        assert answers["protocol"][1]["field"] == "body"
        assert "Invalid JSON" in answers["protocol"][1]["message"]
        assert answers["fastapi"][1]["field"] != "body"
        assert rows["protocol"]["actor"] == "admin"
        assert rows["fastapi"]["actor"] == "-"
        for way in answers:
            answers[way] = (answers[way][0], None, {})
            rows[way].update(actor="-", role="-")
    assert answers["protocol"] == answers["asgi"] == answers["fastapi"]
    assert rows["protocol"] == rows["asgi"] == rows["fastapi"]
    assert rows["protocol"]["action"] == "POST /api/v1/jobs"
    assert rows["protocol"]["status"] == status
    assert len(set(job_ids)) == len(job_ids)


def every_way_one(
    served: ServedController, spy: Spy, way: str, send: Any
) -> list[tuple[int, Any, dict[str, str]]]:
    """`send(client)`'s answer served one way (`WAYS`); the spy saw the hand-over."""
    cycle = WAYS[way][1]
    set_way(served.app, way)
    before = len(spy.cycles)
    try:
        with httpx.Client(base_url=served.url, timeout=30) as http:
            got = [answer(send(http))]
    finally:
        set_way(served.app, "protocol")
    assert spy.cycles[before:] == ([] if cycle is None else [cycle])
    return got


def audited(served: ServedController, admin: dict[str, str]) -> list[dict[str, Any]]:
    """The audit trail's newest rows, less their ids and times."""
    got = httpx.get(f"{served.url}/api/v1/audit?contains=jobs&limit=5", headers=admin)
    assert got.status_code == 200, got.text
    return [
        {k: v for k, v in row.items() if k not in ("id", "at")} for row in got.json()["entries"]
    ]


def test_a_revoked_token_still_remembered_is_refused_alike(
    farm: tuple[ServedController, Spy, str],
) -> None:
    """A token the controller remembers, revoked since: the answer confirms it first (401),
    whatever else was wrong with the request. One worker for each way (a refusal forgets it)."""
    served, spy, _ = farm
    assert served.app is not None
    admin = {"Authorization": f"Bearer {served.admin_token}"}
    answers = {}
    for way in WAYS:
        set_way(served.app, way)
        token = worker(served, f"revoked-{way}").token
        auth = {"Authorization": f"Bearer {token}"}
        ok = httpx.post(served.url + POLL, json={"wait_s": 0}, headers=auth)
        assert ok.status_code == 200  # the token is now one the controller remembers
        listed = httpx.get(served.url + "/api/v1/tokens?all=true", headers=admin).json()
        (mine,) = [t for t in listed["tokens"] if t["name"] == f"worker:revoked-{way}"]
        assert httpx.delete(f"{served.url}/api/v1/tokens/{mine['id']}", headers=admin).is_success
        answers[way] = [
            answer(httpx.post(served.url + POLL, content=body, headers=auth))
            for body in (b"{not json", b'{"wait_s": 0}')
        ]
    set_way(served.app, "protocol")
    assert [status for status, _, _ in answers["protocol"]] == [401, 401]
    assert answers["protocol"] == answers["asgi"] == answers["fastapi"]
    assert spy.cycles == ["HotCycle"] * 3 + ["RequestResponseCycle"] * 3


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
    assert spy.cycles == ["HotCycle"] * 2


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
    assert spy.cycles == ["HotCycle"] * 5


@pytest.mark.parametrize("way", ["protocol", "asgi"])
def test_a_held_poll_whose_worker_went_away_ends(
    farm: tuple[ServedController, Spy, str], way: str
) -> None:
    """The hold notices the closed connection (at the next heartbeat, 0.3 s here), well before
    its 20 s are over."""
    served, spy, token = farm
    set_way(served.app, way)
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
    assert spy.cycles == [WAYS[way][1]]


def exchange(
    url: str, steps: list[tuple[bytes, int]], *, closes: bool, **tls: Any
) -> list[tuple[Any, ...]]:
    """On one connection, send each step's bytes and read its number of answers (a 100
    Continue is one); with `closes`, then wait for the server to close the connection. Each
    answer: its status line, its headers in order (the date's and a generated request id's
    values left out), its body."""
    host, port = url.split("://")[1].split(":")
    out: list[tuple[Any, ...]] = []
    with socket.create_connection((host, int(port)), timeout=20) as plain:
        sock = plain
        if tls:
            sock = ssl.create_default_context(cafile=tls["ca"]).wrap_socket(
                plain, server_hostname=host
            )
        buffer = b""

        def more() -> bool:
            nonlocal buffer
            got = sock.recv(65536)
            buffer += got
            return bool(got)

        for data, answers in steps:
            sock.sendall(data)
            for _ in range(answers):
                while b"\r\n\r\n" not in buffer:
                    assert more(), (out, buffer)
                head, _, buffer = buffer.partition(b"\r\n\r\n")
                status, *lines = head.split(b"\r\n")
                headers = [(n, v) for n, _, v in (line.partition(b": ") for line in lines)]
                length = int(dict(headers).get(b"content-length", b"0"))
                while len(buffer) < length:
                    assert more(), (out, buffer)
                body, buffer = buffer[:length], buffer[length:]
                kept = [
                    (n, b"-" if n == b"date" or (n == b"x-request-id" and len(v) == 16) else v)
                    for n, v in headers
                ]
                out.append((status, kept, body))
        assert not buffer
        if closes:
            assert not more()  # the server closed the connection
    return out


def request(head: str, token: str, body: bytes | None, *extra: str) -> bytes:
    """A raw request: with a Content-Length, or `body` None: chunked (two chunks)."""
    lines = [head, "Host: controller", f"Authorization: Bearer {token}", *extra]
    if body is None:
        lines.append("Transfer-Encoding: chunked")
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + b"2\r\n{}\r\n0\r\n\r\n"
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def test_the_protocol_answers_byte_for_byte_as_uvicorn(
    farm: tuple[ServedController, Spy, str],
) -> None:
    """Pipelined requests on a kept connection (polls, a report, a chunked body, a 422, a
    request the protocol leaves to uvicorn, an Expect: 100-continue, a request id), then the
    connection-closing ones (Connection: close, HTTP/1.0, a 413): the same bytes either way."""
    served, spy, token = farm
    poll = f"POST {POLL} HTTP/1.1"
    kept = [
        request(poll, token, b'{"wait_s": 0}'),
        request(f"POST {REPORT} HTTP/1.1", token, b'{"output": []}', "X-Request-Id: r-1"),
        request(poll, token, None),
        request(poll, token, b"{not json"),
        request(f"POST {POLL}?x=1 HTTP/1.1", token, b"{}"),  # a query: uvicorn's way
        b"GET /healthz HTTP/1.1\r\nHost: controller\r\n\r\n",
        request(poll, token, b'{"wait_s": 0}', "Expect: 100-continue"),
        request(poll, "not-a-token", b"{}"),
    ]
    again = request(poll, token, b'{"wait_s": 0}')  # the connection was kept
    cases = [
        ([(b"".join(kept), 9), (again, 1)], False),  # the 100 Continue is an answer too
        ([(request(poll, token, b"{}", "Connection: close"), 1)], True),
        ([(request(f"POST {POLL} HTTP/1.0", token, b"{}"), 1)], True),
        ([(request(poll, token, b"x" * (LIMIT + 1)), 1)], True),
    ]
    answers = {}
    for way in ("protocol", "asgi"):
        set_way(served.app, way)
        before = len(spy.cycles)
        answers[way] = [exchange(served.url, steps, closes=closes) for steps, closes in cases]
        cycles = [WAYS[way][1]] * 11
        cycles[4] = "RequestResponseCycle"  # the one with a query
        assert spy.cycles[before:] == cycles
    set_way(served.app, "protocol")
    assert answers["protocol"] == answers["asgi"]
    statuses = [[a[0][9:12] for a in got] for got in answers["protocol"]]
    assert statuses == [
        [b"200", b"200", b"200", b"422", b"200", b"200", b"100", b"200", b"401", b"200"],
        [b"200"],
        [b"200"],
        [b"413"],
    ]


def test_the_protocol_serves_the_hot_routes_over_tls(tmp_path: Path) -> None:
    cert, key = certificate(tmp_path)
    settings = replace(
        ControllerSettings(data_dir=tmp_path / "data"), tls_certfile=cert, tls_keyfile=key
    )
    with serve_in_thread(settings) as served:
        assert served.app is not None
        assert served.url.startswith("https://")
        spy = Spy(served.app)
        served.app.hot = spy  # type: ignore[assignment]
        admin = {"Authorization": f"Bearer {served.admin_token}"}
        registered = httpx.post(
            served.url + "/api/v1/agent/register",
            json={"name": "w", "hostname": "w", "os": "linux", "cores": 1, "ram_bytes": 1 << 30},
            headers=admin,
            verify=ssl.create_default_context(cafile=str(cert)),
        )
        token = registered.json()["token"]
        steps = [(request(f"POST {POLL} HTTP/1.1", token, b'{"wait_s": 0}') * 2, 2)]
        answers = {}
        for way in ("protocol", "asgi"):
            set_way(served.app, way)
            answers[way] = exchange(served.url, steps, closes=False, ca=str(cert))
        assert answers["protocol"] == answers["asgi"]
        assert [status[9:12] for status, _, _ in answers["protocol"]] == [b"200", b"200"]
        assert spy.cycles == ["HotCycle"] * 2 + ["RequestResponseCycle"] * 2
