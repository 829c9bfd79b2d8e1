"""Task-file jobs (Disco's `job_*.txt`, Afanasy's task files): a job whose tasks are the lines
of a list, each its own argv. Pure: reading a list's text into argvs, with bounds.

A line is a task. It is split into arguments by POSIX shell-word rules (`shlex`: quotes and
backslashes group words; nothing is expanded, no shell ever runs it), or, when it starts with
`[`, read as a JSON list of strings. Blank lines and lines starting with `#` are skipped. With
`files=True` each line is one argument, the whole line (a file name, for a command prefix that
takes it: Afanasy's task files).

Placeholders are not expanded in a task's arguments: braces are literal (`escape_braces`)."""

from __future__ import annotations

import json
import shlex
from collections.abc import Mapping, Sequence
from typing import Any

from thresher.core.errors import InvalidInput

MAX_TASKS = 10_000
MAX_LINE_BYTES = 8192
MAX_ARGS = 1000


def parse_task_list(text: str, *, files: bool = False, field: str = "tasks") -> list[list[str]]:
    """The argv of each task of a list's text (see the module's docstring)."""
    tasks: list[list[str]] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        where = f"{field} line {number}"
        if len(line.encode()) > MAX_LINE_BYTES:
            raise InvalidInput(f"{where} is longer than {MAX_LINE_BYTES} bytes", field=field)
        tasks.append([line] if files else _words(line, where, field))
        if len(tasks) > MAX_TASKS:
            raise InvalidInput(f"a task list holds at most {MAX_TASKS} tasks", field=field)
    check_tasks(tasks, field=field)
    return tasks


def _words(line: str, where: str, field: str) -> list[str]:
    if line.startswith("["):
        try:
            argv = json.loads(line)
        except ValueError as exc:
            raise InvalidInput(f"{where} is not a JSON list: {exc}", field=field) from None
        if not isinstance(argv, list) or not all(isinstance(a, str) for a in argv):
            raise InvalidInput(f"{where} must be a JSON list of strings", field=field)
        return argv
    try:
        return shlex.split(line, comments=False, posix=True)
    except ValueError as exc:
        raise InvalidInput(f"{where} cannot be split into words: {exc}", field=field) from None


def check_tasks(
    tasks: Sequence[Sequence[str]], *, field: str = "tasks", prefix: bool = False
) -> None:
    """Refuse a task list past its bounds, naming the task (`tasks[i]`); a task may be empty
    only after a command `prefix`."""
    if not tasks:
        raise InvalidInput("a task-file job needs at least one task", field=field)
    if len(tasks) > MAX_TASKS:
        raise InvalidInput(f"a task-file job has at most {MAX_TASKS} tasks", field=field)
    for i, argv in enumerate(tasks):
        where = f"{field}[{i}]"
        if not argv and not prefix:
            raise InvalidInput(f"{where} is empty: a task needs a command", field=where)
        if len(argv) > MAX_ARGS:
            raise InvalidInput(f"{where} has more than {MAX_ARGS} arguments", field=where)
        if sum(len(a.encode()) + 1 for a in argv) > MAX_LINE_BYTES:
            raise InvalidInput(f"{where} is longer than {MAX_LINE_BYTES} bytes", field=where)
        if any("\x00" in a for a in argv):
            raise InvalidInput(f"{where} holds a NUL byte", field=where)


def escape_braces(argv: Sequence[str]) -> list[str]:
    """`argv` as a command template that expands to itself (no placeholders)."""
    return [a.replace("{", "{{").replace("}", "}}") for a in argv]


def task_payload(payload: Any, block: int, index: int) -> Any:
    """What one task of a job is sent: for a task-file job (`task_lines` in its payload), the
    payload of a command job whose block `block` runs that task's argv; else `payload`."""
    if not isinstance(payload, Mapping) or "task_lines" not in payload:
        return payload
    lines = payload["task_lines"]
    commands: list[list[str]] = [[] for _ in lines]
    commands[block] = list(lines[block][index])
    return {"commands": commands}
