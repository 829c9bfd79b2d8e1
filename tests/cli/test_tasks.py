"""GIVEN a job whose tasks wait (no worker) WHEN the task commands run THEN ..."""

from __future__ import annotations

import json

from tests.cli.conftest import Invoke


def submit(cli: Invoke, frames: str, chunk: int) -> int:
    result = cli(
        "submit", "--name", "t", "--frames", frames, "--chunk", str(chunk), "--", "echo", "{start}"
    )
    assert result.exit_code == 0, result.output
    return int(result.stdout)


def test_tasks_json_lists_the_synthesised_waiting_tasks(cli: Invoke) -> None:
    job_id = submit(cli, "1-10", 4)

    result = cli("tasks", str(job_id), "--json")

    assert result.exit_code == 0, result.output
    tasks = json.loads(result.stdout)
    assert [(t["index"], t["frames"], t["status"], t["worker"]) for t in tasks] == [
        (0, [1, 2, 3, 4], "waiting", None),
        (1, [5, 6, 7, 8], "waiting", None),
        (2, [9, 10], "waiting", None),
    ]


def test_tasks_pages_and_filters(cli: Invoke) -> None:
    job_id = submit(cli, "1-1000", 1)
    assert cli("task", "skip", f"{job_id}/501").exit_code == 0

    page = json.loads(cli("tasks", str(job_id), "--offset", "500", "--limit", "3", "--json").stdout)
    skipped = json.loads(
        cli(
            "tasks", str(job_id), "--offset", "500", "--limit", "3", "--status", "skipped", "--json"
        ).stdout
    )
    table = cli("tasks", str(job_id), "--limit", "2")

    assert [(t["index"], t["status"]) for t in page] == [
        (500, "waiting"),
        (501, "skipped"),
        (502, "waiting"),
    ]
    assert [t["index"] for t in skipped] == [501]
    assert table.exit_code == 0, table.output
    assert "of 1000" in table.stdout


def test_task_show_retry_and_skip(cli: Invoke) -> None:
    job_id = submit(cli, "1-10", 5)
    ref = f"{job_id}/0/1"

    shown = json.loads(cli("task", "show", ref, "--json").stdout)
    skipped = cli("task", "skip", ref)
    retried = cli("task", "retry", ref)

    assert (shown["index"], shown["frames"], shown["status"]) == (1, [6, 7, 8, 9, 10], "waiting")
    assert shown["attempts_detail"] == []
    assert skipped.stdout.strip() == f"task {ref}: skipped"
    assert retried.stdout.strip() == f"task {ref}: queued"
    again = cli("task", "show", ref)
    assert again.exit_code == 0, again.output
    assert "waits: no worker is online" in again.stdout  # why it waits, from the controller


def test_log_of_a_task_that_never_ran_is_empty(cli: Invoke) -> None:
    job_id = submit(cli, "1-10", 5)

    result = cli("log", f"{job_id}/0")

    assert result.exit_code == 0, result.output
    assert result.stdout == ""


def test_log_follow_ends_when_the_task_is_final(cli: Invoke) -> None:
    job_id = submit(cli, "1-10", 5)
    cli("task", "skip", f"{job_id}/0")

    result = cli("log", f"{job_id}/0", "--follow", "--every", "0.1")

    assert result.exit_code == 0, result.output


def test_a_malformed_task_name_is_refused(cli: Invoke) -> None:
    result = cli("log", "3:1")

    assert result.exit_code == 2
    assert "JOB/INDEX" in result.output
