"""A stopped controller leaves nothing behind in its process.

FastAPI keeps the endpoints it has looked at in caches of its own; while a route was a closure
over the app, every app built in a process stayed alive there with its farm, its index and its
store (40,000 objects each). A test process starting hundreds of controllers grew until its
full garbage collections took seconds: a controller then took more than 20 s to start."""

from __future__ import annotations

import gc
import weakref
from pathlib import Path

import httpx

from thresher.controller.settings import ControllerSettings
from thresher.testing import serve_in_thread


def test_a_stopped_controller_is_garbage(tmp_path: Path) -> None:
    with serve_in_thread(ControllerSettings(data_dir=tmp_path / "data")) as served:
        assert served.app is not None
        app = weakref.ref(served.app)
        farm = weakref.ref(served.app.state.farm)
        for path in ("/healthz", "/", "/docs"):
            assert httpx.get(f"{served.url}{path}", timeout=30).status_code == 200
        health = httpx.get(f"{served.url}/healthz", timeout=30).json()
        assert health["database"] == "sqlite"
        del served
    gc.collect()
    assert farm() is None, "the farm outlived its controller"
    assert app() is None, "the app outlived its controller"
