"""Running a file service: a listening socket and uvicorn (chunk reads served beside it with
`sendfile`), in the foreground or a thread."""

from __future__ import annotations

import contextlib
import ctypes
import socket
import threading
import time
from collections.abc import Iterator

import uvicorn
from uvicorn.protocols.http.auto import AutoHTTPProtocol

from thresher.files.sendfile import protocol_for
from thresher.files.service import FileService, create_files_app


def listen(host: str, port: int) -> socket.socket:
    """A listening TCP socket (port 0: a free one)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(512)
    except OSError as exc:
        sock.close()
        raise OSError(exc.errno, f"cannot listen on {host}:{port}: {exc.strerror}") from exc
    return sock


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:  # a thread cannot take signals
        yield


def keep_heap_small() -> None:
    """Bound what glibc keeps of freed memory, without paying for fresh pages on every chunk.
    Its defaults let the threshold for giving large buffers back rise to 32 MiB after the
    first large frees (measured: 264 MiB kept over a 256 MiB transfer); giving back every
    buffer over 256 KiB instead (as before) made each 1 MiB chunk a fresh mapping, faulted in
    page by page: a third of a transfer's time. So: buffers up to 8 MiB (chunks, batches)
    come from the heap and are reused, larger ones (read windows) are mapped and returned at
    once, the heap keeps at most 48 MiB free at its top, and threads share two arenas (each
    arena keeps its own free memory). No effect where the C library is not glibc."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_threshold, m_arena_max = -1, -3, -8
        libc.mallopt(m_mmap_threshold, 8 * 1024 * 1024)
        libc.mallopt(m_trim_threshold, 48 * 1024 * 1024)
        libc.mallopt(m_arena_max, 2)


def config_for(service: FileService) -> uvicorn.Config:
    """uvicorn's settings for the service: chunk reads served with `sendfile` (on threads, off
    the ASGI stack), everything else by the app."""
    return uvicorn.Config(
        create_files_app(service),
        log_level="warning",
        access_log=False,
        lifespan="off",
        http=protocol_for(service, AutoHTTPProtocol),
    )


def server(service: FileService) -> uvicorn.Server:
    return uvicorn.Server(config_for(service))


@contextlib.contextmanager
def serve_in_thread(
    service: FileService, *, host: str = "127.0.0.1", port: int = 0
) -> Iterator[str]:
    """Serve `service` in a background thread while the block runs; yields its URL."""
    sock = listen(host, port)
    running = _Server(config_for(service))
    thread = threading.Thread(target=running.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not running.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the file service did not start")
        time.sleep(0.01)
    try:
        yield f"http://{host}:{sock.getsockname()[1]}"
    finally:
        running.should_exit = True
        thread.join(timeout=30)
        sock.close()
