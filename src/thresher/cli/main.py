"""The `thresher` command: one Typer app; each noun's module registers its commands on it.

A command's module is imported only when that command runs: `thresher jobs` imports the jobs
module and the client, never the controller (FastAPI, SQLAlchemy, uvicorn) or the worker agent
(psutil). Until then the root lists each command by the one line `COMMANDS` holds for it, the
first paragraph of the command's own help (a test keeps the two the same).

The command modules do without `from __future__ import annotations`: Typer reads every
command's parameter annotations when it builds a command, and annotations kept as strings would
be compiled and evaluated again there (about two thirds of the time the build takes). Names
imported for type checking only are quoted instead.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import typer
from typer.core import TyperCommand, TyperGroup

from thresher import __version__

if TYPE_CHECKING:
    # Typer's own copy of Click, which its groups and commands are built on.
    from typer._click import Command, Context


@dataclass(frozen=True)
class Entry:
    """A root command: the module under thresher.cli that `register`s it, its --help line."""

    module: str
    summary: str


#: Every root command, in the order `thresher --help` lists them.
COMMANDS = {
    "controller": Entry(
        "controller",
        "Run the controller: the REST API, the scheduler and the sweeper of silent workers.",
    ),
    "worker": Entry(
        "worker", "Run a worker agent: register with the controller and run its tasks on N lanes."
    ),
    "nimby": Entry("worker", "Hold this machine's worker (NIMBY): pause, stop, resume."),
    "farm": Entry(
        "farm", "Run an embedded farm: controller on SQLite plus local workers. Ctrl-C stops all."
    ),
    "submit": Entry(
        "submit", "Submit a command job, a task-file job or an engine job and print its id."
    ),
    "submitter": Entry(
        "submitter", "Open the desktop submitter: drop a scene, check the form, submit."
    ),
    "submit-template": Entry(
        "templates", "Submit an OpenJD job template with parameter values and print the job's id."
    ),
    "submit-bundle": Entry(
        "templates",
        "Submit a Deadline-style job bundle folder (template + parameter values + asset "
        "references); `-p` values override the bundle's.",
    ),
    "jobs": Entry("jobs", "List jobs."),
    "pause": Entry(
        "jobs", "Pause a job: no new tasks start; running ones are stopped and requeued."
    ),
    "resume": Entry("jobs", "Resume a paused job."),
    "cancel": Entry("jobs", "Cancel a job: its running tasks are stopped and nothing more runs."),
    "retry": Entry("jobs", "Requeue a job's failed and canceled tasks."),
    "priority": Entry("jobs", "Set a job's priority (higher runs first)."),
    "delete": Entry("jobs", "Delete a job with its tasks and logs."),
    "watch": Entry(
        "jobs", "Show a job's progress until it ends; exit 0 when it succeeded, 1 otherwise."
    ),
    "stats": Entry(
        "stats",
        "Farm statistics: frames and render hours by engine, user, site, host and day; "
        "failure rates; queue waits by user.",
    ),
    "tasks": Entry("tasks", "List a page of a job's tasks, waiting ones included."),
    "log": Entry("tasks", "Print a task's output, every attempt's lines in order."),
    "pools": Entry(
        "pools",
        "List pools: their workers, and the unfinished jobs that name them (+ only, ~ "
        "exclusive, @ dedicated).",
    ),
    "error-hosts": Entry(
        "pools",
        "The hosts a job's blocks had errors from and which they avoid now; --reset forgives.",
    ),
    "job": Entry("jobs", "One job."),
    "task": Entry("tasks", "One task."),
    "workers": Entry("workers", "Workers."),
    "token": Entry("security", "Bearer tokens."),
    "login": Entry(
        "security",
        "Store a controller URL and token (asked for, hidden, when not given) for later "
        "commands, in a file only you can read (0600); checks the token first.",
    ),
    "logout": Entry(
        "security",
        "Forget the stored token (it still works until revoked: `thresher token revoke`).",
    ),
    "whoami": Entry("security", "Who your token names: user, role, groups."),
    "audit": Entry(
        "security", "Who did what to which object and when, newest first (wranglers, admins)."
    ),
    "engines": Entry("engines", "Engines: the scripts that run applications."),
    "limits": Entry("limits", "Limits (licenses) and their usage."),
    "users": Entry("security", "Users: accounts (role, groups), priority and caps."),
    "db": Entry("ops", "The database schema."),
    "backup": Entry(
        "ops",
        "Back up the farm's database while the controller runs: SQLite's online backup, or "
        "pg_dump for PostgreSQL (printed instead of run where pg_dump is not installed).",
    ),
    "restore": Entry(
        "ops", "Restore a backup as the farm's database; no controller may run on it meanwhile."
    ),
    "sites": Entry("sites", "Sites: the places the farm spans."),
    "download": Entry(
        "download", "Fetch a job's outputs here; --follow fetches them as tasks finish."
    ),
    "files": Entry(
        "files", "Run a site's file service: its chunk store, and transfers with other sites'."
    ),
    "volumes": Entry("sites", "Volumes: storage roots per site and OS."),
    "events": Entry(
        "events", "Recent events: your jobs' (an admin's: every job's and the workers')."
    ),
    "subscriptions": Entry("events", "Webhooks and e-mail on events."),
    "autoscale": Entry(
        "autoscale",
        "Start and retire the workers of one group from the tasks waiting for its kind of worker.",
    ),
    "access-key": Entry(
        "access_keys", "AWS-style key pairs for the Deadline Cloud compatible routes."
    ),
}


def registered_by(module: str) -> dict[str, Command]:
    """The commands thresher.cli.`module` registers, by name: imports the module."""
    holder = typer.Typer()
    importlib.import_module(f"thresher.cli.{module}").register(holder)
    return dict(typer.main.get_group(holder).commands)


class _Listed(TyperCommand):
    """A root command as --help lists it, before its module is imported."""


class _RootGroup(TyperGroup):
    """The root group: lists every command, imports a command's module only when it runs."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name, entry in COMMANDS.items():
            self.add_command(_Listed(name, help=entry.summary))

    def resolve_command(
        self, ctx: Context, args: list[str]
    ) -> tuple[str | None, Command | None, list[str]]:
        name, command, rest = super().resolve_command(ctx, args)
        if name is not None and isinstance(command, _Listed):
            command = registered_by(COMMANDS[name].module)[name]
        return name, command, rest


def _version(value: bool) -> None:
    if value:
        typer.echo(f"thresher {__version__}")
        raise typer.Exit()


def build_app() -> typer.Typer:
    """The `thresher` app: every command listed, none of their modules imported yet."""
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

    return new


app = build_app()


def main() -> None:
    app()
