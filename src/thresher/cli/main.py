"""The `thresher` command: one Typer app; each noun's module registers its commands on it.

The client commands import only the client (httpx), Typer and Rich, so their modules are
registered up front. The server-side commands import FastAPI, SQLAlchemy, uvicorn or psutil:
their modules are imported only when one of their commands runs, and until then `thresher --help`
lists them by the one line `SERVER_COMMANDS` holds for each.

The client command modules do without `from __future__ import annotations`: Typer reads every
command's parameter annotations when it builds the app, at each start, and annotations kept as
strings would be compiled and evaluated again there (about two thirds of the time the build
takes). Names imported for type checking only are quoted instead.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

import typer
from typer.core import TyperCommand, TyperGroup

from thresher import __version__
from thresher.cli import (
    access_keys,
    engines,
    jobs,
    limits,
    pools,
    submit,
    tasks,
    templates,
    workers,
)

if TYPE_CHECKING:
    # Typer's own copy of Click, which its groups and commands are built on.
    from typer._click import Command, Context


@dataclass(frozen=True)
class ServerCommand:
    """A command whose module `register`s it on first use; `summary` is its --help line."""

    module: str
    summary: str


SERVER_COMMANDS = {
    "controller": ServerCommand(
        "thresher.cli.controller",
        "Run the controller: the REST API, the scheduler and the sweeper of silent workers.",
    ),
    "worker": ServerCommand(
        "thresher.cli.worker",
        "Run a worker agent: register with the controller and run its tasks on N lanes.",
    ),
    "nimby": ServerCommand(
        "thresher.cli.worker", "Hold this machine's worker (NIMBY): pause, stop, resume."
    ),
    "farm": ServerCommand(
        "thresher.cli.farm",
        "Run an embedded farm: controller on SQLite plus local workers. Ctrl-C stops all.",
    ),
}


def load_server_command(name: str) -> Command:
    """The real command `name` of SERVER_COMMANDS: imports its module and lets it register."""
    holder = typer.Typer()
    importlib.import_module(SERVER_COMMANDS[name].module).register(holder)
    return typer.main.get_group(holder).commands[name]


class _Listed(TyperCommand):
    """A server command as `--help` lists it, before its module is imported."""


class _RootGroup(TyperGroup):
    """The root group: lists the server commands, and loads one only when it is to run."""

    def list_commands(self, ctx: Context) -> list[str]:
        return [*SERVER_COMMANDS, *super().list_commands(ctx)]

    def get_command(self, ctx: Context, cmd_name: str) -> Command | None:
        found = super().get_command(ctx, cmd_name)
        if found is None and cmd_name in SERVER_COMMANDS:
            return _Listed(cmd_name, help=SERVER_COMMANDS[cmd_name].summary)
        return found

    def resolve_command(
        self, ctx: Context, args: list[str]
    ) -> tuple[str | None, Command | None, list[str]]:
        name, command, rest = super().resolve_command(ctx, args)
        if name is not None and isinstance(command, _Listed):
            command = load_server_command(name)
        return name, command, rest


def _version(value: bool) -> None:
    if value:
        typer.echo(f"thresher {__version__}")
        raise typer.Exit()


def build_app() -> typer.Typer:
    """The `thresher` app: the client commands registered, the server commands listed."""
    new = typer.Typer(
        name="thresher",
        cls=_RootGroup,
        help="Thresher render farm: run a controller or workers, submit and follow jobs.\n\n"
        "Client commands read THRESHER_URL and THRESHER_TOKEN, or take --url and --token.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_show_locals=False,  # locals would print tokens
    )

    @new.callback()
    def root(
        version: bool = typer.Option(
            False, "--version", callback=_version, is_eager=True, help="Print the version."
        ),
    ) -> None:
        """Thresher render farm."""

    for module in (submit, templates, jobs, tasks, workers, engines, limits, pools, access_keys):
        module.register(new)
    return new


app = build_app()


def main() -> None:
    app()
