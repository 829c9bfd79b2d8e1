"""`thresher submit`: a command job from an argv template given after `--`."""

from __future__ import annotations

from typing import Annotated

import typer

from thresher.cli.common import (
    DEFAULT_URL,
    JsonOption,
    TokenOption,
    UrlOption,
    connect,
    print_json,
)

# Engine jobs (--engine/--input/--range/--output) will join the options here; a command job is
# the one kind that takes an argv after `--`.


def parse_env(pairs: list[str]) -> dict[str, str]:
    """`K=V` pairs as a mapping; a pair without `=` or with an empty name is refused."""
    env: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise typer.BadParameter(f"expected K=V, got {pair!r}", param_hint="--env")
        env[name] = value
    return env


def submit(
    command: Annotated[
        list[str],
        typer.Argument(
            help="The argv after `--`, with {start} {end} {frame} {frames} placeholders.",
            metavar="CMD",
            show_default=False,
        ),
    ],
    name: Annotated[str, typer.Option("--name", "-n", help="Job name.")],
    frames: Annotated[
        str, typer.Option("--frames", "-f", help="Frame set: 1-100, 4, 5-250x5, 1-10,20, 1-100:10.")
    ] = "1",
    chunk: Annotated[int, typer.Option("--chunk", "-c", min=1, help="Frames per task.")] = 1,
    priority: Annotated[int, typer.Option("--priority", "-p", min=0, max=100)] = 50,
    retries: Annotated[
        int, typer.Option("--retries", min=0, max=100, help="Retries of a failed task.")
    ] = 3,
    after: Annotated[
        list[int] | None,
        typer.Option("--after", metavar="JOB", help="Wait for this job to finish; repeatable."),
    ] = None,
    env: Annotated[
        list[str] | None,
        typer.Option("--env", "-e", metavar="K=V", help="Environment variable; repeatable."),
    ] = None,
    cwd: Annotated[
        str | None, typer.Option("--cwd", help="Working directory on the worker.")
    ] = None,
    priority_frames: Annotated[
        str | None,
        typer.Option("--priority-frames", metavar="F", help="Frames to render first."),
    ] = None,
    max_runtime: Annotated[
        float | None,
        typer.Option("--max-runtime", metavar="S", help="Seconds before a task is timed out."),
    ] = None,
    paused: Annotated[bool, typer.Option("--paused", help="Submit the job paused.")] = False,
    as_json: JsonOption = False,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
) -> None:
    """Submit a command job and print its id.

    Example: thresher submit --name hello --frames 1-10 -- echo frame {frame}
    """
    variables = parse_env(env or [])
    with connect(url, token) as client:
        job = client.submit(
            name,
            command,
            frames=frames,
            chunk=chunk,
            priority=priority,
            retries=retries,
            after=after or [],
            env=variables,
            cwd=cwd,
            priority_frames=priority_frames,
            max_runtime_s=max_runtime,
            paused=paused,
        )
    if as_json:
        print_json({"id": job.id})
    else:
        typer.echo(job.id)


def register(app: typer.Typer) -> None:
    app.command("submit", no_args_is_help=True)(submit)
