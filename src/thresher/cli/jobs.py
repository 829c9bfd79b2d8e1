"""Job commands: `jobs`, `job show`, `job why`, `pause`, `resume`, `cancel`, `retry`,
`priority`, `delete`, `watch`."""

# Annotations here are values, not strings (no `from __future__ import annotations`): see
# thresher.cli.main on why.

from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from thresher.cli.common import (
    DEFAULT_URL,
    JsonOption,
    TokenOption,
    UrlOption,
    add_row,
    connect,
    print_json,
    session,
    stdout,
    table,
)
from thresher.cli.durations import duration_text, eta_text

if TYPE_CHECKING:
    from thresher.client import Client
    from thresher.schemas import api

#: Job statuses after which nothing more runs unless someone retries.
FINAL = frozenset({"succeeded", "failed", "canceled"})
#: Job statuses whose reasons `job show` prints.
WAITS = frozenset({"waiting", "queued", "paused"})

JobId = Annotated[int, typer.Argument(metavar="JOB", help="Job id.", show_default=False)]


def done(job: "api.JobOut") -> int:
    """Tasks that count as finished for progress: succeeded or skipped."""
    return job.counts.succeeded + job.counts.skipped


def jobs(
    status: Annotated[
        list[str] | None,
        typer.Option("--status", "-s", help="Only jobs in this status; repeatable."),
    ] = None,
    owner: Annotated[str | None, typer.Option("--owner", help="Only this owner's jobs.")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000)] = 100,
    as_json: JsonOption = False,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
) -> None:
    """List jobs."""
    params = {"status": status or None, "owner": owner, "limit": limit}
    # JSON as the controller answers it, without the response models: `thresher jobs` is the
    # command people run most, and pydantic would double its start time (docs/performance.md).
    found: list[dict[str, Any]] = []
    with session(url, token) as client:
        while len(found) < limit:  # a page may hold fewer: the controller bounds its bytes
            rest = {"limit": limit - len(found), "offset": len(found)}
            page = client.get_json("/api/v1/jobs", **{**params, **rest})
            found += page["jobs"]
            if not page.get("more"):
                break
    if as_json:
        print_json(found)
        return
    rows = table("id", "name", "owner", "priority", "status", "done", "running", "failed", "ETA")
    for job in found:
        counts = job["counts"]
        add_row(
            rows,
            str(job["id"]),
            job["name"],
            job["owner"],
            str(job["priority"]),
            job["status"],
            f"{counts['succeeded'] + counts['skipped']}/{counts['total']}",
            str(counts["running"]),
            str(counts["failed"]),
            eta_text(job, job.get("eta_s")),
        )
    stdout().print(rows)


def show(
    job_id: JobId,
    as_json: JsonOption = False,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
) -> None:
    """Show a job, its blocks and its task counts."""
    with connect(url, token) as client:
        job = client.job(job_id)
        wait = client.why(job_id) if job.status in WAITS else None
    if as_json:
        print_json(job)
        return
    out = stdout()
    reason = f" ({job.status_reason})" if job.status_reason else ""
    out.print(f"[bold]job {job.id}[/] {escape(job.name)}: {job.status}{escape(reason)}")
    lines = [f"owner {job.owner}, priority {job.priority}, kind {job.kind}"]
    if job.after:
        lines.append(f"after jobs {', '.join(map(str, job.after))}")
    lines.append(f"tasks: {counts_text(job.counts)}")
    for block in job.blocks:
        chunk = block.chunk or "adaptive"  # 0: an OpenJD step's chunks sized to run times
        lines.append(
            f"block {block.index} {block.name}: frames {block.frames}, chunk {chunk}, "
            f"{counts_text(block.counts)}"
        )
    if wait is not None:
        lines += why_lines(wait)
    for line in lines:
        out.print(line, markup=False, soft_wrap=True)


def why(
    job_id: JobId,
    as_json: JsonOption = False,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
) -> None:
    """Say why a job waits: paused, on other jobs, or for each block why no worker runs it."""
    with connect(url, token) as client:
        wait = client.why(job_id)
    if as_json:
        print_json(wait)
        return
    out = stdout()
    out.print(f"job {wait.job_id}: {wait.status}", markup=False)
    for line in why_lines(wait):
        out.print(line, markup=False, soft_wrap=True)


def why_lines(wait: "api.WhyOut") -> list[str]:
    """The reasons, a line each: the job's own, else per block, with how many workers."""
    if wait.reason is not None:
        return [f"waits: {wait.reason}"]
    lines = []
    for block in wait.blocks:
        lines.append(f"block {block.block} {block.name}: {block.waiting_tasks} tasks to run")
        for reason in block.reasons:
            on = (
                f" ({reason.workers} worker{'s' * (reason.workers != 1)})" if reason.workers else ""
            )
            lines.append(f"  {reason.text}{on}")
    return lines


def counts_text(counts: "api.Counts") -> str:
    """`10 total: 8 succeeded, 2 running`, naming only the states that hold tasks."""
    held = [f"{n} {state}" for state, n in counts.model_dump().items() if n and state != "total"]
    return f"{counts.total} total: {', '.join(held)}" if held else f"{counts.total} total"


def _action(act: "Callable[[Client], api.ActionOut]", url: str, token: str | None) -> None:
    with connect(url, token) as client:
        result = act(client)
    extra = f" ({result.affected} tasks)" if result.affected else ""
    typer.echo(f"job {result.id}: {result.status}{extra}")


def pause(job_id: JobId, url: UrlOption = DEFAULT_URL, token: TokenOption = None) -> None:
    """Pause a job: no new tasks start; running ones are stopped and requeued."""
    _action(lambda client: client.pause(job_id), url, token)


def resume(job_id: JobId, url: UrlOption = DEFAULT_URL, token: TokenOption = None) -> None:
    """Resume a paused job."""
    _action(lambda client: client.resume(job_id), url, token)


def cancel(job_id: JobId, url: UrlOption = DEFAULT_URL, token: TokenOption = None) -> None:
    """Cancel a job: its running tasks are stopped and nothing more runs."""
    _action(lambda client: client.cancel(job_id), url, token)


def retry(job_id: JobId, url: UrlOption = DEFAULT_URL, token: TokenOption = None) -> None:
    """Requeue a job's failed and canceled tasks."""
    _action(lambda client: client.retry(job_id), url, token)


def priority(
    job_id: JobId,
    value: Annotated[int, typer.Argument(metavar="N", min=0, max=100, help="0-100.")],
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
) -> None:
    """Set a job's priority (higher runs first)."""
    with connect(url, token) as client:
        client.set_priority(job_id, value)
        job = client.job(job_id)
    typer.echo(f"job {job.id}: priority {job.priority}")


def delete(
    job_id: JobId,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask.")] = False,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
) -> None:
    """Delete a job with its tasks and logs."""
    if not yes:
        typer.confirm(f"delete job {job_id} with its tasks and logs?", abort=True)
    with connect(url, token) as client:
        client.delete(job_id)
    typer.echo(f"job {job_id}: deleted")


def watch(
    job_id: JobId,
    every: Annotated[
        float, typer.Option("--every", min=0.1, help="Seconds between progress updates.")
    ] = 0.5,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
) -> None:
    """Show a job's progress until it ends; exit 0 when it succeeded, 1 otherwise.

    The controller answers a held wait the moment the job ends (`GET /jobs/{id}/wait`)."""
    with connect(url, token) as client:
        job = _follow(client, job_id, every=every)
    if job.status != "succeeded":
        raise typer.Exit(1)


def _follow(client: "Client", job_id: int, *, every: float) -> "api.JobOut":
    from rich.progress import (  # only `watch` draws a bar
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    job = client.job(job_id)
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=stdout()) as progress:
        bar = progress.add_task(
            escape(f"job {job.id} {job.name}"), total=job.counts.total, status=""
        )
        while True:
            c = job.counts
            status = f"{job.status}, {c.running} running, {c.failed} failed"
            if job.status not in FINAL:
                status += f", ETA {duration_text(job.eta_s)}"
            progress.update(bar, completed=done(job), total=c.total, status=status)
            if job.status in FINAL:
                return job
            job = client.wait(job_id, timeout_s=every)  # at once when it ends


def register(app: typer.Typer) -> None:
    app.command("jobs")(jobs)
    job_app = typer.Typer(name="job", help="One job.", no_args_is_help=True)
    job_app.command("show")(show)
    job_app.command("why")(why)
    app.add_typer(job_app)
    for command in (pause, resume, cancel, retry, priority, delete, watch):
        app.command(command.__name__)(command)
