"""GIVEN the `thresher` CLI WHEN a client command (or only its help) runs THEN it imports the
client, Typer and Rich but nothing of the server side; every command's module is imported only
when that command runs, and the root lists each command by the line its own help starts with."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

import thresher
import thresher.client
from thresher.cli.main import COMMANDS, app, registered_by

#: What only the controller and the worker need; a client command importing any of these
#: pays for it at every start.
SERVER_SIDE = ("fastapi", "starlette", "sqlalchemy", "alembic", "uvicorn", "psutil")

#: Runs the CLI in this process with the arguments given, then prints every module imported.
RUNNER = """
import sys
from thresher.cli.main import app
try:
    app(sys.argv[1:], prog_name="thresher")
except SystemExit:
    pass
print("MODULES", *sorted(sys.modules))
"""


def imported_by_name(*args: str) -> set[str]:
    """The modules imported by running `thresher ARGS` in a fresh interpreter."""
    src = str(Path(thresher.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": src, "THRESHER_TOKEN": "thr_x", "COLUMNS": "120"}
    done = subprocess.run(
        [sys.executable, "-c", RUNNER, *args], env=env, capture_output=True, text=True, timeout=60
    )
    found = [line for line in done.stdout.splitlines() if line.startswith("MODULES ")]
    assert found, done.stderr
    return set(found[-1].split()[1:])


def imported_by(*args: str) -> set[str]:
    """The top-level packages imported by running `thresher ARGS` in a fresh interpreter."""
    return {name.split(".")[0] for name in imported_by_name(*args)}


def refused_url() -> str:
    """A bound socket that does not listen: connecting to it is refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["jobs", "--help"],
        ["submit", "--help"],
        ["job", "show", "--help"],
        ["workers", "--help"],
        ["engines", "list", "--help"],
    ],
)
def test_client_command_help_imports_nothing_of_the_server_side(args: list[str]) -> None:
    modules = imported_by(*args)

    assert "typer" in modules
    assert modules.isdisjoint(SERVER_SIDE), sorted(modules & set(SERVER_SIDE))


def test_a_client_command_that_runs_imports_nothing_of_the_server_side() -> None:
    names = imported_by_name("job", "show", "1", "--url", refused_url())
    modules = {name.split(".")[0] for name in names}

    # It did build a client, with its models, and tried the lean transport of plain http
    # (httpx is for https and proxies only).
    assert {"thresher.client._blocking", "pydantic"} <= names
    assert "httpx" not in modules
    assert modules.isdisjoint(SERVER_SIDE), sorted(modules & set(SERVER_SIDE))


def test_thresher_jobs_reads_json_without_response_models() -> None:
    """The command people run most starts without pydantic (Typer's own included)."""
    names = imported_by_name("jobs", "--url", refused_url())
    modules = {name.split(".")[0] for name in names}

    assert "thresher.client._blocking" in names  # it did connect
    assert modules.isdisjoint({*SERVER_SIDE, "pydantic", "httpx"}), sorted(
        modules & {*SERVER_SIDE, "pydantic", "httpx"}
    )


def test_a_server_command_imports_its_modules_when_it_runs() -> None:
    modules = imported_by("controller", "--help")

    assert {"fastapi", "sqlalchemy"} <= modules


def test_help_imports_no_command_module() -> None:
    modules = imported_by_name("--help")

    assert not {name for name in modules if name.startswith("thresher.cli.")} - {
        "thresher.cli.main"
    }


@pytest.mark.parametrize("module", sorted({entry.module for entry in COMMANDS.values()}))
def test_the_root_lists_what_each_module_registers_by_the_first_line_of_its_help(
    module: str,
) -> None:
    registered = registered_by(module)
    listed = {name: entry.summary for name, entry in COMMANDS.items() if entry.module == module}

    assert set(registered) == set(listed)
    for name, command in registered.items():
        assert " ".join((command.help or "").split("\n\n")[0].split()) == listed[name]


def test_help_lists_every_command() -> None:
    listing = CliRunner().invoke(app, ["--help"], env={"COLUMNS": "200"})

    assert listing.exit_code == 0
    for name, entry in COMMANDS.items():
        assert f"│ {name} " in listing.stdout
        assert entry.summary in listing.stdout


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["controller", "--help"], "--data-dir"),
        (["worker", "--help"], "--lane-engines"),
        (["farm", "--help"], "--workers"),
        (["nimby", "pause", "--help"], "--work-dir"),
    ],
)
def test_a_server_command_runs_as_registered_by_its_module(args: list[str], expected: str) -> None:
    result = CliRunner().invoke(app, args, env={"COLUMNS": "200"})

    assert result.exit_code == 0, result.output
    assert expected in result.stdout
    assert result.stdout.lstrip().startswith(f"Usage: thresher {' '.join(args[:-1])} ")


def test_an_unknown_command_is_refused_with_a_suggestion() -> None:
    result = CliRunner().invoke(app, ["contoller"])

    assert result.exit_code == 2
    assert "No such command 'contoller'. Did you mean 'controller'?" in result.output


def test_the_package_exports_resolve_on_first_use() -> None:
    assert thresher.Client is thresher.client.Client
    assert thresher.ThresherError is thresher.client.ThresherError
    for name in thresher.client.__all__:
        assert getattr(thresher.client, name).__name__ == name
    with pytest.raises(AttributeError):
        _ = thresher.client.Nothing
