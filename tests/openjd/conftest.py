"""Fixtures for the OpenJD tests: the shared samples and conformance cases, the reference CLI, and
a reader for OpenJD session logs that both the reference and Thresher's runner produce."""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

SHARED = (Path(__file__).resolve().parents[2] / ".." / "shared").resolve()
SAMPLES = SHARED / "openjd-samples"
CONFORMANCE = SHARED / "openjd-conformance"


@pytest.fixture(scope="session")
def samples_dir() -> Path:
    if not SAMPLES.is_dir():
        pytest.skip(f"the OpenJD samples are not in {SAMPLES} (the shared folder beside the repo)")
    return SAMPLES


@pytest.fixture(scope="session")
def conformance_dir() -> Path:
    if not CONFORMANCE.is_dir():
        pytest.skip(f"the OpenJD conformance cases are not in {CONFORMANCE}")
    return CONFORMANCE


@pytest.fixture(scope="session")
def reference() -> ReferenceCli:
    cli = os.environ.get("THRESHER_OPENJD_CLI")
    if not cli:
        pytest.skip(
            "THRESHER_OPENJD_CLI is not set: run scripts/openjd-reference.sh DIR and export "
            "THRESHER_OPENJD_CLI=DIR/bin/openjd to compare with the reference openjd CLI"
        )
    if not os.access(cli, os.X_OK):
        pytest.skip(f"THRESHER_OPENJD_CLI={cli} is not an executable")
    return ReferenceCli(cli)


_LOG_LINE = re.compile(r"^\d+:\d\d:\d\d(?:\.\d+)?\t(.*)$")
_RESULTS = "--- Results of local session ---"


@dataclass(frozen=True)
class CliResult:
    succeeded: bool
    output: Mapping[str, Any]
    """The JSON answer (`check` and `summary`)."""
    text: str

    @property
    def messages(self) -> list[str]:
        """The session log of `openjd run`, read from its human-readable output: its JSON answer
        leaves the log out when the session failed."""
        messages: list[str] = []
        for line in self.text.splitlines():
            if line == _RESULTS:
                break
            match = _LOG_LINE.match(line)
            if match:
                messages.append(match.group(1))
            elif messages:
                messages[-1] += "\n" + line
        return messages


@dataclass(frozen=True)
class ReferenceCli:
    """The pinned `openjd` CLI, run as a subprocess."""

    executable: str

    def check(self, path: Path) -> CliResult:
        return self._call(["check", str(path)], json_output=False)

    def summary(self, path: Path, params: Mapping[str, Any]) -> CliResult:
        return self._call(["summary", str(path), *self._params(params)])

    def run(
        self,
        path: Path,
        *,
        step: str | None = None,
        params: Mapping[str, Any] | None = None,
        tasks: Sequence[Mapping[str, str]] | None = None,
        environments: Iterable[Path] = (),
        path_mapping_rules: Sequence[Mapping[str, str]] | None = None,
    ) -> CliResult:
        args = ["run", str(path), *self._params(params or {})]
        if step is not None:
            args += ["--step", step]
        if tasks is not None:
            args += ["--tasks", json.dumps(list(tasks))]
        for env in environments:
            args += ["--environment", str(env)]
        if path_mapping_rules is not None:
            rules = {"version": "pathmapping-1.0", "path_mapping_rules": list(path_mapping_rules)}
            args += ["--path-mapping-rules", json.dumps(rules)]
        return self._call(args, json_output=False)

    @staticmethod
    def _params(params: Mapping[str, Any]) -> list[str]:
        return ["-p", json.dumps(dict(params))] if params else []

    def _call(self, args: list[str], *, json_output: bool = True) -> CliResult:
        if json_output:
            args = [*args, "--output", "json"]
        done = subprocess.run(
            [self.executable, *args], capture_output=True, text=True, timeout=120, check=False
        )
        output: Mapping[str, Any] = {}
        if json_output:
            try:
                output = json.loads(done.stdout)
            except json.JSONDecodeError:
                output = {"status": "error", "message": done.stdout + done.stderr}
        return CliResult(done.returncode == 0, output, done.stdout + done.stderr)


@dataclass
class Action:
    """One action of a session log: its banner title and the lines its process printed."""

    title: str
    output: list[str] = field(default_factory=list)


_PROCESS_EXIT = re.compile(r"^Process pid \d+ exited with code")
# The session runs each action through a script it writes in its working directory; `openjd run`
# does not log the "Session Working Directory:" line, so this is how its directory is found.
_COMMAND_SCRIPT = re.compile(r"^Running command (/\S+)/[^/\s]+\.sh$")


def session_actions(messages: Iterable[str]) -> list[Action]:
    """Split session log messages into actions (`--------- Running Task`, `--------- Entering
    Environment: X`...), keeping each action's process output with the session working directory
    replaced by `<WD>`, so that two sessions' logs compare."""
    messages = list(messages)
    scripts = (_COMMAND_SCRIPT.match(m) for m in messages)
    working_dir = next((match.group(1) for match in scripts if match), None)
    actions: list[Action] = []
    in_output = False
    for message in messages:
        if message.startswith("--------- "):
            actions.append(Action(message[len("--------- ") :]))
            in_output = False
        elif message == "Output:":
            in_output = True
        elif _PROCESS_EXIT.match(message):
            in_output = False
        elif in_output and actions:
            text = message.replace(working_dir, "<WD>") if working_dir else message
            actions[-1].output.append(text)
    return [a for a in actions if a.title != "Session Cleanup"]


@pytest.fixture(scope="session")
def actions_of() -> Any:
    """`session_actions` as (title, output) pairs, for comparing two sessions' logs."""

    def actions(messages: Iterable[str]) -> list[tuple[str, list[str]]]:
        return [(a.title, a.output) for a in session_actions(messages)]

    return actions


_CHECK_HEADER = re.compile(r"^(\d+) validation errors? for (\w+)$", re.MULTILINE)


@pytest.fixture(scope="session")
def assert_same_issues() -> Any:
    """Where `openjd check` printed the library's errors, they are exactly a TemplateError's issues,
    each with its location."""

    def check(errors: Sequence[Any], check_output: str) -> None:
        header = _CHECK_HEADER.search(check_output)
        if header is None:
            return  # refused before the library's validation, e.g. no specificationVersion
        assert len(errors) == int(header.group(1))
        root = f"{header.group(2)}: "
        rendered = "\n".join(
            f"{e.location}:\n\t{e.message}" if e.location else f"{root}{e.message}" for e in errors
        )
        assert rendered == check_output[header.end() + 1 :].rstrip("\n")

    return check
