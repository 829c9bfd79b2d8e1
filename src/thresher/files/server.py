"""Running a file service: a listening socket and uvicorn, in the foreground or a thread."""

from __future__ import annotations

import contextlib
import ctypes
import socket
import threading
import time
from collections.abc import Iterator

import uvicorn

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
    """Make glibc give large buffers back to the system when they are freed. Its default
    threshold for that rises to 32 MiB after the first large frees, so a service moving 1 MiB
    chunks would keep hundreds of MiB it no longer uses (measured: 264 MiB over a 256 MiB
    transfer, 8 MiB with this). No effect where the C library is not glibc."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3
        libc.mallopt(m_mmap_threshold, 256 * 1024)
        libc.mallopt(m_trim_threshold, 1024 * 1024)


def server(service: FileService) -> uvicorn.Server:
    config = uvicorn.Config(
        create_files_app(service), log_level="warning", access_log=False, lifespan="off"
    )
    return uvicorn.Server(config)


@contextlib.contextmanager
def serve_in_thread(
    service: FileService, *, host: str = "127.0.0.1", port: int = 0
) -> Iterator[str]:
    """Serve `service` in a background thread while the block runs; yields its URL."""
    sock = listen(host, port)
    config = uvicorn.Config(
        create_files_app(service), log_level="warning", access_log=False, lifespan="off"
    )
    running = _Server(config)
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
