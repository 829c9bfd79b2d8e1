"""`AgentClient`'s lean path for polls and reports (`client/_wire.py`).

The same contract as through httpx: answers parsed into the schema, error answers raised as the
client's error tree, a controller that is away or silent raised as `TransportError`, and
kept-alive connections that the server closed while idle replaced without the caller noticing.
A scripted HTTP server on 127.0.0.1 plays the controller; the last test talks to a real one.
"""

from __future__ import annotations

import asyncio
import functools
import socket
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from thresher.client import AgentClient, InvalidRequest, StaleAttempt, TransportError
from thresher.client._wire import lean_target
from thresher.controller.settings import ControllerSettings
from thresher.schemas import api
from thresher.testing import serve_in_thread

POLL_OUT = (
    b'{"assignments": [], "stop": [7], "stale": [], "heartbeat_s": 5.0, "lease_s": 15.0,'
    b' "enabled": true}'
)

Answer = Callable[[bytes], bytes | None]


def in_loop(test: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
    """Run an async test on its own event loop (no asyncio plugin for pytest here)."""

    @functools.wraps(test)
    def run(*args: Any, **kwargs: Any) -> None:
        asyncio.run(test(*args, **kwargs))

    return run  # the request head and body -> the raw answer


def ok(body: bytes = POLL_OUT, *, close: bool = False, drop: bool = False) -> bytes:
    extra = b"Connection: close\r\n" if close else b"X-Drop: 1\r\n" if drop else b""
    return (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n%sContent-Length: %d\r\n\r\n%s"
        % (
            extra,
            len(body),
            body,
        )
    )


@asynccontextmanager
async def scripted(answer: Answer) -> AsyncIterator[tuple[str, list[bytes]]]:
    """A server that reads each request on a connection and writes `answer(request)` (None:
    say nothing, and keep the connection open). Yields its URL and the requests seen."""
    seen: list[bytes] = []
    silent: list[asyncio.StreamWriter] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    int(line.split(b":")[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                request = head + await reader.readexactly(length)
                seen.append(request)
                raw = answer(request)
                if raw is None:
                    silent.append(writer)
                    return
                writer.write(raw)
                await writer.drain()
                if b"Connection: close" in raw or b"X-Drop: 1" in raw:
                    break  # X-Drop: as a server closing an idle connection, unannounced
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", seen
    finally:
        for writer in silent:
            writer.close()
        server.close()
        await server.wait_closed()


def report() -> api.ReportIn:
    return api.ReportIn(
        finished=[api.FinishIn(attempt_id=3, token="tok", status="succeeded", exit_code=0)]
    )


@in_loop
async def test_a_report_is_sent_as_json_and_its_answer_parsed() -> None:
    async with scripted(lambda _: ok()) as (url, seen):
        client = AgentClient(url, "secret")
        assert client._wire is not None  # plain http: the lean path
        out = await client.report(report())
        again = await client.report(report())
        await client.aclose()
    assert out.stop == [7]
    assert again.stop == [7]
    head, _, body = seen[0].partition(b"\r\n\r\n")
    assert head.startswith(b"POST /api/v1/agent/report HTTP/1.1\r\n")
    assert b"\r\nAuthorization: Bearer secret\r\n" in head
    assert api.ReportIn.model_validate_json(body) == report()


@in_loop
async def test_a_chunked_answer_is_read() -> None:
    chunked = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        + b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in (POLL_OUT[:10], POLL_OUT[10:]))
        + b"0\r\n\r\n"
    )
    async with scripted(lambda _: chunked) as (url, _):
        client = AgentClient(url, "t")
        assert (await client.report(report())).stop == [7]
        await client.aclose()


@pytest.mark.parametrize(
    ("status", "body", "error"),
    [
        (422, b'{"error": "invalid", "message": "bad", "field": "wait_s"}', InvalidRequest),
        (409, b'{"error": "stale_attempt", "message": "gone"}', StaleAttempt),
    ],
)
@in_loop
async def test_an_error_answer_raises_the_client_error(
    status: int, body: bytes, error: type[Exception]
) -> None:
    raw = b"HTTP/1.1 %d Nope\r\nContent-Length: %d\r\n\r\n%s" % (status, len(body), body)
    async with scripted(lambda _: raw) as (url, _):
        client = AgentClient(url, "t")
        with pytest.raises(error) as caught:
            await client.report(report())
        await client.aclose()
    assert caught.value.status == status  # type: ignore[attr-defined]
    if status == 422:
        assert caught.value.field == "wait_s"  # type: ignore[attr-defined]


@in_loop
async def test_a_controller_that_is_away_is_a_transport_error() -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = AgentClient(f"http://127.0.0.1:{port}", "t")
    with pytest.raises(TransportError):
        await client.poll(api.PollIn(wait_s=0))
    await client.aclose()


@in_loop
async def test_a_silent_controller_is_a_transport_error_after_the_timeout() -> None:
    async with scripted(lambda _: None) as (url, _):
        client = AgentClient(url, "t", timeout=0.2)
        with pytest.raises(TransportError, match="no answer"):
            await client.report(report())
        await client.aclose()


@in_loop
async def test_a_connection_closed_while_idle_is_replaced() -> None:
    answers = iter([ok(close=True), ok(drop=True), ok()])
    async with scripted(lambda _: next(answers)) as (url, seen):
        client = AgentClient(url, "t")
        await client.report(report())  # announced: that connection is not kept
        await client.report(report())  # kept, and then closed by the server while idle
        out = await client.report(report())  # sent again on a new connection
        await client.aclose()
    assert out.stop == [7]
    assert len(seen) == 3


@in_loop
async def test_a_garbled_answer_is_a_transport_error() -> None:
    async with scripted(lambda _: b"SSH-2.0-OpenSSH\r\n\r\n") as (url, _):
        client = AgentClient(url, "t")
        with pytest.raises(TransportError):
            await client.report(report())
        await client.aclose()


def test_only_plain_http_without_a_proxy_takes_the_lean_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY", "no_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    assert lean_target("http://ctl.example:8420") == ("ctl.example", 8420)
    assert lean_target("http://ctl.example") == ("ctl.example", 80)
    assert lean_target("https://ctl.example") is None
    monkeypatch.setenv("http_proxy", "http://proxy:3128")
    assert lean_target("http://ctl.example:8420") is None
    monkeypatch.setenv("no_proxy", "ctl.example")
    assert lean_target("http://ctl.example:8420") == ("ctl.example", 8420)


def test_a_real_controller_answers_the_lean_client(tmp_path: Path) -> None:
    settings = ControllerSettings(data_dir=tmp_path / "data")
    with serve_in_thread(settings) as served:

        async def talk() -> api.PollOut:
            client = AgentClient(served.url, served.admin_token)
            await client.register(
                api.RegisterIn(
                    name="w1", hostname="w1", os="linux", cores=1, ram_bytes=1 << 30, site="hq"
                )
            )
            try:
                with pytest.raises(InvalidRequest):
                    await client.poll(api.PollIn.model_construct(wait_s=-1))
                return await client.poll(api.PollIn(lanes=[0], wait_s=0))
            finally:
                await client.aclose()

        out = asyncio.run(talk())
    assert out.assignments == []
    assert out.enabled
