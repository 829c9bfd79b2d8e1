"""Worker commands: `workers [show|enable|disable|lane|pause|stop|resume|sick|heal]` (and the
enrolment codes of `thresher.cli.security`)."""

# Annotations here are values, not strings (no `from __future__ import annotations`): see
# thresher.cli.main on why.

import datetime as dt
from typing import TYPE_CHECKING, Annotated

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
    listing,
    print_json,
    stdout,
    table,
)

if TYPE_CHECKING:
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
    listing(
        found,
        as_json,
        (
            "name",
            "status",
            "state",
            "enabled",
            "hostname",
            "site",
            "pools",
            "lanes",
            "running",
            "cores",
            "RAM",
        ),
        lambda worker: (
            worker.name,
            worker.status,
            _state(worker),
            "yes" if worker.enabled else "no",
            worker.hostname,
            worker.site,
            join(worker.pools),
            str(worker.lanes),
            str(worker.running),
            str(worker.cores),
            gib(worker.ram_bytes),
        ),
    )


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


def _describe(worker: "api.WorkerOut") -> None:
    out = stdout()
    state = "enabled" if worker.enabled else "disabled"
    out.print(f"[bold]{escape(worker.name)}[/]: {worker.status}, {state}", soft_wrap=True)
    rows = {
        "hostname": worker.hostname,
        "os": worker.os,
        "site": worker.site,
        "pools": join(worker.pools)
        + (
            ""
            if worker.pools_declared is None
            else f" (set from the controller; declared: {join(worker.pools_declared)})"
        ),
        "lanes": f"{worker.running} of {worker.lanes} running",
        "state": _state(worker),
        "capacity": f"{worker.capacity_used} of {worker.capacity} units in use",
        "cores": str(worker.cores),
        "RAM": gib(worker.ram_bytes),
        "GPUs": str(worker.gpus),
        **{
            f"lane {lane.index}": ("anything" if lane.engines is None else ", ".join(lane.engines))
            + (" (set from the controller)" if lane.overridden else "")
            + (f"; GPUs {', '.join(str(g) for g in lane.gpus)}" if lane.gpus else "")
            for lane in worker.lanes_detail
        },
        **{f"attribute {k}": v for k, v in sorted(worker.attributes.items())},
    }
    for key, value in rows.items():
        out.print(f"  {key}: {value}", markup=False, soft_wrap=True)


def _state(worker: "api.WorkerOut") -> str:
    """NIMBY and sickness in a word or two: `ok` when neither holds the worker."""
    words = []
    if worker.nimby:
        words.append(worker.nimby)
    if worker.local_nimby:
        words.append(f"{worker.local_nimby} locally")
    if worker.sick_since is not None:
        words.append("sick")
    return ", ".join(words) or "ok"


def lane(
    name: WorkerName,
    index: Annotated[int, typer.Argument(metavar="LANE", min=0, help="Lane number (from 0).")],
    engines: Annotated[
        str | None,
        typer.Option("--engines", metavar="E,...", help="Engines or job kinds the lane runs."),
    ] = None,
    anything: Annotated[bool, typer.Option("--any", help="The lane runs anything.")] = False,
    reset: Annotated[
        bool, typer.Option("--reset", help="Back to what the worker declared.")
    ] = False,
    as_json: JsonOption = False,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
) -> None:
    """Set what a worker's lane runs (admins); it counts from the worker's next poll."""
    if sum((engines is not None, anything, reset)) != 1:
        raise typer.BadParameter("give one of --engines, --any or --reset")
    with connect(url, token) as client:
        if reset:
            worker = client.reset_lane(name, index)
        else:
            names = None if anything else [e.strip() for e in (engines or "").split(",")]
            worker = client.set_lane(name, index, names)
    if as_json:
        print_json(worker)
        return
    shown = next((x for x in worker.lanes_detail if x.index == index), None)
    runs = "anything" if shown is None or shown.engines is None else ", ".join(shown.engines)
    typer.echo(f"worker {worker.name} lane {index}: runs {runs}")


def pools(
    name: WorkerName,
    set_: Annotated[
        str | None,
        typer.Option("--set", metavar="P,...", help="Exactly these pools (empty: none)."),
    ] = None,
    add: Annotated[str | None, typer.Option("--add", metavar="P,...", help="Join pools.")] = None,
    remove: Annotated[
        str | None, typer.Option("--remove", metavar="P,...", help="Leave pools.")
    ] = None,
    reset: Annotated[
        bool, typer.Option("--reset", help="Back to the pools the worker declared.")
    ] = False,
    as_json: JsonOption = False,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
) -> None:
    """Set a worker's pools (admins): from now on and across its restarts, until --reset."""
    editing = set_ is not None or add is not None or remove is not None
    if reset == editing or (set_ is not None and (add is not None or remove is not None)):
        raise typer.BadParameter("give --set, or --add and/or --remove, or --reset")

    def names(text: str | None) -> list[str]:
        return [p.strip() for p in (text or "").split(",") if p.strip()]

    with connect(url, token) as client:
        if reset:
            worker = client.reset_pools(name)
        else:
            chosen = names(set_) if set_ is not None else list(client.worker(name).pools)
            chosen = [p for p in dict.fromkeys([*chosen, *names(add)]) if p not in names(remove)]
            worker = client.set_pools(name, chosen)
    if as_json:
        print_json(worker)
        return
    typer.echo(f"worker {worker.name}: pools {join(worker.pools) or '(none)'}")


def pause(name: WorkerName, url: UrlOption = DEFAULT_URL, token: TokenOption = None) -> None:
    """NIMBY: the worker finishes its tasks and takes no new ones."""
    with connect(url, token) as client:
        worker = client.pause_worker(name)
    typer.echo(f"worker {worker.name}: paused")


def stop(name: WorkerName, url: UrlOption = DEFAULT_URL, token: TokenOption = None) -> None:
    """NIMBY: the worker also stops its tasks now; they go back to the queue."""
    with connect(url, token) as client:
        worker = client.stop_worker(name)
    typer.echo(f"worker {worker.name}: stopped")


def resume(name: WorkerName, url: UrlOption = DEFAULT_URL, token: TokenOption = None) -> None:
    """End a NIMBY pause or stop set from the controller."""
    with connect(url, token) as client:
        worker = client.resume_worker(name)
    typer.echo(f"worker {worker.name}: resumed ({_state(worker)})")


def sick(
    as_json: JsonOption = False, url: UrlOption = DEFAULT_URL, token: TokenOption = None
) -> None:
    """List workers marked sick (failing several users' work that ran elsewhere); heal clears."""
    with connect(url, token) as client:
        found = [w for w in client.workers() if w.sick_since is not None]
    if as_json:
        print_json(found)
        return
    rows = table("name", "hostname", "sick since")
    for worker in found:
        since = dt.datetime.fromtimestamp(worker.sick_since or 0).strftime("%Y-%m-%d %H:%M:%S")
        add_row(rows, worker.name, worker.hostname, since)
    stdout().print(rows)


def heal(name: WorkerName, url: UrlOption = DEFAULT_URL, token: TokenOption = None) -> None:
    """Clear a sick worker (admins): it takes work again."""
    with connect(url, token) as client:
        worker = client.clear_sick(name)
    typer.echo(f"worker {worker.name}: cleared ({_state(worker)})")


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


def register(app: typer.Typer) -> None:
    workers_app = typer.Typer(name="workers", help="Workers.")
    workers_app.callback(invoke_without_command=True)(list_workers)
    workers_app.command("show")(show)
    workers_app.command("enable")(enable)
    workers_app.command("disable")(disable)
    for command in (lane, pools, pause, stop, resume, sick, heal):
        workers_app.command(command.__name__)(command)
    from thresher.cli.security import register_workers

    register_workers(workers_app)
    app.add_typer(workers_app)
