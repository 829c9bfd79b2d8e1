"""`thresher submit`: a command job from an argv template given after `--`, or an engine job
(`--engine`, `--input`, `--range`, `--output`, `--bucket`, `--param`, `--arg`)."""

# Annotations here are values, not strings (no `from __future__ import annotations`): see
# thresher.cli.main on why.

import json
from pathlib import Path, PureWindowsPath
from typing import Annotated, Any

import typer

from thresher.cli.common import (
    DEFAULT_URL,
    JsonOption,
    TokenOption,
    UrlOption,
    connect,
    fail,
    print_json,
)
from thresher.cli.task_file import task_file_job


def parse_env(pairs: list[str]) -> dict[str, str]:
    """`K=V` pairs as a mapping; a pair without `=` or with an empty name is refused."""
    env: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise typer.BadParameter(f"expected K=V, got {pair!r}", param_hint="--env")
        env[name] = value
    return env


def parse_params(pairs: list[str]) -> dict[str, Any]:
    """`K=V` engine parameters; a value that reads as JSON (numbers, true, lists, objects) is
    taken as that, anything else as text."""
    params: dict[str, Any] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise typer.BadParameter(f"expected K=V, got {pair!r}", param_hint="--param")
        try:
            params[name] = json.loads(value)
        except ValueError:
            params[name] = value
    return params


def engine_parameters(params: list[str], args: list[str]) -> dict[str, Any]:
    """The `--param` pairs, with the `--arg` values after the `arguments` parameter's own."""
    parameters = parse_params(params)
    if args:
        # Imported here: the engines package brings the engine machinery with it.
        from thresher.engines import split_arguments

        parameters["arguments"] = [*split_arguments(parameters.get("arguments")), *args]
    return parameters


def absolute(path: str | None) -> str | None:
    """A relative path made absolute from here (workers run elsewhere); other paths as given."""
    if not path or path.startswith("share=") or PureWindowsPath(path).is_absolute():
        return path
    if Path(path).is_absolute():
        return path
    resolved = str(Path.cwd() / path)
    return resolved + "/" if path.endswith("/") and not resolved.endswith("/") else resolved


def submit(
    command: Annotated[
        list[str] | None,
        typer.Argument(
            help="A command job's argv after `--`, with {start} {end} {frame} {frames} "
            "placeholders.",
            metavar="CMD",
            show_default=False,
        ),
    ] = None,
    name: Annotated[
        str | None,
        typer.Option("--name", "-n", help="Job name (engine jobs: '<engine>: <input>')."),
    ] = None,
    engine: Annotated[
        str | None,
        typer.Option("--engine", help="Submit an engine job: blender, povray, ffmpeg, ..."),
    ] = None,
    input_path: Annotated[
        str | None, typer.Option("--input", "-i", metavar="PATH", help="Engine job: its input.")
    ] = None,
    frame_range: Annotated[
        str | None,
        typer.Option("--range", metavar="F", help="Engine job: items to run (as --frames)."),
    ] = None,
    output: Annotated[
        str | None, typer.Option("--output", "-o", metavar="PATH", help="Engine job: output.")
    ] = None,
    bucket: Annotated[
        int | None,
        typer.Option(
            "--bucket", min=0, metavar="N", help="Engine job: items per task; 0: one task."
        ),
    ] = None,
    param: Annotated[
        list[str] | None,
        typer.Option("--param", metavar="K=V", help="Engine parameter (JSON or text); repeat."),
    ] = None,
    arg: Annotated[
        list[str] | None,
        typer.Option("--arg", metavar="A", help="Engine job: extra application argument; repeat."),
    ] = None,
    filters: Annotated[
        str | None, typer.Option("--filters", metavar="F", help="Which workers: ram:>32g,...")
    ] = None,
    frames: Annotated[
        str | None,
        typer.Option("--frames", "-f", help="Frame set: 1-100, 4, 5-250x5, 1-10,20, 1-100:10."),
    ] = None,
    chunk: Annotated[
        int | None, typer.Option("--chunk", "-c", min=1, help="Frames per task.")
    ] = None,
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
    image: Annotated[
        str | None, typer.Option("--image", help="Run the tasks in this container image.")
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
    limits: Annotated[
        str | None,
        typer.Option("--limits", metavar="L,...", help="Limits (licenses) each task holds."),
    ] = None,
    max_running: Annotated[
        int | None, typer.Option("--max-running", min=1, metavar="N", help="Running tasks cap.")
    ] = None,
    max_per_host: Annotated[
        int | None,
        typer.Option("--max-per-host", min=1, metavar="N", help="Running tasks cap per worker."),
    ] = None,
    after_name: Annotated[
        str | None,
        typer.Option(
            "--after-name",
            metavar="GLOB",
            help="Also wait on your jobs whose name matches (* ? [abc] [!abc]).",
        ),
    ] = None,
    after_global: Annotated[
        bool, typer.Option("--global", help="--after-name looks at everyone's jobs.")
    ] = False,
    preempt: Annotated[
        bool,
        typer.Option("--preempt", help="With pool:@P, take P's busy lanes from other jobs."),
    ] = False,
    capacity: Annotated[
        int | None,
        typer.Option("--capacity", min=0, metavar="N", help="Capacity units a task holds."),
    ] = None,
    min_runtime: Annotated[
        float | None,
        typer.Option("--min-runtime", metavar="S", help="A success shorter than this fails."),
    ] = None,
    preview_every: Annotated[
        int | None,
        typer.Option("--preview-every", min=1, metavar="N", help="Dispatch every Nth task first."),
    ] = None,
    errors_to_avoid: Annotated[
        int | None,
        typer.Option(
            "--errors-to-avoid", min=1, metavar="N", help="Errors before a host is avoided."
        ),
    ] = None,
    forgive: Annotated[
        float | None,
        typer.Option("--forgive", metavar="S", help="Seconds until an avoided host is forgiven."),
    ] = None,
    dep: Annotated[
        list[str] | None,
        typer.Option("--dep", metavar="PATH", help="Engine job: a file it needs; repeatable."),
    ] = None,
    parse_deps: Annotated[
        bool, typer.Option("--parse-deps", help="Add the files the input references.")
    ] = False,
    upload_deps: Annotated[
        bool,
        typer.Option(
            "--upload-deps", help="No shared storage here: send the input and deps to the farm."
        ),
    ] = False,
    volume: Annotated[
        str | None, typer.Option("--volume", help="--upload-deps: the volume to send them to.")
    ] = None,
    output_site: Annotated[
        str | None,
        typer.Option(
            "--output-site",
            metavar="SITE",
            help="Engine job: the site each task's outputs go back to (default: the main "
            "site), such as the submitter's.",
        ),
    ] = None,
    task_file: Annotated[
        Path | None,
        typer.Option(
            "--task-file",
            metavar="FILE",
            help="A job whose tasks are FILE's lines, each its own arguments after CMD (if "
            "any); '-' reads stdin.",
        ),
    ] = None,
    as_files: Annotated[
        bool, typer.Option("--lines-are-files", help="--task-file: each line is one argument.")
    ] = False,
    as_json: JsonOption = False,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
) -> None:
    """Submit a command job, a task-file job or an engine job and print its id."""
    variables = parse_env(env or [])
    scheduling: dict[str, Any] = {
        "filters": filters,
        "limits": [n.strip() for n in limits.split(",") if n.strip()] if limits else None,
        "max_running": max_running,
        "max_running_per_host": max_per_host,
        "preempt": preempt,
        "after_name": after_name,
        "after_global": after_global,
        "capacity": capacity,
        "min_runtime_s": min_runtime,
        "preview_every": preview_every,
        "errors_to_avoid": errors_to_avoid,
        "forgive_s": forgive,
    }
    common = {"priority": priority, "retries": retries, "after": after or [], "cwd": cwd}
    common |= {"env": variables, "max_runtime_s": max_runtime, "paused": paused, **scheduling}
    if engine is not None:
        if command:
            fail("an engine job takes no command after `--`")
        payload: dict[str, Any] = {
            "engine": engine,
            "name": name,
            "input": absolute(input_path),
            "range": frame_range,
            "frames": frames,
            "output": absolute(output),
            "chunk": chunk,
            "parameters": engine_parameters(param or [], arg or []),
            "filters": filters,
            "priority_frames": priority_frames,
            "container": {"image": image} if image else None,
            **common,
        }
        settings: dict[str, Any] = {"task_bucketsize": bucket, "output_site": output_site}
        if any(v is not None for v in settings.values()):
            payload["settings"] = {k: v for k, v in settings.items() if v is not None}
        payload["dependencies"] = dependencies(input_path, dep or [], parse=parse_deps)
        roaming = volume if upload_deps else None
        _submit_engine(payload, url, token, as_json, upload=upload_deps, volume=roaming)
        return
    if task_file is not None:
        job_id = task_file_job(task_file, command, name, as_files, common, url, token)
        return _print_id(job_id, as_json)
    if not command:
        fail("give a command after `--`, --task-file, or --engine for an engine job")
    if name is None:
        fail("a command job needs --name")
    _refuse_engine_options(
        {
            "--input": input_path,
            "--range": frame_range,
            "--output": output,
            "--bucket": bucket,
            "--output-site": output_site,
            "--param": param,
            "--arg": arg,
        }
    )
    with connect(url, token) as client:
        job = client.submit(
            name,
            command,
            frames="1" if frames is None else frames,
            chunk=chunk or 1,
            priority=priority,
            retries=retries,
            after=after or [],
            env=variables,
            cwd=cwd,
            priority_frames=priority_frames,
            max_runtime_s=max_runtime,
            paused=paused,
            image=image,
            **scheduling,
        )
    _print_id(job.id, as_json)


def _submit_engine(
    payload: dict[str, Any],
    url: str,
    token: str | None,
    as_json: bool,
    *,
    upload: bool,
    volume: str | None,
) -> None:
    with connect(url, token) as client:
        local_output = None
        if upload:
            payload, local_output = uploaded(client, payload, volume=volume)
        job = client.create_job({k: v for k, v in payload.items() if v is not None})
    _print_id(job.id, as_json)
    if local_output is not None:
        typer.echo(
            f"fetch its outputs with: thresher download {job.id} --follow --dest {local_output}",
            err=True,
        )


def dependencies(input_path: str | None, deps: list[str], *, parse: bool) -> list[str]:
    """The --dep files, and with --parse-deps those the input references."""
    found = [p for p in (absolute(d) for d in deps) if p]
    if parse and input_path and not input_path.startswith("share="):
        from thresher.engines.references import references

        found += [str(p) for p in references(Path(input_path))]
    return list(dict.fromkeys(found))


def uploaded(client: Any, payload: dict[str, Any], *, volume: str | None) -> tuple[Any, Any]:
    """--upload-deps: the payload once its local files are at the main site."""
    import getpass

    from thresher.cli.roaming import RoamingError, upload_deps

    try:
        return upload_deps(client, payload, owner=getpass.getuser(), volume=volume)
    except RoamingError as exc:
        fail(str(exc))


def _refuse_engine_options(given: dict[str, object]) -> None:
    misplaced = [flag for flag, value in given.items() if value is not None]
    if misplaced:
        fail(f"{', '.join(misplaced)} need --engine")


def _print_id(job_id: int, as_json: bool) -> None:
    if as_json:
        print_json({"id": job_id})
    else:
        typer.echo(job_id)


EXAMPLES = (
    "Examples: thresher submit --name hello --frames 1-10 -- echo frame {frame}  |  "
    "thresher submit --engine blender --input scene.blend --range 1-48 --output out/ --bucket 4"
)


def register(app: typer.Typer) -> None:
    app.command("submit", no_args_is_help=True, epilog=EXAMPLES)(submit)
