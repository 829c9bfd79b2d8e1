"""A worker's work directory defaults to the user's state directory, never the current one.

`$XDG_STATE_HOME/thresher/worker/<name>`, else `~/.local/state/thresher/worker/<name>`: the
rule as a table, `thresher nimby` finding it, and a real `thresher worker` run in it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from thresher.cli.main import app
from thresher.client import Client
from thresher.controller.settings import ControllerSettings
from thresher.testing import serve_in_thread
from thresher.worker.config import default_work_dir

THRESHER = str(Path(sys.executable).with_name("thresher"))
HOME = Path("/home/ann")


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        pytest.param(
            {"XDG_STATE_HOME": "/srv/state"}, "/srv/state/thresher/worker/ren01", id="xdg"
        ),
        pytest.param({}, "/home/ann/.local/state/thresher/worker/ren01", id="unset"),
        pytest.param(
            {"XDG_STATE_HOME": ""}, "/home/ann/.local/state/thresher/worker/ren01", id="empty"
        ),
        pytest.param(
            {"XDG_STATE_HOME": "state"},
            "/home/ann/.local/state/thresher/worker/ren01",
            id="relative: ignored",
        ),
    ],
)
def test_the_default_work_dir(environ: dict[str, str], expected: str) -> None:
    assert default_work_dir("ren01", environ=environ, home=HOME) == Path(expected)


def test_nimby_finds_the_workers_default_work_dir(tmp_path: Path) -> None:
    state = tmp_path / "state"
    env = {"XDG_STATE_HOME": str(state)}
    runner = CliRunner()
    nimby = state / "thresher" / "worker" / "ren01" / "nimby"

    assert runner.invoke(app, ["nimby", "stop", "--name", "ren01"], env=env).exit_code == 0
    assert nimby.read_text().strip() == "stop"
    # One worker with a default work dir here: no name needed.
    assert runner.invoke(app, ["nimby", "pause"], env=env).exit_code == 0
    assert nimby.read_text().strip() == "pause"
    (state / "thresher" / "worker" / "ren02").mkdir()
    which = runner.invoke(app, ["nimby", "resume"], env=env)
    assert which.exit_code == 2
    assert "ren01, ren02" in which.output
    assert runner.invoke(app, ["nimby", "resume", "--name", "ren01"], env=env).exit_code == 0
    assert not nimby.exists()


def test_a_worker_without_a_work_dir_works_in_its_state_dir(tmp_path: Path) -> None:
    """GIVEN a worker started with no --work-dir in an empty folder WHEN it runs a task with no
    cwd THEN the task runs under $XDG_STATE_HOME/thresher/worker/<name> and the folder stays
    empty."""
    here, state = tmp_path / "here", tmp_path / "state"
    here.mkdir()
    settings = ControllerSettings(data_dir=tmp_path / "data")
    with serve_in_thread(settings) as served, Client(served.url, served.admin_token) as client:
        argv = [THRESHER, "worker", "--controller", served.url, "--token", served.admin_token]
        env = {**os.environ, "XDG_STATE_HOME": str(state)}
        with (tmp_path / "worker.log").open("wb") as log:
            worker = subprocess.Popen(
                [*argv, "--name", "ren01"], cwd=here, env=env, stdout=log, stderr=log
            )
        try:
            job = client.submit("touch", ["touch", "ran"], frames="1")
            deadline = time.monotonic() + 30
            while client.job(job.id).status != "succeeded":
                assert worker.poll() is None, (tmp_path / "worker.log").read_text()
                assert time.monotonic() < deadline, "the task did not run"
                time.sleep(0.05)  # polling interval; the job's status decides
        finally:
            worker.send_signal(signal.SIGTERM)
            worker.wait(timeout=30)
    assert (state / "thresher" / "worker" / "ren01" / "jobs" / str(job.id) / "ran").is_file()
    assert list(here.iterdir()) == []
