"""A lane keeps one OpenJD session per job: environments are entered once for that job's tasks,
exited when the lane moves to another job (their lines going to the job's last attempt), path
mapping rules are the job's then the worker's, and a cancel is the session's own."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from thresher.openjd import plan_job
from thresher.schemas import api
from thresher.worker.openjd_lane import OpenJDLanes
from thresher.worker.outbox import Outbox

pytestmark = pytest.mark.openjd

JOB = """
specificationVersion: jobtemplate-2023-09
name: Lane
parameterDefinitions:
- {name: Where, type: PATH, default: /mnt/shared/shot}
jobEnvironments:
- name: Setup
  script:
    actions:
      onEnter: {command: bash, args: ["-c", "echo enter {{Param.Where}}"]}
      onExit: {command: bash, args: ["-c", "echo exit"]}
steps:
- name: Work
  parameterSpace:
    taskParameterDefinitions:
    - {name: N, type: INT, range: "1-3"}
  script:
    actions:
      onRun:
        command: bash
        args:
        - -c
        - "echo 'openjd_progress: 50'; echo 'openjd_status: half'; echo task {{Task.Param.N}}"
"""
WAIT = """
specificationVersion: jobtemplate-2023-09
name: Wait
steps:
- name: Wait
  script:
    actions:
      onRun:
        command: bash
        args: ["-c", "echo waiting; sleep 60"]
"""


def assignment(job_id: int, attempt_id: int, template: str, index: int, **payload: Any) -> Any:
    plan = plan_job(template)
    return api.AssignmentOut(
        attempt_id=attempt_id,
        token=f"t{attempt_id}",
        job_id=job_id,
        block=0,
        index=index,
        frames=[index],
        kind="openjd",
        payload={
            "openjd": plan.to_json(),
            "steps": [s.to_json() for s in plan.steps],
            **payload,
        },
        env={},
        cwd=None,
        max_runtime_s=None,
    )


def lines(outbox: Outbox) -> dict[int, list[str]]:
    output, _ = outbox.drain()
    return {b.attempt_id: [t for s, t in b.lines if s == "stdout"] for b in output}


def test_a_lane_reuses_its_jobs_session_and_closes_it_for_another_job(tmp_path: Path) -> None:
    outbox = Outbox()
    lanes = OpenJDLanes(tmp_path, outbox)
    never = threading.Event()

    first = lanes.run(0, assignment(1, 10, JOB, 0), never)
    second = lanes.run(0, assignment(1, 11, JOB, 1), never)
    assert lanes.job_on(0) == 1
    other = lanes.run(0, assignment(2, 20, WAIT.replace("sleep 60", "true"), 0), never)
    lanes.close_all()

    assert [r.status for r in (first, second, other)] == ["succeeded"] * 3
    got = lines(outbox)
    assert got[10] == [
        "enter /mnt/shared/shot",
        "openjd_progress: 50",
        "openjd_status: half",
        "task 1",
    ]
    # The session went on for job 1's next task; its exit went to that last attempt.
    assert got[11] == ["openjd_progress: 50", "openjd_status: half", "task 2", "exit"]
    assert got[20] == ["waiting"]
    assert lanes.job_on(0) is None


def test_progress_and_status_reach_the_outbox(tmp_path: Path) -> None:
    outbox = Outbox()
    lanes = OpenJDLanes(tmp_path, outbox)
    lanes.run(0, assignment(1, 10, JOB, 2), threading.Event())
    output, _ = outbox.drain()
    lanes.close_all()
    [batch] = output
    assert (batch.progress, batch.status_message) == (50.0, "half")


def test_job_rules_then_worker_rules_map_paths(tmp_path: Path) -> None:
    worker_rule = {"source_path_format": "POSIX", "source_path": "/mnt", "destination_path": "/w"}
    job_rule = {
        "source_path_format": "POSIX",
        "source_path": "/mnt/shared",
        "destination_path": "/job",
    }
    outbox = Outbox()
    lanes = OpenJDLanes(tmp_path, outbox, path_mapping_rules=[worker_rule])
    lanes.run(0, assignment(1, 10, JOB, 0), threading.Event())
    lanes.run(1, assignment(2, 20, JOB, 0, path_mapping_rules=[job_rule]), threading.Event())
    lanes.close_all()
    got = lines(outbox)
    assert got[10][0] == "enter /w/shared/shot"
    assert got[20][0] == "enter /job/shot"


def test_cancel_is_the_sessions_own_and_ends_the_task_canceled(tmp_path: Path) -> None:
    outbox = Outbox()
    lanes = OpenJDLanes(tmp_path, outbox)
    stop = threading.Event()
    result: list[Any] = []
    runner = threading.Thread(
        target=lambda: result.append(lanes.run(0, assignment(1, 10, WAIT, 0), stop))
    )
    runner.start()
    deadline = time.monotonic() + 30
    while "waiting" not in [t for b in outbox.drain()[0] for _, t in b.lines]:
        assert time.monotonic() < deadline, "the task never started"
        time.sleep(0.01)  # polling interval: the task's own line decides
    stop.set()
    lanes.cancel(0)
    runner.join(30)
    assert not runner.is_alive()
    assert result[0].status == "canceled"
    lanes.close_all()


def test_a_cancel_before_the_task_starts_runs_nothing(tmp_path: Path) -> None:
    outbox = Outbox()
    stop = threading.Event()
    stop.set()
    result = OpenJDLanes(tmp_path, outbox).run(0, assignment(1, 10, WAIT, 0), stop)
    assert result.status == "canceled"
    assert "waiting" not in lines(outbox).get(10, [])
