"""`thresher pools`: each pool's workers and the jobs naming it; `thresher error-hosts`."""

# Annotations here are values, not strings (no `from __future__ import annotations`): see
# thresher.cli.main on why.

import datetime as dt
from typing import Annotated

import typer

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

JobId = Annotated[int, typer.Argument(metavar="JOB", help="Job id.", show_default=False)]


def list_pools(
    as_json: JsonOption = False, url: UrlOption = DEFAULT_URL, token: TokenOption = None
) -> None:
    """List pools: their workers, and the unfinished jobs that name them (+ only, ~ exclusive,
    @ dedicated)."""
    with connect(url, token) as client:
        found = client.pools()
    if as_json:
        print_json(found)
        return
    rows = table("pool", "workers", "jobs")
    for pool in found:
        jobs = " ".join(
            f"{mode}{','.join(str(j) for j in ids)}" for mode, ids in sorted(pool.jobs.items())
        )
        add_row(rows, pool.name, join(pool.workers), jobs or "-")
    stdout().print(rows)


def _when(stamp: float | None) -> str:
    if stamp is None:
        return "-"
    return dt.datetime.fromtimestamp(stamp).strftime("%Y-%m-%d %H:%M:%S")


def error_hosts(
    job: JobId,
    reset: Annotated[bool, typer.Option("--reset", help="Forgive the hosts now.")] = False,
    block: Annotated[
        int | None, typer.Option("--block", min=0, help="With --reset: only this block.")
    ] = None,
    worker: Annotated[
        str | None, typer.Option("--worker", help="With --reset: only this worker.")
    ] = None,
    as_json: JsonOption = False,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
) -> None:
    """The hosts a job's blocks had errors from and which they avoid now; --reset forgives."""
    with connect(url, token) as client:
        if reset:
            forgotten = client.reset_error_hosts(job, block=block, worker=worker)
            if as_json:
                print_json({"forgotten": forgotten})
            else:
                typer.echo(f"job {job}: {forgotten} error(s) forgotten")
            return
        found = client.error_hosts(job)
    listing(
        found,
        as_json,
        ("block", "worker", "errors", "avoided until", "last error"),
        lambda host: (
            str(host.block),
            host.worker,
            str(host.errors),
            _when(host.avoided_until) if host.avoided else "not avoided",
            _when(host.last_error_at),
        ),
    )


def register(app: typer.Typer) -> None:
    app.command("pools")(list_pools)
    app.command("error-hosts")(error_hosts)
