"""A controller served in-process on 127.0.0.1 (a free port, a fresh data directory) and a
runner that drives the `thresher` CLI against it."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from thresher.cli.controller import serve_controller
from thresher.cli.main import app
from thresher.controller.settings import ControllerSettings

START_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class RunningController:
    url: str
    token: str
    data_dir: Path


Invoke = Callable[..., Result]


@pytest.fixture
def controller(tmp_path: Path) -> Iterator[RunningController]:
    """A controller in a background thread; stopped gracefully and joined after the test."""
    settings = ControllerSettings(data_dir=tmp_path / "farm")
    started: queue.Queue[str | BaseException] = queue.Queue()
    stop = threading.Event()

    def serve() -> None:
        try:
            serve_controller(settings, host="127.0.0.1", port=0, ready=started.put, stop=stop)
        except BaseException as exc:  # handed to the test thread, which fails with it
            started.put(exc)

    thread = threading.Thread(target=serve, name="controller", daemon=True)
    thread.start()
    try:
        outcome = started.get(timeout=START_TIMEOUT_S)
        if isinstance(outcome, BaseException):
            raise outcome
        token = (settings.data_dir / "admin-token").read_text().strip()
        yield RunningController(url=outcome, token=token, data_dir=settings.data_dir)
    finally:
        stop.set()
        thread.join(timeout=START_TIMEOUT_S)
    assert not thread.is_alive(), "the controller did not stop"


@pytest.fixture
def cli(controller: RunningController, monkeypatch: pytest.MonkeyPatch) -> Invoke:
    """`cli("jobs", "--json")` runs the CLI with THRESHER_URL and THRESHER_TOKEN set to the
    test controller; pass token=None to leave the token out, or url=... to aim elsewhere."""
    monkeypatch.delenv("THRESHER_URL", raising=False)
    monkeypatch.delenv("THRESHER_TOKEN", raising=False)
    # `thresher login` writes here, never to the real user's configuration
    monkeypatch.setenv("XDG_CONFIG_HOME", str(controller.data_dir.parent / "config"))
    runner = CliRunner()

    def invoke(
        *args: str, token: str | None = controller.token, url: str = controller.url
    ) -> Result:
        # Wide enough that Rich tables keep their headings whole.
        env = {"THRESHER_URL": url, "THRESHER_TOKEN": token, "COLUMNS": "200"}
        return runner.invoke(app, list(args), env=env)

    return invoke
