"""Clients given several controller URLs move on from one that cannot be reached."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from thresher.client import AgentClient, Client, TransportError
from thresher.client._session import controller_urls
from thresher.controller.settings import ControllerSettings
from thresher.schemas import api
from thresher.testing import ServedController, serve_in_thread


def dead_url() -> str:
    """A URL nothing listens on (a port just freed): connections to it are refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture
def served(tmp_path: Path) -> Iterator[ServedController]:
    with serve_in_thread(ControllerSettings(data_dir=tmp_path / "data")) as s:
        yield s


def test_urls_are_split_on_commas_and_trimmed() -> None:
    assert controller_urls(" http://a:1/, http://b:2 ,") == ["http://a:1", "http://b:2"]
    assert controller_urls(["http://a:1"]) == ["http://a:1"]
    with pytest.raises(ValueError, match="no controller URL"):
        controller_urls(" , ")


def test_the_client_moves_on_to_the_next_controller(served: ServedController) -> None:
    dead = dead_url()
    with Client(f"{dead},{served.url}", served.admin_token) as client:
        job = client.submit("after a dead controller", ["true"])  # a write never sent: moved on
        assert client.url == served.url
        assert client.job(job.id).name == "after a dead controller"


def test_the_client_says_when_no_controller_answers() -> None:
    with (
        Client(f"{dead_url()},{dead_url()}", "t") as client,
        pytest.raises(TransportError, match="cannot reach"),
    ):
        client.jobs()


def test_a_worker_moves_on_to_the_next_controller(served: ServedController) -> None:
    async def enrol_and_poll() -> tuple[str, api.PollOut]:
        agent = AgentClient([dead_url(), served.url], served.admin_token)
        try:
            await agent.register(
                api.RegisterIn(name="w1", hostname="h", os="linux", cores=1, ram_bytes=1)
            )
            out = await agent.poll(api.PollIn(wait_s=0, lanes=[0]))
            return agent.url, out
        finally:
            await agent.aclose()

    url, out = asyncio.run(enrol_and_poll())
    assert url == served.url
    assert out.assignments == []
