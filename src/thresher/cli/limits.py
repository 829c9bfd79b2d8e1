"""`thresher limits` (licenses: list, set, delete) and `thresher users` (priority, caps)."""

# Annotations here are values, not strings (no `from __future__ import annotations`): see
# thresher.cli.main on why.

from typing import TYPE_CHECKING, Annotated

import typer

from thresher.cli.common import (
    DEFAULT_URL,
    JsonOption,
    TokenOption,
    UrlOption,
    connect,
    listing,
    print_json,
)

if TYPE_CHECKING:
    from thresher.schemas import api

LimitName = Annotated[str, typer.Argument(metavar="NAME", help="Limit name.", show_default=False)]


def _most(value: int | None) -> str:
    return "-" if value is None else str(value)


def _hosts(limit: "api.LimitOut") -> str:
    return ", ".join(f"{h}:{n}" for h, n in sorted(limit.hosts.items())) or "-"


def list_limits(
    ctx: typer.Context,
    as_json: JsonOption = False,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
) -> None:
    """List limits with their maximums and usage; the subcommands change them."""
    if ctx.invoked_subcommand is not None:
        return
    with connect(url, token) as client:
        found = client.limits()
    listing(
        found,
        as_json,
        ("name", "in use", "max", "per host", "max hosts", "held by"),
        lambda limit: (
            limit.name,
            str(limit.in_use),
            _most(limit.max_total),
            _most(limit.max_per_host),
            _most(limit.max_hosts),
            _hosts(limit),
        ),
    )


def set_limit(
    name: LimitName,
    max_total: Annotated[
        int | None, typer.Option("--max", min=0, help="Units farm-wide (default: no maximum).")
    ] = None,
    per_host: Annotated[
        int | None, typer.Option("--per-host", min=0, help="Units on one host.")
    ] = None,
    max_hosts: Annotated[
        int | None, typer.Option("--max-hosts", min=0, help="Hosts holding units at once.")
    ] = None,
    as_json: JsonOption = False,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
) -> None:
    """Create a limit or set its maximums (admins). Omitted maximums are removed."""
    with connect(url, token) as client:
        limit = client.set_limit(
            name, max_total=max_total, max_per_host=per_host, max_hosts=max_hosts
        )
    if as_json:
        print_json(limit)
        return
    typer.echo(
        f"limit {limit.name}: max {_most(limit.max_total)}, per host "
        f"{_most(limit.max_per_host)}, max hosts {_most(limit.max_hosts)}; {limit.in_use} in use"
    )


def delete_limit(name: LimitName, url: UrlOption = DEFAULT_URL, token: TokenOption = None) -> None:
    """Delete a limit (admins); tasks holding it keep running, new ones are not held back."""
    with connect(url, token) as client:
        client.delete_limit(name)
    typer.echo(f"limit {name}: deleted")


def list_users(
    ctx: typer.Context,
    as_json: JsonOption = False,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
) -> None:
    """List users with their priority, cap and running tasks; `set` changes them."""
    if ctx.invoked_subcommand is not None:
        return
    with connect(url, token) as client:
        found = client.users()
    listing(
        found,
        as_json,
        ("name", "priority", "max running", "running"),
        lambda user: (user.name, str(user.priority), _most(user.max_running), str(user.running)),
    )


def set_user(
    name: Annotated[str, typer.Argument(metavar="NAME", help="User (token) name.")],
    priority: Annotated[
        int, typer.Option("--priority", "-p", min=0, max=100, help="Orders equal-priority jobs.")
    ] = 0,
    max_running: Annotated[
        int | None, typer.Option("--max-running", min=1, help="Running tasks at most.")
    ] = None,
    as_json: JsonOption = False,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
) -> None:
    """Set a user's priority and cap of running tasks (admins)."""
    with connect(url, token) as client:
        user = client.set_user(name, priority=priority, max_running=max_running)
    if as_json:
        print_json(user)
        return
    typer.echo(f"user {user.name}: priority {user.priority}, max running {_most(user.max_running)}")


def register(app: typer.Typer) -> None:
    limits_app = typer.Typer(name="limits", help="Limits (licenses) and their usage.")
    limits_app.callback(invoke_without_command=True)(list_limits)
    limits_app.command("set")(set_limit)
    limits_app.command("delete")(delete_limit)
    app.add_typer(limits_app)
