"""`thresher worker`: run an agent on this machine."""

from __future__ import annotations

import asyncio
import logging
import signal
from pathlib import Path
from typing import Annotated

import typer

from thresher.worker.agent import Agent, AgentConfig
from thresher.worker.facts import detect


def parse_pairs(values: list[str], *, option: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"{item!r} is not KEY=VALUE", param_hint=option)
        out[key] = value
    return out


async def run_agents(configs: list[AgentConfig]) -> None:
    """Run agents until SIGINT or SIGTERM, then stop them cleanly."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await asyncio.gather(*(Agent(c).run(stop) for c in configs))


def worker(
    controller: Annotated[str, typer.Option(envvar="THRESHER_URL", help="controller URL")],
    token: Annotated[str, typer.Option(envvar="THRESHER_TOKEN", help="enrolment token")],
    name: Annotated[str, typer.Option(help="unique worker name")],
    lanes: Annotated[int, typer.Option(min=1, max=256, help="tasks run at once")] = 1,
    site: Annotated[str, typer.Option(help="site this machine is at")] = "hq",
    pool: Annotated[list[str] | None, typer.Option(help="pool to join (repeat)")] = None,
    attr: Annotated[
        list[str] | None,
        typer.Option(help="override a detected fact or add a label: hostname=, os=, cores=, ram="),
    ] = None,
    work_dir: Annotated[Path, typer.Option(help="where tasks without a cwd run")] = Path(
        "thresher-work"
    ),
    ahead: Annotated[int, typer.Option(min=0, help="short tasks held ahead per lane")] = 1,
    grace: Annotated[float, typer.Option(help="seconds between SIGTERM and SIGKILL")] = 10.0,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Run a worker agent: register with the controller and run its tasks on N lanes."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING, format="%(asctime)s %(message)s"
    )
    facts = detect(
        name=name,
        lanes=lanes,
        site=site,
        pools=tuple(pool or ()),
        overrides=parse_pairs(attr or [], option="--attr"),
    )
    config = AgentConfig(
        controller_url=controller,
        token=token,
        facts=facts,
        work_dir=work_dir.resolve(),
        ahead_per_lane=ahead,
        grace_s=grace,
    )
    typer.echo(f"thresher worker {name} with {lanes} lane(s) polling {controller}", err=True)
    asyncio.run(run_agents([config]))


def register(app: typer.Typer) -> None:
    app.command("worker")(worker)
