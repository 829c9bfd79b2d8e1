"""`thresher farm`: a controller on SQLite and local workers in one process."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer

from thresher.controller.app import Server, create_app, listen_socket, server_config
from thresher.controller.auth import ensure_admin_token, private_dir
from thresher.controller.settings import ControllerSettings
from thresher.core.clock import SystemClock
from thresher.store.db import sqlite_url
from thresher.store.store import Store
from thresher.worker.agent import Agent, AgentConfig
from thresher.worker.facts import detect


class _EmbeddedServer(Server):
    """The farm owns the signals: it stops the workers first, then the server."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def run_farm(
    settings: ControllerSettings,
    *,
    host: str,
    port: int,
    workers: int,
    lanes: int,
    announce: bool = True,
    stop: asyncio.Event | None = None,
) -> None:
    """Serve the controller, run `workers` local agents, and stop all on SIGINT/SIGTERM (or
    when `stop` is set)."""
    private_dir(settings.data_dir)
    store = Store.open(settings.database_url or sqlite_url(settings.data_dir))
    clock = SystemClock()
    written = ensure_admin_token(store, clock, settings.data_dir)
    token = (settings.data_dir / "admin-token").read_text().strip()
    sock = listen_socket(host, port)
    url = f"http://{host}:{sock.getsockname()[1]}"
    server = _EmbeddedServer(server_config(create_app(settings, store=store, clock=clock)))
    stop = stop or asyncio.Event()
    if threading.current_thread() is threading.main_thread():
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if serving.done():
            serving.result()
        await asyncio.sleep(0.02)
    if announce:
        if written:
            typer.echo(f"admin token written to {written}")
        typer.echo(f"thresher farm listening on {url}")
        typer.echo(
            f"  export THRESHER_URL={url} THRESHER_TOKEN=$(cat {settings.data_dir}/admin-token)"
        )
    configs = [
        AgentConfig(
            controller_url=url,
            token=token,
            facts=detect(name=f"local-{i + 1}", lanes=lanes),
            work_dir=settings.data_dir / "work" / f"local-{i + 1}",
        )
        for i in range(workers)
    ]
    agents = [asyncio.create_task(Agent(c).run(stop)) for c in configs]
    await stop.wait()
    await asyncio.gather(*agents, return_exceptions=True)
    server.should_exit = True
    await serving
    store.close()


def farm(
    data_dir: Annotated[Path, typer.Option(help="where the farm keeps its database")] = Path(
        "farm"
    ),
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    port: Annotated[int, typer.Option()] = 8420,
    workers: Annotated[int, typer.Option(min=0, help="local workers")] = 2,
    lanes: Annotated[int, typer.Option(min=1, help="lanes per worker")] = 1,
    heartbeat: Annotated[float, typer.Option(help="seconds between heartbeats")] = 5.0,
    lease: Annotated[float, typer.Option(help="seconds of silence before a worker is lost")] = 15.0,
) -> None:
    """Run an embedded farm: controller on SQLite plus local workers. Ctrl-C stops all."""
    settings = ControllerSettings(data_dir=data_dir.resolve(), heartbeat_s=heartbeat, lease_s=lease)
    asyncio.run(run_farm(settings, host=host, port=port, workers=workers, lanes=lanes))
    typer.echo("farm stopped")


def register(app: typer.Typer) -> None:
    app.command("farm")(farm)
