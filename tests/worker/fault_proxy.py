"""A fault at the network edge: an HTTP/1.1 proxy on 127.0.0.1 in front of a real controller
that answers 500 to the first requests of chosen paths, or forwards them and answers 500 in
place of the controller's answer (the answer lost after the commit), and forwards everything
else.

It runs in a thread of its own (so a worker in this process or in a subprocess may use it) and
handles one request at a time per connection, as the worker's clients send them; answers are
read by their Content-Length (what the controller sends) or to the end of the connection.
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from urllib.parse import urlsplit

_FAULT_BODY = b'{"error": "internal", "message": "injected fault"}'
_FAULT = (
    b"HTTP/1.1 500 Internal Server Error\r\ncontent-type: application/json\r\n"
    b"content-length: %d\r\n\r\n%s" % (len(_FAULT_BODY), _FAULT_BODY)
)


class FaultProxy:
    """`faults` maps a path to how many of its first requests get a 500; `lost` to how many of
    its first requests the controller handles but whose answers are replaced by a 500.
    `answered` counts (path, status) of every request answered; `url` is the proxy's."""

    def __init__(
        self, upstream: str, faults: Mapping[str, int], lost: Mapping[str, int] | None = None
    ) -> None:
        parts = urlsplit(upstream)
        assert parts.hostname is not None
        assert parts.port is not None
        self._upstream = (parts.hostname, parts.port)
        self._faults = dict(faults)
        self._lost = dict(lost or {})
        self._lock = threading.Lock()
        self.answered: Counter[tuple[str, int]] = Counter()
        self.url = ""

    def faulted(self, path: str) -> int:
        with self._lock:
            return self.answered[(path, 500)]

    def _fault_due(self, path: str, faults: dict[str, int]) -> bool:
        with self._lock:
            left = faults.get(path, 0)
            if left <= 0:
                return False
            faults[path] = left - 1
            return True

    def _count(self, path: str, status: int) -> None:
        with self._lock:
            self.answered[(path, status)] += 1

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        try:
            while True:
                head, body = await _read_message(reader)
                path = head.split(b" ", 2)[1].decode()
                if self._fault_due(path, self._faults):
                    writer.write(_FAULT)
                    self._count(path, 500)
                else:
                    if upstream is None:
                        upstream = await asyncio.open_connection(*self._upstream)
                    upstream[1].write(head + body)
                    answer_head, answer_body = await _read_message(upstream[0])
                    if self._fault_due(path, self._lost):
                        writer.write(_FAULT)
                        self._count(path, 500)
                    else:
                        writer.write(answer_head + answer_body)
                        self._count(path, int(answer_head.split(b" ", 2)[1]))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()
            if upstream is not None:
                upstream[1].close()


async def _read_message(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    """One request or answer: its head (with the blank line) and its body."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    return head, await reader.readexactly(length) if length else b""


@contextmanager
def fault_proxy(
    upstream: str, faults: Mapping[str, int], lost: Mapping[str, int] | None = None
) -> Iterator[FaultProxy]:
    """A `FaultProxy` serving on a free port of 127.0.0.1 until the block ends."""
    proxy = FaultProxy(upstream, faults, lost)
    loop = asyncio.new_event_loop()
    started = threading.Event()
    server: asyncio.Server | None = None

    async def start() -> None:
        nonlocal server
        server = await asyncio.start_server(proxy._serve, "127.0.0.1", 0)
        proxy.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        started.set()

    thread = threading.Thread(target=loop.run_forever, name="fault-proxy", daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(start(), loop).result(timeout=10)
    assert started.is_set()
    try:
        yield proxy
    finally:

        async def stop() -> None:
            assert server is not None
            server.close()
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()
            with suppress(Exception):
                await server.wait_closed()

        asyncio.run_coroutine_threadsafe(stop(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()
