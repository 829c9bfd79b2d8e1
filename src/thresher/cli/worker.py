"""`thresher worker`: run an agent on this machine; `thresher nimby`: hold it from the machine.

Options may also come from a TOML file (`--config`, see `thresher.worker.config`); the command
line wins. The work directory defaults to the user's state directory (`default_work_dir`), never
the current one. While it runs, the worker takes NIMBY from its work directory's `nimby` file and
from signals: SIGUSR1 pauses it, SIGUSR2 stops it, SIGHUP resumes it (see `thresher.worker.nimby`).
SIGINT (Ctrl-C) and SIGTERM stop it: its tasks are stopped and reported, and it says goodbye.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
from pathlib import Path
from typing import Annotated

import typer

from thresher.cli.worker_cloud import container_settings, with_containers, with_gpu_lanes
from thresher.worker.agent import Agent, AgentConfig
from thresher.worker.config import (
    ConfigError,
    WorkerFile,
    default_work_dir,
    load_worker_config,
    worker_state_dir,
)
from thresher.worker.facts import detect
from thresher.worker.nimby import State, nimby_path, write_nimby


def parse_pairs(values: list[str], *, option: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"{item!r} is not KEY=VALUE", param_hint=option)
        out[key] = value
    return out


def read_path_mapping(path: Path | None) -> tuple[dict[str, str], ...]:
    """Rules from a pathmapping-1.0 document (`{"version": ..., "path_mapping_rules": [...]}`)
    or a bare list of rules."""
    if path is None:
        return ()
    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise typer.BadParameter(
            f"cannot read {path}: {exc}", param_hint="--path-mapping"
        ) from None
    rules = document.get("path_mapping_rules") if isinstance(document, dict) else document
    if not isinstance(rules, list) or not all(isinstance(r, dict) for r in rules):
        raise typer.BadParameter(
            f"{path} holds no list of path mapping rules", param_hint="--path-mapping"
        )
    return tuple({str(k): str(v) for k, v in rule.items()} for rule in rules)


def parse_lane_engines(values: list[str]) -> dict[int, tuple[str, ...]]:
    """`0=blender,povray` pairs: what a lane runs (engine names or job kinds)."""
    out: dict[int, tuple[str, ...]] = {}
    for lane, engines in parse_pairs(values, option="--lane-engines").items():
        names = tuple(e.strip() for e in engines.split(",") if e.strip())
        if not lane.isdigit() or not names:
            raise typer.BadParameter(
                f"{lane}={engines!r} is not LANE=ENGINE[,ENGINE...]", param_hint="--lane-engines"
            )
        out[int(lane)] = names
    return out


_NIMBY_SIGNALS: dict[signal.Signals, State | None] = {
    signal.SIGUSR1: "paused",
    signal.SIGUSR2: "stopped",
    signal.SIGHUP: None,
}


async def run_agents(configs: list[AgentConfig]) -> None:
    """Run agents until SIGINT (Ctrl-C) or SIGTERM; then each stops its tasks (SIGTERM to their
    process groups, SIGKILL after the grace), reports them, says goodbye to the controller (which
    takes it offline and requeues its tasks at once) and returns. SIGUSR1, SIGUSR2 and SIGHUP
    set NIMBY (pause, stop, resume) through each agent's `nimby` file."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def stopping(sig: signal.Signals) -> None:
        if not stop.is_set():
            logging.getLogger("thresher.worker").warning(
                "%s: stopping (tasks get SIGTERM, then SIGKILL after the grace)", sig.name
            )
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping, sig)
    agents = [Agent(c) for c in configs]

    def nimby(state: State | None) -> None:
        for agent in agents:
            write_nimby(nimby_path(agent.config.work_dir), state)
            agent.check_nimby()

    for sig, state in _NIMBY_SIGNALS.items():
        loop.add_signal_handler(sig, nimby, state)
    await asyncio.gather(*(agent.run(stop) for agent in agents))


def _setting(given: object, file: WorkerFile, key: str, default: object) -> object:
    if given is not None:
        return given
    found = file.get(key)
    return default if found is None else found


_DEFAULT_WORK_DIR = "$XDG_STATE_HOME/thresher/worker/NAME, else ~/.local/state/thresher/worker/NAME"


def _default_work_dir(name: str) -> Path:
    return default_work_dir(name, environ=os.environ, home=Path.home())


def worker(
    controller: Annotated[
        str | None,
        typer.Option(envvar="THRESHER_URL", help="controller URL; several comma-separated"),
    ] = None,
    token: Annotated[
        str | None, typer.Option(envvar="THRESHER_TOKEN", help="enrolment token")
    ] = None,
    code: Annotated[
        str | None,
        typer.Option(
            envvar="THRESHER_ENROL_CODE",
            help="one-time enrolment code (`thresher workers enrol-code`) instead of a token",
        ),
    ] = None,
    ca_file: Annotated[
        Path | None,
        typer.Option(
            envvar="THRESHER_CA_FILE",
            exists=True,
            dir_okay=False,
            help="CA certificate an https controller's certificate is checked against",
        ),
    ] = None,
    name: Annotated[str | None, typer.Option(help="unique worker name")] = None,
    lanes: Annotated[
        int | None, typer.Option(min=1, max=256, help="tasks run at once  [default: 1]")
    ] = None,
    site: Annotated[str | None, typer.Option(help="site this machine is at  [default: hq]")] = None,
    pool: Annotated[list[str] | None, typer.Option(help="pool to join (repeat)")] = None,
    attr: Annotated[
        list[str] | None,
        typer.Option(
            help="override a detected fact: hostname=, os=, cores=, ram= (64GB), gpus=; "
            "any other key is a label"
        ),
    ] = None,
    label: Annotated[
        list[str] | None,
        typer.Option(metavar="KEY=VALUE", help="a label filters can ask for (repeat)"),
    ] = None,
    capacity: Annotated[
        int | None, typer.Option(min=0, help="capacity units  [default: 1000 per lane]")
    ] = None,
    lane_engines: Annotated[
        list[str] | None,
        typer.Option(
            metavar="LANE=ENGINE,...",
            help="what a lane runs: engine names or job kinds (repeat; other lanes: anything)",
        ),
    ] = None,
    lane_gpus: Annotated[
        str | None,
        typer.Option(
            metavar="LANE=GPU[+GPU],...|auto",
            help="GPU device ids each lane owns (0=0,1=1); auto: one detected GPU per lane",
        ),
    ] = None,
    container_engine: Annotated[
        str,
        typer.Option(help="podman, docker, a path, auto (podman, else docker) or none"),
    ] = "auto",
    container_runtime: Annotated[
        str | None, typer.Option(help="the OCI runtime podman uses (e.g. runc)")
    ] = None,
    container_mount: Annotated[
        list[str] | None,
        typer.Option(
            metavar="PATH[:ro|rw]",
            help="a folder every container sees at the same path (repeat; default ro)",
        ),
    ] = None,
    containers_conf: Annotated[
        Path | None,
        typer.Option(exists=True, dir_okay=False, help="a containers.conf for podman"),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option(exists=True, dir_okay=False, help="TOML file with any of these options"),
    ] = None,
    work_dir: Annotated[
        Path | None,
        typer.Option(
            help="where tasks without a cwd run, and the NIMBY file  "
            f"[default: {_DEFAULT_WORK_DIR}]"
        ),
    ] = None,
    ahead: Annotated[
        int | None, typer.Option(min=0, help="short tasks held ahead per lane  [default: 1]")
    ] = None,
    grace: Annotated[
        float | None, typer.Option(help="seconds between SIGTERM and SIGKILL  [default: 10]")
    ] = None,
    path_mapping: Annotated[
        Path | None,
        typer.Option(
            exists=True,
            dir_okay=False,
            help="OpenJD path mapping rules of this machine (pathmapping-1.0 JSON)",
        ),
    ] = None,
    openjd_idle: Annotated[
        float, typer.Option(min=0, help="seconds an idle lane keeps an OpenJD job's session")
    ] = 5.0,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Run a worker agent: register with the controller and run its tasks on N lanes.

    Its work directory (tasks without a cwd run there; it holds the NIMBY file and the engine
    cache) is --work-dir, else $XDG_STATE_HOME/thresher/worker/NAME, else
    ~/.local/state/thresher/worker/NAME.
    """
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING, format="%(asctime)s %(message)s"
    )
    # httpx logs each request at INFO: with short tasks that is many lines a second.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    try:
        file = load_worker_config(config) if config else WorkerFile()
    except ConfigError as exc:
        raise typer.BadParameter(str(exc), param_hint="--config") from None
    url = _setting(controller, file, "controller", None)
    enrol = _setting(token, file, "token", None)
    worker_name = _setting(name, file, "name", None)
    if enrol is None and code:
        enrol = ""  # the code buys the token
    for value, option in ((url, "--controller"), (enrol, "--token"), (worker_name, "--name")):
        if value is None:
            raise typer.BadParameter("missing (give it here or in --config)", param_hint=option)
    lane_count = int(str(_setting(lanes, file, "lanes", 1)))
    engines = {**file.lane_engines, **parse_lane_engines(lane_engines or [])}
    outside = sorted(lane for lane in engines if lane >= lane_count)
    if outside:
        raise typer.BadParameter(
            f"lane {outside[0]} does not exist (lanes 0-{lane_count - 1})",
            param_hint="--lane-engines",
        )
    try:
        facts = detect(
            name=str(worker_name),
            lanes=lane_count,
            site=str(_setting(site, file, "site", "hq")),
            pools=tuple(dict.fromkeys([*file.pools, *(pool or ())])),
            overrides={**file.attributes, **parse_pairs(attr or [], option="--attr")},
            labels={**file.labels, **parse_pairs(label or [], option="--label")},
            capacity=capacity if capacity is not None else file.get("capacity"),
            lane_engines=engines,
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--attr") from None
    facts = with_gpu_lanes(facts, _setting(lane_gpus, file, "lane_gpus", None), attr or [])
    containers = container_settings(
        container_engine, container_runtime, containers_conf, container_mount or []
    )
    facts = with_containers(facts, containers)
    given_dir = _setting(work_dir, file, "work_dir", None)
    work = Path(str(given_dir)) if given_dir is not None else _default_work_dir(str(worker_name))
    work = work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    kept = work / "worker-token"
    if code and kept.exists():  # enrolled with a code before: re-attach with its own token
        enrol, code = kept.read_text().strip(), None
    agent_config = AgentConfig(
        controller_url=str(url),
        token=str(enrol),
        enrol_code=code or None,
        ca_file=str(ca_file) if ca_file else None,
        facts=facts,
        work_dir=work,
        ahead_per_lane=int(str(_setting(ahead, file, "ahead", 1))),
        grace_s=float(str(_setting(grace, file, "grace", 10.0))),
        path_mapping_rules=read_path_mapping(path_mapping),
        openjd_idle_s=openjd_idle,
        containers=containers,
    )
    typer.echo(f"thresher worker {worker_name} with {lane_count} lane(s) polling {url}", err=True)
    asyncio.run(run_agents([agent_config]))


WorkDir = Annotated[
    Path | None,
    typer.Option("--work-dir", help="the worker's --work-dir (else found from --name)"),
]
WorkerName = Annotated[
    str | None,
    typer.Option(
        "--name",
        help="the worker's --name, for its default work dir (needless when this user runs "
        "one worker with the default)",
    ),
]


def _nimby_dir(work_dir: Path | None, name: str | None) -> Path:
    """The work dir given, else the default one of the worker named, else of the only
    worker with a default work dir here."""
    if work_dir is not None:
        return work_dir
    if name is not None:
        return _default_work_dir(name)
    base = worker_state_dir(environ=os.environ, home=Path.home())
    found = sorted(p for p in base.iterdir() if p.is_dir()) if base.is_dir() else []
    if len(found) == 1:
        return found[0]
    known = ", ".join(p.name for p in found) or f"none in {base}"
    raise typer.BadParameter(f"which worker? (workers: {known})", param_hint="--name")


def _nimby(state: State | None, work_dir: Path | None, name: str | None) -> None:
    where = _nimby_dir(work_dir, name)
    write_nimby(nimby_path(where), state)
    typer.echo(
        f"NIMBY {state or 'off'}: the worker using {where} sees it within a second",
        err=True,
    )


def nimby_pause(work_dir: WorkDir = None, name: WorkerName = None) -> None:
    """Finish what runs on this machine, and take no new tasks."""
    _nimby("paused", work_dir, name)


def nimby_stop(work_dir: WorkDir = None, name: WorkerName = None) -> None:
    """Also stop what runs on this machine now (the tasks go back to the queue)."""
    _nimby("stopped", work_dir, name)


def nimby_resume(work_dir: WorkDir = None, name: WorkerName = None) -> None:
    """Let this machine take tasks again."""
    _nimby(None, work_dir, name)


def register(app: typer.Typer) -> None:
    app.command("worker")(worker)
    nimby_app = typer.Typer(
        name="nimby",
        help="Hold this machine's worker (NIMBY): pause, stop, resume.",
        no_args_is_help=True,
    )
    nimby_app.command("pause")(nimby_pause)
    nimby_app.command("stop")(nimby_stop)
    nimby_app.command("resume")(nimby_resume)
    app.add_typer(nimby_app)
