"""`thresher submit --task-file FILE [-- CMD...]`: a job whose tasks are FILE's lines (Disco's
`job_*.txt`, Afanasy's task files), each its own arguments after CMD. Lines are split into words
by shell rules or read as JSON lists (`thresher.core.task_files`); nothing runs in a shell."""

# Annotations here are values, not strings: see thresher.cli.main on why.

import sys
from pathlib import Path
from typing import Any

from thresher.cli.common import connect, fail
from thresher.core.errors import InvalidInput
from thresher.core.task_files import MAX_LINE_BYTES, MAX_TASKS, parse_task_list

#: The fields of `thresher submit` a task-file job takes (the others need another kind of job).
_TAKEN = frozenset(
    [
        "priority",
        "retries",
        "after",
        "cwd",
        "env",
        "max_runtime_s",
        "paused",
        "filters",
        "max_running",
        "max_running_per_host",
    ]
)
_MAX_FILE_BYTES = MAX_TASKS * (MAX_LINE_BYTES + 1)


def read_list(path: Path) -> str:
    """FILE's text ('-': stdin), refused past what a task list may hold."""
    if str(path) == "-":
        text = sys.stdin.read(_MAX_FILE_BYTES + 1)
    else:
        try:
            with path.open(encoding="utf-8") as fh:
                text = fh.read(_MAX_FILE_BYTES + 1)
        except (OSError, UnicodeDecodeError) as exc:
            fail(f"--task-file {path}: {exc}")
    if len(text) > _MAX_FILE_BYTES:
        fail(f"--task-file {path} is larger than a task list may be ({_MAX_FILE_BYTES} bytes)")
    return text


def task_file_job(
    path: Path,
    command: list[str] | None,
    name: str | None,
    as_files: bool,
    fields: dict[str, Any],
    url: str,
    token: str | None,
) -> int:
    """Submit the task-file job; its id."""
    others = sorted(k for k, v in fields.items() if k not in _TAKEN and v not in (None, False))
    if others:
        fail(f"a task-file job does not take {', '.join(others)}")
    try:
        tasks = parse_task_list(read_list(path), files=as_files, field=f"--task-file {path}")
    except InvalidInput as exc:
        fail(exc.message)
    body = {k: v for k, v in fields.items() if k in _TAKEN and v is not None}
    body |= {"name": name or Path(str(path)).name, "tasks": tasks, "command": command or []}
    with connect(url, token) as client:
        return client.create_job(body).id
