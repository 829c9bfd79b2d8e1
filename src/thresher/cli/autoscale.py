"""`thresher autoscale`: start and retire workers of one group from its demand."""

# Annotations here are values, not strings (no `from __future__ import annotations`): see
# thresher.cli.main on why.

import json
import logging
import signal
import threading
from pathlib import Path
from typing import Annotated, Any

import typer

from thresher.cli.common import connect


def _argv(text: str | None, option: str) -> list[str]:
    if text is None:
        raise typer.BadParameter("needed by --provider command", param_hint=option)
    try:
        argv = json.loads(text)
    except json.JSONDecodeError:
        argv = None
    if not isinstance(argv, list) or not argv or not all(isinstance(a, str) for a in argv):
        raise typer.BadParameter(
            'a JSON list of strings: ["prog", "arg", "{count}"]', param_hint=option
        )
    return argv


def _size(text: str) -> int:
    from thresher.worker.facts import parse_size

    try:
        return parse_size(text)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--ram") from None


def _pairs(values: list[str], option: str) -> dict[str, str]:
    out = {}
    for value in values:
        key, sep, rest = value.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"{value!r} is not KEY=VALUE", param_hint=option)
        out[key] = rest
    return out


def autoscale(
    group: Annotated[str, typer.Option(help="the group's name; its workers are GROUP-xxxxxx")],
    controller: Annotated[str, typer.Option(envvar="THRESHER_URL", help="controller URL")],
    token: Annotated[
        str | None, typer.Option(envvar="THRESHER_TOKEN", help="a wrangler's token: pauses, enrols")
    ] = None,
    enrol_token: Annotated[
        str | None,
        typer.Option(
            envvar="THRESHER_ENROL_TOKEN",
            help="an enrolment token for new workers (default: a one-time code each)",
        ),
    ] = None,
    provider: Annotated[str, typer.Option(help="local, command or kubernetes")] = "local",
    pool: Annotated[list[str] | None, typer.Option(help="pool of its workers (repeat)")] = None,
    site: Annotated[str, typer.Option(help="site of its workers")] = "hq",
    label: Annotated[list[str] | None, typer.Option(metavar="KEY=VALUE")] = None,
    lanes: Annotated[int, typer.Option(min=1, max=256)] = 1,
    cores: Annotated[int, typer.Option(min=1, help="its machines' cores (for filters)")] = 1,
    ram: Annotated[str, typer.Option(help="its machines' RAM, e.g. 64GB (for filters)")] = "0",
    gpus: Annotated[int, typer.Option(min=0, help="its machines' GPUs (for filters)")] = 0,
    engines: Annotated[
        str | None, typer.Option(help="engines its workers run, comma-separated (default: any)")
    ] = None,
    min_workers: Annotated[int, typer.Option("--min", min=0)] = 0,
    max_workers: Annotated[int, typer.Option("--max", min=0)] = 4,
    standby: Annotated[int, typer.Option(min=0, help="idle workers kept ready")] = 0,
    scale_out_rate: Annotated[int, typer.Option(min=1, help="workers started per minute")] = 10,
    idle_timeout: Annotated[float, typer.Option(min=0, help="seconds idle before retiring")] = 300,
    cost_per_hour: Annotated[float, typer.Option(min=0, help="cost of one worker-hour")] = 0,
    max_cost_per_hour: Annotated[float | None, typer.Option(min=0)] = None,
    max_worker_hours: Annotated[float | None, typer.Option(min=0)] = None,
    start: Annotated[
        str | None, typer.Option(help="command provider: JSON argv, {count} {names}")
    ] = None,
    stop: Annotated[str | None, typer.Option(help="command provider: JSON argv, {worker}")] = None,
    image: Annotated[str | None, typer.Option(help="kubernetes: the worker image")] = None,
    namespace: Annotated[str, typer.Option(help="kubernetes namespace")] = "default",
    kubectl: Annotated[str, typer.Option(help="kubernetes: kubectl argv, JSON")] = '["kubectl"]',
    work_root: Annotated[Path, typer.Option(help="local: where workers keep their work")] = Path(
        "autoscale-workers"
    ),
    every: Annotated[float, typer.Option(min=0.1, help="seconds between rounds")] = 2.0,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Start and retire the workers of one group from the tasks waiting for its kind of worker.

    A group is a pool, site, labels and engines; its demand is the waiting tasks whose filters
    and engine such a worker satisfies (demand per scheduling class, not farm-wide)."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING, format="%(asctime)s %(message)s"
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per request otherwise
    from thresher.core.autoscale import ScaleConfig
    from thresher.core.clock import SystemClock
    from thresher.worker.autoscaler import Autoscaler, ClientFarm
    from thresher.worker.providers import WorkerTemplate

    template = WorkerTemplate(
        controller_url=controller,
        pools=tuple(pool or ()),
        site=site,
        lanes=lanes,
        labels=_pairs(label or [], "--label"),
        cores=cores,
        ram_bytes=_size(ram),
        gpus=gpus,
    )
    config = ScaleConfig(
        min_workers=min_workers,
        max_workers=max_workers,
        standby=standby,
        lanes=lanes,
        scale_out_per_min=scale_out_rate,
        idle_timeout_s=idle_timeout,
        cost_per_worker_hour=cost_per_hour,
        max_cost_per_hour=max_cost_per_hour,
        max_worker_hours=max_worker_hours,
    )
    chosen = _provider(provider, template, start, stop, image, namespace, kubectl, work_root)
    with connect(controller, token) as client:
        scaler = Autoscaler(
            group=group,
            config=config,
            template=template,
            provider=chosen,
            farm=ClientFarm(client),
            clock=SystemClock(),
            token=enrol_token,
            engines=frozenset(e.strip() for e in engines.split(",")) if engines else None,
        )
        typer.echo(f"thresher autoscale {group}: {provider} provider, {controller}", err=True)
        _run(scaler, every)
    stop_all = getattr(chosen, "stop_all", None)
    if stop_all is not None:  # local workers end with their autoscaler
        stop_all()


def _run(scaler: Any, every: float) -> None:
    """Rounds every `every` seconds until SIGINT or SIGTERM."""
    stopping = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopping.set())
    while not stopping.is_set():
        try:
            decision = scaler.step()
            if decision.start or decision.retire:
                retire = ",".join(decision.retire) or "-"
                typer.echo(f"{decision.reason}: start {decision.start}, retire {retire}", err=True)
        except Exception as exc:  # the autoscaler outlives a failed round
            logging.getLogger("thresher.autoscale").warning("round failed: %s", exc)
        stopping.wait(every)


def _provider(
    kind: str,
    template: Any,
    start: str | None,
    stop: str | None,
    image: str | None,
    namespace: str,
    kubectl: str,
    work_root: Path,
) -> Any:
    from thresher.worker.providers import CommandProvider, KubernetesProvider, LocalProvider

    if kind == "local":
        return LocalProvider(template, work_root=work_root.resolve())
    if kind == "command":
        return CommandProvider(template, start=_argv(start, "--start"), stop=_argv(stop, "--stop"))
    if kind == "kubernetes":
        if image is None:
            raise typer.BadParameter("needed by --provider kubernetes", param_hint="--image")
        try:
            return KubernetesProvider(
                template, image=image, kubectl=_argv(kubectl, "--kubectl"), namespace=namespace
            )
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--kubectl") from None
    raise typer.BadParameter(f"{kind!r}: local, command or kubernetes", param_hint="--provider")


def register(app: typer.Typer) -> None:
    app.command("autoscale")(autoscale)
