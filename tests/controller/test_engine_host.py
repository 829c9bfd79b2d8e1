"""GIVEN published engines whose parameter check does something of its own (says which process
it runs in, hangs, kills its process) WHEN engine jobs are submitted THEN that code ran
outside the controller's process, a hang is cut at the time limit and a dead check process is
replaced, each answered 422 naming the field, and the controller goes on serving."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from thresher.client import Client, InvalidRequest
from thresher.controller.settings import ControllerSettings
from thresher.testing import ServedController, serve_in_thread

# merge_parameters is the engine code the controller asks for at submit.
TELLS_ITS_PROCESS = """
import os
from thresher.engines import EngineConfigError
from thresher.engines.builtin.command import Engine as CommandEngine


class Engine(CommandEngine):
    @classmethod
    def merge_parameters(cls, parameters):
        if parameters.get("tell"):
            raise EngineConfigError(f"checked in process {os.getpid()}", parameter="tell")
        return super().merge_parameters(parameters)
"""

HANGS = """
import time
from thresher.engines.builtin.command import Engine as CommandEngine


class Engine(CommandEngine):
    @classmethod
    def merge_parameters(cls, parameters):
        time.sleep(60)
"""

DIES = """
import os
from thresher.engines.builtin.command import Engine as CommandEngine


class Engine(CommandEngine):
    @classmethod
    def merge_parameters(cls, parameters):
        os._exit(3)
"""


@pytest.fixture
def admin(tmp_path: Path) -> Iterator[tuple[ServedController, Client]]:
    settings = ControllerSettings(data_dir=tmp_path / "data", engine_check_timeout_s=2.0)
    with serve_in_thread(settings) as served, Client(served.url, served.admin_token) as client:
        yield served, client


def test_a_published_engines_parameter_check_runs_outside_the_controller(
    admin: tuple[ServedController, Client],
) -> None:
    _, client = admin
    client.publish_engine("tells", TELLS_ITS_PROCESS)
    with pytest.raises(InvalidRequest) as refused:
        client.submit_engine("tells", range="1", parameters={"command": ["true"], "tell": 1})
    assert refused.value.field == "parameters.tell"
    pid = int(str(refused.value).rsplit("process ", 1)[1].split()[0])
    assert pid != os.getpid()  # the controller serves from this test's process
    job = client.submit_engine("tells", range="1-3", parameters={"command": ["true"]})
    assert job.status in ("queued", "running")


def test_a_check_that_hangs_or_dies_is_refused_and_the_next_one_gets_a_fresh_process(
    admin: tuple[ServedController, Client],
) -> None:
    _, client = admin
    for name, source in (("hangs", HANGS), ("dies", DIES), ("tells", TELLS_ITS_PROCESS)):
        client.publish_engine(name, source)
    with pytest.raises(InvalidRequest) as late:
        client.submit_engine("hangs", range="1", parameters={"command": ["true"]})
    assert late.value.field == "parameters"
    assert "longer than 2 s" in str(late.value)
    with pytest.raises(InvalidRequest) as dead:
        client.submit_engine("dies", range="1", parameters={"command": ["true"]})
    assert dead.value.field == "parameters"
    assert "process ended" in str(dead.value)
    assert client.health()["status"] == "ok"
    # the built-in engines are Thresher's own code, checked in process; published ones go on
    client.submit_engine("command", range="1", parameters={"command": ["true"]})
    client.submit_engine("tells", range="1", parameters={"command": ["true"]})
