"""The garbage collector of a controller process (`controller/collector.py`)."""

from __future__ import annotations

import gc
import queue
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from thresher.cli import controller as cli_controller
from thresher.cli.controller import serve_controller
from thresher.cli.main import app
from thresher.controller import collector
from thresher.controller.app import Server
from thresher.controller.settings import ControllerSettings


@pytest.fixture
def restored() -> Iterator[None]:
    """The test run's own collector settings, put back after the test."""
    threshold = gc.get_threshold()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)


@pytest.mark.usefixtures("restored")
def test_tune_freezes_what_lives_and_spaces_young_collections() -> None:
    _, middle, old = gc.get_threshold()
    collector.tune()
    assert gc.get_threshold() == (collector.YOUNG_EVERY, middle, old)
    assert gc.get_freeze_count() > 0
    assert gc.get_count()[0] < collector.YOUNG_EVERY


def test_a_controller_embedded_in_a_thread_leaves_the_collector_alone(tmp_path: Path) -> None:
    """A frozen collector keeps the garbage of the moment forever: a test run that started
    controllers in threads froze each test's garbage before it (and spaced its collections)."""
    threshold, frozen = gc.get_threshold(), gc.get_freeze_count()
    started: queue.Queue[str] = queue.Queue()
    stop = threading.Event()
    settings = ControllerSettings(data_dir=tmp_path / "farm")
    thread = threading.Thread(
        target=serve_controller,
        args=(settings,),
        kwargs={"host": "127.0.0.1", "port": 0, "ready": started.put, "stop": stop},
        daemon=True,
    )
    thread.start()
    try:
        url = started.get(timeout=60)
        assert httpx.get(f"{url}/healthz", timeout=30).status_code == 200
        assert (gc.get_threshold(), gc.get_freeze_count()) == (threshold, frozen)
    finally:
        stop.set()
        thread.join(timeout=60)
    assert not thread.is_alive()


def test_the_controller_command_tunes_its_own_process(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    calls: list[dict[str, object]] = []
    monkeypatch.setattr(cli_controller, "serve_controller", lambda *a, **kw: calls.append(kw))
    result = CliRunner().invoke(app, ["controller", "--port", "0", "--data-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert [call["tune_collector"] for call in calls] == [True]
    assert not Server.tunes_collector  # embedded servers and tests keep their collector
