"""The `thresher` command: one Typer app; each noun's module registers its commands on it."""

from __future__ import annotations

import importlib
from types import ModuleType

import typer

from thresher import __version__
from thresher.cli import (
    access_keys,
    controller,
    engines,
    jobs,
    limits,
    pools,
    submit,
    tasks,
    templates,
    workers,
)

#: Modules written alongside this one that may not exist yet in a given checkout.
OPTIONAL = ("worker", "farm")


def _optional_modules() -> list[ModuleType]:
    found = []
    for name in OPTIONAL:
        module_name = f"thresher.cli.{name}"
        try:
            found.append(importlib.import_module(module_name))
        except ModuleNotFoundError as exc:
            if exc.name != module_name:  # the module exists but something it imports does not
                raise
    return found


def _version(value: bool) -> None:
    if value:
        typer.echo(f"thresher {__version__}")
        raise typer.Exit()


def build_app() -> typer.Typer:
    """The `thresher` app with every command registered."""
    new = typer.Typer(
        name="thresher",
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

    modules = (controller, *_optional_modules(), submit, templates, jobs, tasks, workers, engines)
    modules += (limits, pools)  # scheduling (issue 3)
    modules += (access_keys,)  # OpenJD submitters (issue 5)
    for module in modules:
        module.register(new)
    return new


app = build_app()


def main() -> None:
    app()
