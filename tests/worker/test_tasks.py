"""Command jobs' tasks: argv, environment and working directory, made once per job."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from thresher.schemas import api
from thresher.worker.tasks import CommandBuilder, build_command


def assignment(**changes: Any) -> api.AssignmentOut:
    fields: dict[str, Any] = {
        "attempt_id": 1,
        "token": "t",
        "job_id": 7,
        "block": 0,
        "index": 3,
        "frames": [4, 5],
        "kind": "command",
        "payload": {"commands": [["render", "-f", "{frame}"]]},
        "env": {"JOB_VAR": "x"},
        "cwd": None,
        "max_runtime_s": None,
    }
    fields.update(changes)
    return api.AssignmentOut.model_validate(fields)


def test_a_task_gets_its_argv_environment_and_the_jobs_work_dir(tmp_path: Path) -> None:
    base_env = {"PATH": "/bin", "PWD": "/where/the/worker/started"}
    command = build_command(assignment(), work_dir=tmp_path, base_env=base_env)

    assert command.argv[:2] == ["render", "-f"]
    assert command.env["PATH"] == "/bin"
    assert command.env["JOB_VAR"] == "x"
    assert command.env["THRESHER_JOB_ID"] == "7"
    assert command.env["THRESHER_TASK"] == "3"
    assert command.env["THRESHER_FRAMES"] == "4,5"
    assert command.cwd == str(tmp_path / "jobs" / "7")
    assert Path(command.cwd).is_dir()
    assert command.env["PWD"] == command.cwd


def test_tasks_of_one_job_share_its_setup_but_not_their_environments(tmp_path: Path) -> None:
    builder = CommandBuilder(work_dir=tmp_path, base_env={"PATH": "/bin"})

    first = builder.build(assignment(index=0, frames=[1]))
    second = builder.build(assignment(index=1, frames=[2]))

    assert first.env is not second.env
    assert first.env["THRESHER_FRAMES"] == "1"
    assert second.env["THRESHER_FRAMES"] == "2"
    assert first.cwd == second.cwd


def test_a_work_dir_removed_under_a_job_is_made_again_after_forget(tmp_path: Path) -> None:
    builder = CommandBuilder(work_dir=tmp_path, base_env={})
    cwd = Path(builder.build(assignment()).cwd)
    cwd.rmdir()

    builder.forget(7)
    builder.build(assignment(index=4))

    assert cwd.is_dir()


def test_a_changed_job_environment_is_taken(tmp_path: Path) -> None:
    builder = CommandBuilder(work_dir=tmp_path, base_env={})
    builder.build(assignment())

    command = builder.build(assignment(env={"JOB_VAR": "y"}))

    assert command.env["JOB_VAR"] == "y"


def test_a_new_jobs_work_dir_is_the_spare_made_ahead(tmp_path: Path) -> None:
    """A spare directory made while a lane was idle becomes the next new job's own; once
    used, the next new job's is made as before; closing removes an unused spare."""
    builder = CommandBuilder(work_dir=tmp_path, base_env={})
    builder.make_spare()
    (spare,) = (tmp_path / "jobs").glob(".spare-*")

    cwd = Path(builder.build(assignment()).cwd)
    assert cwd == tmp_path / "jobs" / "7"
    assert cwd.is_dir()
    assert not spare.exists()

    assert Path(builder.build(assignment(job_id=8)).cwd).is_dir()  # no spare: made
    builder.make_spare()
    builder.make_spare()  # one spare at most
    assert len(list((tmp_path / "jobs").glob(".spare-*"))) == 1
    builder.close()
    assert sorted(p.name for p in (tmp_path / "jobs").iterdir()) == ["7", "8"]


def test_a_spare_left_by_a_killed_worker_is_removed(tmp_path: Path) -> None:
    (tmp_path / "jobs" / ".spare-1-1").mkdir(parents=True)
    builder = CommandBuilder(work_dir=tmp_path, base_env={})
    builder.make_spare()
    assert [p.name for p in (tmp_path / "jobs").glob(".spare-*")] != [".spare-1-1"]
    assert len(list((tmp_path / "jobs").glob(".spare-*"))) == 1
