"""`thresher events` (what happened) and `thresher subscriptions` (webhooks and e-mail)."""

# Annotations here are values, not strings (no `from __future__ import annotations`): see
# thresher.cli.main on why.

import datetime
from typing import Annotated

import typer

from thresher.cli.common import (
    DEFAULT_URL,
    JsonOption,
    TokenOption,
    UrlOption,
    add_row,
    connect,
    print_json,
    stdout,
    table,
)

SubId = Annotated[int, typer.Argument(metavar="ID", help="Subscription id.", min=1)]


def _when(at: float) -> str:
    return datetime.datetime.fromtimestamp(at).strftime("%Y-%m-%d %H:%M:%S")


def list_events(
    after: Annotated[int, typer.Option(min=0, help="Events after this id.")] = 0,
    job: Annotated[int | None, typer.Option(min=1, help="One job's events.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 100,
    as_json: JsonOption = False,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
) -> None:
    """Recent events: your jobs' (an admin's: every job's and the workers')."""
    with connect(url, token) as client:
        found = client.events(after=after, job_id=job, limit=limit)
    if as_json:
        print_json(found)
        return
    rows = table("id", "when", "kind", "job", "owner", "worker", "about")
    for e in found:
        about = ", ".join(f"{k}={v}" for k, v in sorted(e.data.items()) if k != "tasks")
        add_row(
            rows,
            str(e.id),
            _when(e.created_at),
            e.kind,
            str(e.job_id or "-"),
            e.owner or "-",
            e.worker or "-",
            about[:80],
        )
    stdout().print(rows)


def list_subscriptions(
    ctx: typer.Context,
    as_json: JsonOption = False,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
) -> None:
    """Your subscriptions (an admin's: everyone's); the subcommands add, show and remove."""
    if ctx.invoked_subcommand is not None:
        return
    with connect(url, token) as client:
        found = client.subscriptions()
    if as_json:
        print_json(found)
        return
    rows = table("id", "owner", "channel", "target", "events", "job", "scope")
    for s in found:
        scope = "all users" if s.all_users else "own jobs"
        add_row(
            rows,
            str(s.id),
            s.owner,
            s.channel,
            s.target,
            ",".join(s.events),
            str(s.job_id or "-"),
            scope,
        )
    stdout().print(rows)


def add_subscription(
    target: Annotated[str, typer.Argument(help="An http(s) URL, or an e-mail address.")],
    events: Annotated[
        str, typer.Option(help="Event kinds, comma-separated: job.succeeded,task.failed,... or *")
    ] = "*",
    job: Annotated[int | None, typer.Option(min=1, help="Only this job's events.")] = None,
    all_users: Annotated[
        bool, typer.Option("--all-users", help="Every user's jobs and the workers (admins).")
    ] = False,
    min_failures: Annotated[
        int, typer.Option(min=1, help="task.failed from this many failures of a task.")
    ] = 1,
    as_json: JsonOption = False,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
) -> None:
    """Subscribe a webhook (an http(s) URL) or an e-mail address; prints the signing secret,
    this once."""
    channel = "webhook" if target.startswith(("http://", "https://")) else "email"
    kinds = [k.strip() for k in events.split(",") if k.strip()]
    with connect(url, token) as client:
        made = client.subscribe(
            channel,
            target,
            events=kinds,
            job_id=job,
            all_users=all_users,
            min_failures=min_failures,
        )
    if as_json:
        print_json(made)
        return
    typer.echo(f"subscription {made.id}: {made.channel} {made.target} ({','.join(made.events)})")
    typer.echo(f"secret (shown once; it signs every delivery): {made.secret}")


def show_subscription(
    sub_id: SubId,
    as_json: JsonOption = False,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
) -> None:
    """A subscription and its deliveries: pending, delivered, failed, with the last error."""
    with connect(url, token) as client:
        found = client.subscription(sub_id)
    if as_json:
        print_json(found)
        return
    typer.echo(f"subscription {found.id}: {found.channel} {found.target}")
    rows = table("event", "status", "tries", "last error")
    for d in found.deliveries:
        add_row(rows, str(d.event_id), d.status, str(d.tries), d.last_error or "-")
    stdout().print(rows)


def remove_subscription(
    sub_id: SubId, url: UrlOption = DEFAULT_URL, token: TokenOption = None
) -> None:
    """Remove a subscription (its pending deliveries are dropped)."""
    with connect(url, token) as client:
        client.unsubscribe(sub_id)
    typer.echo(f"subscription {sub_id}: removed")


def register(app: typer.Typer) -> None:
    app.command("events")(list_events)
    subs = typer.Typer(name="subscriptions", help="Webhooks and e-mail on events.")
    subs.callback(invoke_without_command=True)(list_subscriptions)
    subs.command("add")(add_subscription)
    subs.command("show")(show_subscription)
    subs.command("remove")(remove_subscription)
    app.add_typer(subs)
