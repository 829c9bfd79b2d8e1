"""`thresher farm`: a controller on SQLite and local workers in one process."""

from __future__ import annotations

import asyncio
import contextlib
import platform
import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer
import uvicorn

from thresher.cli.files import files_token
from thresher.controller.app import Server, create_app, listen_socket, server_config
from thresher.controller.auth import ensure_admin_token, private_dir
from thresher.controller.settings import ControllerSettings
from thresher.core.clock import SystemClock
from thresher.engines.platforms import normalize_os
from thresher.files.server import listen, server
from thresher.files.service import FileService
from thresher.files.store import ChunkStore
from thresher.store.db import sqlite_url
from thresher.store.sites import SiteRecord
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
    files_port: int = 0,
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
    files_server, files_sock = embedded_files(settings.data_dir, store, host=host, port=files_port)
    stop = stop or asyncio.Event()
    if threading.current_thread() is threading.main_thread():
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    files_serving = asyncio.create_task(files_server.serve(sockets=[files_sock]))
    while not server.started:
        if serving.done():
            serving.result()
        await asyncio.sleep(0.02)
    if announce:
        if written:
            typer.echo(f"admin token written to {written}")
        typer.echo(f"thresher farm listening on {url}")
        files_url = f"http://{host}:{files_sock.getsockname()[1]}"
        typer.echo(f"  main site file service on {files_url}")
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
    files_server.should_exit = True
    await serving
    await files_serving
    store.close()


def embedded_files(
    data_dir: Path, store: Store, *, host: str, port: int
) -> tuple[uvicorn.Server, socket.socket]:
    """The main site's file service, served in the farm's process: its chunk store under
    DATA_DIR/files, the volumes' roots at the main site read from the farm's store. The main
    site is declared with it unless a site is already the main one."""
    root = data_dir / "files"
    token = files_token(root, None)
    sock = listen(host, port)
    url = f"http://{host}:{sock.getsockname()[1]}"
    sites = store.sites.sites()
    main = next((s for s in sites if s.main), None)
    site = main.name if main else "hq"
    if main is None or main.file_service_url is None:
        record = SiteRecord(site, "main site", True, url, None, 4, time.time(), token)
        store.sites.set_site(record)
    os_name = normalize_os(platform.system())

    def volume_root(volume: str) -> Path | None:
        found = store.sites.volumes().get(volume)
        root = found.root_for(site, os_name) if found else None
        return Path(root) if root else None

    service = FileService(ChunkStore(root / "store"), token=token, site=site, roots=volume_root)
    return server(service), sock


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
    files_port: Annotated[
        int, typer.Option(help="the main site's file service (0: a free port)")
    ] = 8421,
) -> None:
    """Run an embedded farm: controller on SQLite plus local workers. Ctrl-C stops all."""
    settings = ControllerSettings(data_dir=data_dir.resolve(), heartbeat_s=heartbeat, lease_s=lease)
    asyncio.run(
        run_farm(
            settings, host=host, port=port, workers=workers, lanes=lanes, files_port=files_port
        )
    )
    typer.echo("farm stopped")


def register(app: typer.Typer) -> None:
    app.command("farm")(farm)
