"""Serve a real controller (uvicorn, real sockets) on 127.0.0.1 in a background thread."""

from __future__ import annotations

import contextlib
import sys
import threading
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from thresher.controller.app import (
    Server,
    ThresherApp,
    create_app,
    listen_socket,
    server_config,
)
from thresher.controller.auth import ensure_admin_token, private_dir
from thresher.controller.settings import ControllerSettings
from thresher.core.clock import Clock, SystemClock
from thresher.store.db import sqlite_url
from thresher.store.store import Store


@dataclass(frozen=True)
class ServedController:
    url: str
    admin_token: str
    store: Store
    settings: ControllerSettings
    app: ThresherApp | None = None  # the served app (its `hot_routes` may be turned off)


class _QuietServer(Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _not_started(server: Server, thread: threading.Thread, waited_s: float) -> str:
    """Why a served controller did not start: its thread ended (its error is logged), or
    where it was when the wait ran out; it is then told to stop, so that it does not go on
    beside the next test (against a database already dropped)."""
    if not thread.is_alive():
        return "the controller did not start: its thread ended (see the captured log)"
    where = _stacks()
    server.should_exit = True
    thread.join(timeout=10)
    return f"the controller did not start in {waited_s:.0f} s; its threads were at:\n{where}"


def _stacks() -> str:
    """Where every thread of this process is (the server's, the farm thread, the executor's):
    what a start that hangs waits for is on another thread than the server's."""
    names = {t.ident: t.name for t in threading.enumerate()}
    return "".join(
        f"--- {names.get(ident, ident)}\n" + "".join(traceback.format_stack(frame))
        for ident, frame in sys._current_frames().items()
    )


@contextlib.contextmanager
def serve_in_thread(
    settings: ControllerSettings,
    *,
    database_url: str | None = None,
    clock: Clock | None = None,
    startup_timeout_s: float = 20.0,
) -> Iterator[ServedController]:
    """A controller on a free port; stopped and its store closed when the block ends."""
    private_dir(settings.data_dir)
    store = Store.open(database_url or settings.database_url or sqlite_url(settings.data_dir))
    clock = clock or SystemClock()
    ensure_admin_token(store, clock, settings.data_dir)
    token = (Path(settings.data_dir) / "admin-token").read_text().strip()
    sock = listen_socket("127.0.0.1", 0)
    port = sock.getsockname()[1]
    app = create_app(settings, store=store, clock=clock)
    server = _QuietServer(server_config(app, settings))
    thread = threading.Thread(
        target=server.run,
        kwargs={"sockets": [sock]},
        daemon=True,
        name="thresher-served-controller",
    )
    thread.start()
    deadline = time.monotonic() + startup_timeout_s
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            why = _not_started(server, thread, startup_timeout_s)
            store.close()
            sock.close()
            raise RuntimeError(why)
        time.sleep(0.01)
    try:
        scheme = "https" if settings.tls_certfile else "http"
        yield ServedController(f"{scheme}://127.0.0.1:{port}", token, store, settings, app)
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        store.close()
        sock.close()
