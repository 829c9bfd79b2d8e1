"""`thresher controller`: serve the controller until Ctrl-C; `serve_controller` for embedding."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated

import typer

from thresher.cli.common import stderr, stdout
from thresher.controller.app import (
    Server,
    create_app,
    listen_socket,
    new_event_loop,
    server_config,
)
from thresher.controller.auth import ensure_admin_token, private_dir
from thresher.controller.observe import configure_logging
from thresher.controller.settings import ControllerSettings, SmtpSettings
from thresher.core.clock import SystemClock
from thresher.store.cluster import exclusive
from thresher.store.db import sqlite_url
from thresher.store.store import Store

DEFAULT_PORT = 8420


class _Server(Server):
    """uvicorn's server, but a SIGINT or SIGTERM ends `serve` normally after the graceful
    shutdown instead of being raised again (which surfaced as a KeyboardInterrupt traceback
    from the serving task). A second Ctrl-C still cuts the graceful shutdown short."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        handled = (signal.SIGINT, signal.SIGTERM)
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in handled}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def serve_controller(
    settings: ControllerSettings,
    *,
    host: str,
    port: int,
    ready: Callable[[str], None] | None = None,
    say: Callable[[str], None] | None = None,
    stop: threading.Event | None = None,
    tune_collector: bool = False,
) -> None:
    """Serve a controller over `settings` on host:port until stopped.

    Creates the data directory, opens the store and, on first start, writes the admin token
    (reported through `say`). `ready` is called with the URL once the server accepts
    connections; port 0 picks a free port, and the URL names the one chosen. Setting `stop`
    ends the server gracefully from another thread; in the main thread Ctrl-C or SIGTERM ends
    it too, and this returns once the server is down. Raises OSError when the address cannot
    be bound and RuntimeError when the app fails to start. `tune_collector`: the process is
    the controller's own (`thresher controller`), its garbage collector is tuned once it serves
    (`collector.tune`); never for a controller embedded in another program or a test run,
    whose collector is theirs (a frozen collector keeps the garbage of the moment forever).
    """
    private_dir(settings.data_dir)
    store = Store.open(settings.database_url or sqlite_url(settings.data_dir))
    try:
        clock = SystemClock()
        with exclusive(store.engine, "startup"):  # controllers started together: one token
            written = ensure_admin_token(store, clock, settings.data_dir)
        if written and say is not None:
            say(f"admin token written to {written}")
        sock = listen_socket(host, port)
        scheme = "https" if settings.tls_certfile else "http"
        url = _url(host, sock.getsockname()[1], scheme=scheme)
        app = create_app(settings, store=store, clock=clock)
        server = _Server(server_config(app, settings))
        server.tunes_collector = tune_collector
        try:
            with asyncio.Runner(loop_factory=new_event_loop) as runner:
                runner.run(_serve(server, sock, url=url, ready=ready, stop=stop))
        except SystemExit:
            # uvicorn exits the process when the app's startup fails; embedders want an error.
            if not server.started:
                raise RuntimeError("the controller failed to start (see the log above)") from None
            raise
        finally:
            sock.close()
    finally:
        store.close()


async def _serve(
    server: Server,
    sock: socket.socket,
    *,
    url: str,
    ready: Callable[[str], None] | None,
    stop: threading.Event | None,
) -> None:
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    announced = False
    while not serving.done():
        if not announced and server.started:
            announced = True
            if ready is not None:
                ready(url)
        if stop is not None and stop.is_set():
            server.should_exit = True
        await asyncio.wait({serving}, timeout=0.05)
    serving.result()


def _url(host: str, port: int, *, scheme: str = "http") -> str:
    return f"{scheme}://[{host}]:{port}" if ":" in host else f"{scheme}://{host}:{port}"


def controller(
    data_dir: Annotated[
        Path, typer.Option("--data-dir", help="Where the database and admin token live.")
    ],
    database_url: Annotated[
        str | None,
        typer.Option(
            "--database-url",
            envvar="THRESHER_DATABASE_URL",
            help="SQLAlchemy URL, e.g. postgresql+psycopg://...; default: SQLite in --data-dir.",
        ),
    ] = None,
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535)] = DEFAULT_PORT,
    heartbeat: Annotated[
        float, typer.Option("--heartbeat", min=0.1, help="Seconds between worker polls.")
    ] = 5.0,
    lease: Annotated[
        float,
        typer.Option("--lease", min=0.1, help="Seconds of silence before a worker is offline."),
    ] = 15.0,
    disk_low_gb: Annotated[
        float, typer.Option(min=0, help="a worker with less free disk is worker.disk_low")
    ] = 2.0,
    smtp_host: Annotated[
        str | None, typer.Option(help="SMTP server of e-mail notifications (none: no e-mail)")
    ] = None,
    smtp_port: Annotated[int, typer.Option(min=1, max=65535)] = 25,
    smtp_from: Annotated[str, typer.Option(help="their From address")] = "thresher@localhost",
    smtp_starttls: Annotated[bool, typer.Option("--smtp-starttls")] = False,
    smtp_user: Annotated[
        str | None, typer.Option(help="SMTP login (password: $THRESHER_SMTP_PASSWORD)")
    ] = None,
    tls_cert: Annotated[
        Path | None,
        typer.Option(
            "--tls-cert",
            envvar="THRESHER_TLS_CERT",
            exists=True,
            dir_okay=False,
            help="serve https with this certificate (PEM chain); needs --tls-key",
        ),
    ] = None,
    secret_key_file: Annotated[
        Path | None,
        typer.Option(
            "--secret-key-file",
            envvar="THRESHER_SECRET_KEY_FILE",
            dir_okay=False,
            help="key sealing access-key secrets (created 0600 if missing); controllers "
            "sharing a database share it  [default: DATA_DIR/secret.key]",
        ),
    ] = None,
    tls_key: Annotated[
        Path | None,
        typer.Option(
            "--tls-key",
            envvar="THRESHER_TLS_KEY",
            exists=True,
            dir_okay=False,
            help="the certificate's private key (PEM)",
        ),
    ] = None,
    log_format: Annotated[
        str,
        typer.Option(
            "--log-format",
            envvar="THRESHER_LOG_FORMAT",
            help="text, or json: one JSON object a line, with the request id.",
        ),
    ] = "text",
    log_level: Annotated[
        str,
        typer.Option(
            "--log-level",
            envvar="THRESHER_LOG_LEVEL",
            help="warning, info (a line per request) or debug.",
        ),
    ] = "warning",
) -> None:
    """Run the controller: the REST API, the scheduler and the sweeper of silent workers."""
    if lease <= heartbeat:
        raise typer.BadParameter("must be longer than --heartbeat", param_hint="--lease")
    if (tls_cert is None) != (tls_key is None):
        raise typer.BadParameter("--tls-cert and --tls-key go together", param_hint="--tls-key")
    if log_format not in ("text", "json"):
        raise typer.BadParameter("must be text or json", param_hint="--log-format")
    level = logging.getLevelNamesMapping().get(log_level.upper())
    if level is None:
        raise typer.BadParameter("must be debug, info, warning or error", param_hint="--log-level")
    configure_logging(json_lines=log_format == "json", level=level)
    settings = ControllerSettings(
        data_dir=data_dir,
        database_url=database_url,
        heartbeat_s=heartbeat,
        lease_s=lease,
        disk_low_bytes=int(disk_low_gb * 2**30),
        smtp=SmtpSettings(
            host=smtp_host,
            port=smtp_port,
            sender=smtp_from,
            starttls=smtp_starttls,
            user=smtp_user,
            password=os.environ.get("THRESHER_SMTP_PASSWORD"),
        ),
        tls_certfile=tls_cert,
        tls_keyfile=tls_key,
        secret_key_file=secret_key_file,
    )
    out = stdout()

    def ready(url: str) -> None:
        out.print(f"thresher controller listening on {url}", soft_wrap=True, markup=False)
        out.file.flush()

    try:
        serve_controller(  # until Ctrl-C or SIGTERM, both graceful
            settings,
            host=host,
            port=port,
            ready=ready,
            say=lambda line: out.print(line, soft_wrap=True, markup=False),
            tune_collector=True,  # this process is the controller's own
        )
    except OSError as exc:
        stderr().print(f"error: {exc}", style="red", markup=False, soft_wrap=True)
        raise typer.Exit(1) from None
    out.print("thresher controller stopped")


def register(app: typer.Typer) -> None:
    app.command("controller")(controller)
