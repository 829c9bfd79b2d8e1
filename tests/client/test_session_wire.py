"""`Session`'s lean blocking transport for plain http (`client/_blocking.py`).

The same contract as through httpx: the request as httpx sends it (the path and query encoded,
the token and request id, compact JSON), answers with a length, chunked or read to the close,
error answers raised as the client's error tree, a controller that is away or silent raised as
`TransportError` (a write that may have been handled is not sent on to the next controller), and
kept-alive connections that the server closed while idle replaced without the caller noticing.
A scripted HTTP server on 127.0.0.1 plays the controller; the first test talks to a real one.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from thresher.client import Client, InvalidRequest, Session, TransportError
from thresher.client._session import _Httpx, _Lean
from thresher.controller.settings import ControllerSettings
from thresher.testing import serve_in_thread

#: The request (head and body) -> the raw answer; None: say nothing; b"": close at once.
Answer = Callable[[bytes], bytes | None]


def ok(body: bytes = b'{"ok": true}', *, extra: bytes = b"") -> bytes:
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
    return head + extra + b"Content-Length: %d\r\n\r\n%s" % (len(body), body)


class Scripted:
    """An HTTP/1.1 server in a thread: reads each request of a connection and writes
    `answer(request)`. `close_after`: close each connection after that many answers."""

    def __init__(self, answer: Answer, *, close_after: int = 0) -> None:
        self.answer = answer
        self.close_after = close_after
        self.requests: list[bytes] = []
        self.connections = 0
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        self._open: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            self.connections += 1
            self._open.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        reader = conn.makefile("rb")
        answered = 0
        with contextlib.suppress(OSError):
            while True:
                head = b""
                while not head.endswith(b"\r\n\r\n"):
                    line = reader.readline()
                    if not line:
                        return
                    head += line
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                request = head + reader.read(length)
                self.requests.append(request)
                answer = self.answer(request)
                if answer is None:
                    continue  # silent: the client's time limit runs out
                if not answer:
                    conn.close()
                    return
                conn.sendall(answer)
                answered += 1
                if self.close_after and answered >= self.close_after:
                    conn.shutdown(socket.SHUT_RDWR)
                    conn.close()
                    return

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)  # wakes the accepting thread
        self._sock.close()
        for conn in self._open:
            with contextlib.suppress(OSError):
                conn.close()


@contextlib.contextmanager
def scripted(answer: Answer, *, close_after: int = 0) -> Iterator[Scripted]:
    server = Scripted(answer, close_after=close_after)
    try:
        yield server
    finally:
        server.close()


def test_a_client_of_a_real_controller_takes_the_lean_path(tmp_path: Path) -> None:
    with (
        serve_in_thread(ControllerSettings(data_dir=tmp_path / "data")) as served,
        Client(served.url, served.admin_token) as client,
    ):
        assert isinstance(client._http, _Lean)
        job = client.submit("lean", ["echo", "a b"], frames="1-3", env={"É": "ü"})
        assert client.job(job.id).name == "lean"
        listed = client.get_json("/api/v1/jobs", status=["queued", "running"], limit=5)
        assert [j["id"] for j in listed["jobs"]] == [job.id]
        with pytest.raises(InvalidRequest) as refused:
            client.get_json("/api/v1/jobs", status=["bogus"])
        assert refused.value.field == "status"


def test_the_request_is_sent_as_httpx_sends_it() -> None:
    with scripted(lambda request: ok()) as server, Session(server.url, "tok") as session:
        session.get_json("/api/v1/a b/é?", flag=True, off=False, many=[1, 2], none=None)
        session._call("POST", "/api/v1/x", json={"name": "é", "n": [1.5]})
        session._call("POST", "/api/v1/empty")
    get, post, empty = server.requests
    line, *headers = get.split(b"\r\n\r\n")[0].split(b"\r\n")
    assert line == b"GET /api/v1/a%20b/%C3%A9%3F?flag=true&off=false&many=1&many=2 HTTP/1.1"
    assert b"Authorization: Bearer tok" in headers
    assert any(h.startswith(b"X-Request-Id: ") for h in headers)
    assert not any(h.lower().startswith(b"content-length") for h in headers)
    assert post.endswith(b'\r\n\r\n{"name":"\xc3\xa9","n":[1.5]}')
    assert b"Content-Type: application/json" in post
    assert b"Content-Length: 0\r\n" in empty
    assert server.connections == 1  # one kept-alive connection for all three


def test_a_session_sends_one_request_id_on_every_request_and_connection() -> None:
    with (
        scripted(lambda request: ok(), close_after=1) as server,
        Session(server.url, "t", request_id="session-7") as session,
    ):
        session.get_json("/api/v1/jobs")
        session.get_json("/api/v1/workers")
    assert server.connections == 2
    assert [r.count(b"\r\nX-Request-Id: session-7\r\n") for r in server.requests] == [1, 1]


def test_a_chunked_answer_and_one_read_to_the_close_are_read_whole() -> None:
    chunked = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"4\r\n[1, \r\n3;ext=1\r\n2, \r\n1\r\n3\r\n1\r\n]\r\n0\r\nX-Trailer: t\r\n\r\n"
    )
    unframed = b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n[4]"
    answers = iter([chunked, unframed, ok(b"[5]")])
    with (
        scripted(lambda request: next(answers), close_after=2) as server,
        Session(server.url, "t") as session,
    ):
        assert session.get_json("/a") == [1, 2, 3]
        assert session.get_json("/b") == [4]
        assert session.get_json("/c") == [5]  # a new connection: the last one was closed
    assert server.connections == 2


def test_a_connection_the_server_closed_while_idle_is_replaced_unnoticed() -> None:
    with (
        scripted(lambda request: ok(), close_after=1) as server,
        Session(server.url, "t") as session,
    ):
        for _ in range(3):
            assert session._call("POST", "/api/v1/jobs", json={}).json() == {"ok": True}
    assert server.connections == 3
    assert len([r for r in server.requests if r.startswith(b"POST")]) == 3  # each sent once


def test_an_answer_with_no_content_has_no_body_whatever_its_head_says() -> None:
    answers = iter([b"HTTP/1.1 204 No Content\r\n\r\n", ok(b"[1]")])
    with (
        scripted(lambda request: next(answers)) as server,
        Session(server.url, "t", timeout=5) as session,
    ):
        assert session._call("DELETE", "/api/v1/tokens/1").content == b""
        assert session.get_json("/a") == [1]  # the same connection carries the next one
    assert server.connections == 1


def test_an_error_answer_is_raised_as_the_error_tree() -> None:
    refusal = (
        b"HTTP/1.1 422 Unprocessable Entity\r\nContent-Length: 62\r\n\r\n"
        b'{"error": "invalid", "message": "too long", "field": "name"}  '
    )
    with scripted(lambda request: refusal) as server, Session(server.url, "t") as session:
        with pytest.raises(InvalidRequest, match="too long") as refused:
            session._call("POST", "/api/v1/jobs", json={})
        assert refused.value.field == "name"


def test_a_silent_controller_is_a_transport_error_within_the_time_limit() -> None:
    with scripted(lambda request: None) as server, Session(server.url, "t", timeout=0.3) as s:
        started = time.monotonic()
        with pytest.raises(TransportError, match="cannot reach the controller"):
            s.get_json("/api/v1/jobs")
        assert time.monotonic() - started < 10


def test_a_write_that_may_have_been_handled_is_not_sent_to_the_next_controller() -> None:
    with (
        scripted(lambda request: b"") as dropping,  # reads the request, closes: no answer
        scripted(lambda request: ok()) as second,
    ):
        with Session([dropping.url, second.url], "t") as session, pytest.raises(TransportError):
            session._call("POST", "/api/v1/jobs", json={})
        assert second.requests == []
        with Session([dropping.url, second.url], "t") as session:
            assert session.get_json("/api/v1/jobs") == {"ok": True}  # a read moves on
        assert len(second.requests) == 1


def test_https_a_proxy_or_a_transport_given_go_through_httpx(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with Session("https://farm.example:8420", "t") as session:
        assert isinstance(session._http, _Httpx)
    monkeypatch.setenv("http_proxy", "http://proxy.example:3128")
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    with Session("http://farm.example:8420", "t") as session:
        assert isinstance(session._http, _Httpx)
