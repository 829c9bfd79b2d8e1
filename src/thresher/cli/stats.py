"""`thresher stats`: frames and render hours by engine, user, site, host and day; failure
rates; queue waits. What the controller computes from the attempt history (GET /api/v1/stats)."""

# Annotations here are values, not strings (no `from __future__ import annotations`): see
# thresher.cli.main on why.

import time
from typing import Annotated, Any

import typer

from thresher.cli.common import (
    DEFAULT_URL,
    JsonOption,
    TokenOption,
    UrlOption,
    add_row,
    print_json,
    session,
    stdout,
    table,
)
from thresher.cli.durations import duration_text

GROUPS = (
    ("by_engine", "engine"),
    ("by_user", "user"),
    ("by_site", "site"),
    ("by_host", "host"),
    ("by_day", "day (UTC)"),
)


def stats(
    days: Annotated[
        float,
        typer.Option("--days", min=0, help="Attempts that ended in the last N days; 0: all."),
    ] = 7.0,
    as_json: JsonOption = False,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
) -> None:
    """Farm statistics: frames and render hours by engine, user, site, host and day; failure
    rates; queue waits by user."""
    since = time.time() - days * 86400 if days else 0.0
    with session(url, token) as client:
        found: dict[str, Any] = client.get_json("/api/v1/stats", since=since)
    if as_json:
        print_json(found)
        return
    out = stdout()
    for key, title in GROUPS:
        rows = table(title, "frames", "render h", "CPU h", "attempts", "failed", "failure rate")
        for r in found[key]:
            add_row(
                rows,
                r["key"],
                str(r["frames"]),
                f"{r['render_hours']:.2f}",
                f"{r['cpu_hours']:.2f}",
                str(r["attempts"]),
                str(r["failed"]),
                f"{100 * r['failure_rate']:.1f}%",
            )
        out.print(rows)
    waits = table("user", "jobs", "mean wait", "longest wait", caption="submit to first task")
    for w in found["queue_wait_by_user"]:
        add_row(
            waits, w["key"], str(w["jobs"]), duration_text(w["mean_s"]), duration_text(w["max_s"])
        )
    out.print(waits)


def register(app: typer.Typer) -> None:
    app.command("stats")(stats)
