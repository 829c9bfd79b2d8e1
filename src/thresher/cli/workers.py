"""Worker and token commands: `workers [show|enable|disable]`, `token create`."""

from __future__ import annotations

from typing import Annotated, Literal

import typer
from rich.markup import escape

from thresher.cli.common import (
    DEFAULT_URL,
    JsonOption,
    TokenOption,
    UrlOption,
    add_row,
    connect,
    join,
    print_json,
    stdout,
    table,
)
from thresher.schemas import api

WorkerName = Annotated[str, typer.Argument(metavar="NAME", help="Worker name.", show_default=False)]


def gib(size: int) -> str:
    return f"{size / 2**30:.1f} GiB"


def list_workers(
    ctx: typer.Context,
    as_json: JsonOption = False,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
) -> None:
    """List workers; the subcommands act on one."""
    if ctx.invoked_subcommand is not None:
        return
    with connect(url, token) as client:
        found = client.workers()
    if as_json:
        print_json(found)
        return
    rows = table(
        "name",
        "status",
        "enabled",
        "hostname",
        "site",
        "pools",
        "lanes",
        "running",
        "cores",
        "RAM",
    )
    for worker in found:
        add_row(
            rows,
            worker.name,
            worker.status,
            "yes" if worker.enabled else "no",
            worker.hostname,
            worker.site,
            join(worker.pools),
            str(worker.lanes),
            str(worker.running),
            str(worker.cores),
            gib(worker.ram_bytes),
        )
    stdout().print(rows)


def show(
    name: WorkerName,
    as_json: JsonOption = False,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
) -> None:
    """Show one worker."""
    with connect(url, token) as client:
        worker = client.worker(name)
    if as_json:
        print_json(worker)
        return
    _describe(worker)


def _describe(worker: api.WorkerOut) -> None:
    out = stdout()
    state = "enabled" if worker.enabled else "disabled"
    out.print(f"[bold]{escape(worker.name)}[/]: {worker.status}, {state}", soft_wrap=True)
    rows = {
        "hostname": worker.hostname,
        "os": worker.os,
        "site": worker.site,
        "pools": join(worker.pools),
        "lanes": f"{worker.running} of {worker.lanes} running",
        "cores": str(worker.cores),
        "RAM": gib(worker.ram_bytes),
        **{f"attribute {k}": v for k, v in sorted(worker.attributes.items())},
    }
    for key, value in rows.items():
        out.print(f"  {key}: {value}", markup=False, soft_wrap=True)


def enable(name: WorkerName, url: UrlOption = DEFAULT_URL, token: TokenOption = None) -> None:
    """Let a worker take tasks again."""
    with connect(url, token) as client:
        worker = client.enable_worker(name)
    typer.echo(f"worker {worker.name}: enabled")


def disable(name: WorkerName, url: UrlOption = DEFAULT_URL, token: TokenOption = None) -> None:
    """Stop giving a worker tasks; the ones it runs finish."""
    with connect(url, token) as client:
        worker = client.disable_worker(name)
    typer.echo(f"worker {worker.name}: disabled")


def create_token(
    name: Annotated[str, typer.Argument(metavar="NAME", help="Who or what the token is for.")],
    role: Annotated[
        Literal["user", "admin", "enrol"],
        typer.Option("--role", help="user: submit and manage jobs; enrol: register workers."),
    ] = "user",
    as_json: JsonOption = False,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
) -> None:
    """Create a token (admins only) and print it; it is shown this once."""
    with connect(url, token) as client:
        created = client.create_token(name, role)
    if as_json:
        print_json(created)
    else:
        typer.echo(created.token)


def register(app: typer.Typer) -> None:
    workers_app = typer.Typer(name="workers", help="Workers.")
    workers_app.callback(invoke_without_command=True)(list_workers)
    workers_app.command("show")(show)
    workers_app.command("enable")(enable)
    workers_app.command("disable")(disable)
    app.add_typer(workers_app)
    token_app = typer.Typer(name="token", help="Bearer tokens.", no_args_is_help=True)
    token_app.command("create")(create_token)
    app.add_typer(token_app)
