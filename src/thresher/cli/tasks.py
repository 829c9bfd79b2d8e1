"""Task commands: `tasks JOB`, `log TASK`, `task show|retry|skip TASK`.

A task is named `JOB/INDEX` (block 0) or `JOB/BLOCK/INDEX`.
"""

# Annotations here are values, not strings (no `from __future__ import annotations`): see
# thresher.cli.main on why.

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated

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
from thresher.core.states import TASK_FINAL

if TYPE_CHECKING:
    from thresher.client import Client


@dataclass(frozen=True)
class TaskRef:
    job: int
    block: int
    index: int

    def __str__(self) -> str:
        return f"{self.job}/{self.block}/{self.index}"


def parse_task_ref(text: str) -> TaskRef:
    """`JOB/INDEX` or `JOB/BLOCK/INDEX` as a TaskRef; anything else is refused."""
    parts = text.split("/")
    if len(parts) not in (2, 3) or not all(p.isdigit() for p in parts):
        raise typer.BadParameter(f"expected JOB/INDEX or JOB/BLOCK/INDEX, got {text!r}")
    numbers = [int(p) for p in parts]
    if len(numbers) == 2:
        return TaskRef(numbers[0], 0, numbers[1])
    return TaskRef(*numbers)


TaskArg = Annotated[
    TaskRef,
    typer.Argument(
        metavar="TASK",
        parser=parse_task_ref,
        help="JOB/INDEX or JOB/BLOCK/INDEX.",
        show_default=False,
    ),
]


def frames_text(frames: list[int]) -> str:
    from thresher.core.frames import FrameSet  # here: every other command starts without it

    return FrameSet.from_frames(frames).spec if frames else "-"


def tasks(
    job_id: Annotated[int, typer.Argument(metavar="JOB", help="Job id.", show_default=False)],
    block: Annotated[int, typer.Option("--block", "-b", min=0, help="Block index.")] = 0,
    offset: Annotated[int, typer.Option("--offset", min=0)] = 0,
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000)] = 100,
    status: Annotated[
        list[str] | None,
        typer.Option("--status", "-s", help="Only tasks in this status (within the page)."),
    ] = None,
    as_json: JsonOption = False,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
) -> None:
    """List a page of a job's tasks, waiting ones included."""
    with connect(url, token) as client:
        page = client.tasks(job_id, block=block, offset=offset, limit=limit)
    shown = [t for t in page.tasks if not status or t.status in status]
    if as_json:
        print_json(shown)
        return
    last = page.offset + len(page.tasks)
    caption = f"tasks {page.offset}-{max(page.offset, last - 1)} of {page.total}"
    rows = table(
        "index", "frames", "status", "worker", "attempts", "failures", "progress", caption=caption
    )
    for task in shown:
        add_row(
            rows,
            str(task.index),
            frames_text(task.frames),
            task.status,
            task.worker or "-",
            str(task.attempts),
            str(task.failures),
            "-" if task.progress is None else f"{task.progress:.0f}%",
        )
    stdout().print(rows)


def log(
    task: TaskArg,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing until the task ends.")
    ] = False,
    every: Annotated[float, typer.Option("--every", min=0.1, help="Seconds between polls.")] = 0.5,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
) -> None:
    """Print a task's output, every attempt's lines in order."""
    with connect(url, token) as client:
        after = 0
        while True:
            # Read the status before the lines: once it is final, no line can follow the page.
            final = not follow or _status(client, task) in TASK_FINAL
            after = _print_log(client, task, after=after)
            if final:
                return
            time.sleep(every)


def _status(client: "Client", task: TaskRef) -> str:
    return client.task(task.job, task.index, block=task.block).status


def _print_log(client: "Client", task: TaskRef, *, after: int) -> int:
    """Print the lines after line id `after`; return the id of the last line printed."""
    while lines := client.log(task.job, task.index, block=task.block, after=after):
        for line in lines:
            typer.echo(line.text)
        after = lines[-1].id
    return after


def show_task(
    task: TaskArg,
    as_json: JsonOption = False,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
) -> None:
    """Show a task and its attempts."""
    with connect(url, token) as client:
        detail = client.task(task.job, task.index, block=task.block)
        waiting = detail.status in ("waiting", "queued")
        why = client.task_why(task.job, task.index, block=task.block) if waiting else None
    if as_json:
        print_json(detail)
        return
    out = stdout()
    out.print(
        f"[bold]task {task}[/] frames {frames_text(detail.frames)}: {detail.status}", soft_wrap=True
    )
    for reason in why.reasons if why else []:
        count = f" ({reason.workers} workers)" if reason.workers else ""
        out.print(f"  waits: {reason.text}{count}", soft_wrap=True, markup=False)
    rows = table("attempt", "worker", "status", "exit", "duration", "peak RAM", "message")
    for attempt in detail.attempts_detail:
        add_row(
            rows,
            str(attempt.id),
            attempt.worker,
            attempt.status,
            "-" if attempt.exit_code is None else str(attempt.exit_code),
            "-" if attempt.duration_s is None else f"{attempt.duration_s:.1f}s",
            _mib(attempt.peak_rss_bytes),
            attempt.message or "",
        )
    out.print(rows)


def _mib(size: int | None) -> str:
    return "-" if size is None else f"{size / 2**20:.0f} MiB"


def retry_task(task: TaskArg, url: UrlOption = DEFAULT_URL, token: TokenOption = None) -> None:
    """Requeue a task."""
    with connect(url, token) as client:
        client.retry_task(task.job, task.index, block=task.block)
        status = _status(client, task)
    typer.echo(f"task {task}: {status}")


def skip_task(task: TaskArg, url: UrlOption = DEFAULT_URL, token: TokenOption = None) -> None:
    """Mark a task skipped (counted as done; stops it if it runs)."""
    with connect(url, token) as client:
        client.skip_task(task.job, task.index, block=task.block)
        status = _status(client, task)
    typer.echo(f"task {task}: {status}")


def register(app: typer.Typer) -> None:
    app.command("tasks")(tasks)
    app.command("log")(log)
    task_app = typer.Typer(name="task", help="One task.", no_args_is_help=True)
    task_app.command("show")(show_task)
    task_app.command("retry")(retry_task)
    task_app.command("skip")(skip_task)
    app.add_typer(task_app)
