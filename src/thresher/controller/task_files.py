"""Task-file jobs compiled: a command job of one block whose task `i` runs `command + tasks[i]`.

The block's frames are the task positions (0 to n-1, one per task); the argvs are kept in the
job's payload (`task_lines`, braces escaped so nothing expands) and the claim hands each
assignment only its own task's argv (`task_payload`), so a worker is sent one line, not the
list."""

from __future__ import annotations

import dataclasses

from thresher.controller.compile import compile_job
from thresher.controller.compile.lookup import Lookup
from thresher.controller.compile.policy import SubmitPolicy
from thresher.core.model import JobSpec
from thresher.core.task_files import check_tasks, escape_braces
from thresher.schemas import api
from thresher.schemas.submitters import TaskFileJobIn


def compile_task_file(
    body: TaskFileJobIn, *, owner: str, lookup: Lookup, policy: SubmitPolicy
) -> JobSpec:
    check_tasks(body.tasks, prefix=bool(body.command))
    job = api.JobIn(
        name=body.name,
        priority=body.priority,
        command=["task-file"],  # stands in for the lines; never run (see task_payload)
        frames=f"0-{len(body.tasks) - 1}",
        chunk=1,
        retries=body.retries,
        max_runtime_s=body.max_runtime_s,
        after=body.after,
        env=body.env,
        cwd=body.cwd,
        paused=body.paused,
        filters=body.filters,
        max_running=body.max_running,
        max_running_per_host=body.max_running_per_host,
    )
    spec = compile_job(job, owner=owner, lookup=lookup, policy=policy)
    lines = [escape_braces([*body.command, *task]) for task in body.tasks]
    return dataclasses.replace(spec, payload={"commands": [[]], "task_lines": [lines]})
