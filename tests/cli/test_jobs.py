"""GIVEN submitted jobs (no worker, so their tasks wait) WHEN the job commands run THEN ..."""

from __future__ import annotations

import json

from tests.cli.conftest import Invoke


def submit(cli: Invoke, name: str = "job", *extra: str) -> int:
    result = cli(
        "submit",
        "--name",
        name,
        "--frames",
        "1-10",
        "--chunk",
        "5",
        *extra,
        "--",
        "echo",
        "{start}",
    )
    assert result.exit_code == 0, result.output
    return int(result.stdout)


def show(cli: Invoke, job_id: int) -> dict[str, object]:
    result = cli("job", "show", str(job_id), "--json")
    assert result.exit_code == 0, result.output
    body: dict[str, object] = json.loads(result.stdout)
    return body


def test_job_show_json_has_id_name_status_and_counts_by_state(cli: Invoke) -> None:
    job_id = submit(cli, "shown")

    job = show(cli, job_id)

    assert (job["id"], job["name"], job["status"]) == (job_id, "shown", "queued")
    assert job["counts"] == {
        "total": 2,
        "waiting": 2,
        "queued": 0,
        "running": 0,
        "succeeded": 0,
        "failed": 0,
        "skipped": 0,
        "canceled": 0,
    }


def test_job_show_text_names_the_job(cli: Invoke) -> None:
    job_id = submit(cli, "texty")

    result = cli("job", "show", str(job_id))

    assert result.exit_code == 0, result.output
    assert f"job {job_id}" in result.stdout
    assert "texty" in result.stdout


def test_jobs_lists_and_filters(cli: Invoke) -> None:
    first = submit(cli, "first")
    second = submit(cli, "second", "--paused")

    every = json.loads(cli("jobs", "--json").stdout)
    paused = json.loads(cli("jobs", "--status", "paused", "--json").stdout)
    table = cli("jobs")

    assert {j["id"] for j in every} == {first, second}
    assert [j["id"] for j in paused] == [second]
    assert table.exit_code == 0, table.output
    assert "first" in table.stdout
    assert "0/2" in table.stdout


def test_jobs_with_an_unknown_status_is_refused(cli: Invoke) -> None:
    result = cli("jobs", "--status", "sleeping")

    assert result.exit_code == 2
    assert "(field: status)" in result.stderr


def test_pause_resume_and_cancel_print_the_new_status(cli: Invoke) -> None:
    job_id = submit(cli)

    paused = cli("pause", str(job_id))
    assert paused.exit_code == 0, paused.output
    assert paused.stdout.strip() == f"job {job_id}: paused"
    assert show(cli, job_id)["status"] == "paused"

    resumed = cli("resume", str(job_id))
    assert resumed.stdout.strip() == f"job {job_id}: queued"

    canceled = cli("cancel", str(job_id))
    assert canceled.stdout.startswith(f"job {job_id}: canceled")
    assert show(cli, job_id)["status"] == "canceled"


def test_priority_sets_the_priority(cli: Invoke) -> None:
    job_id = submit(cli)

    result = cli("priority", str(job_id), "90")

    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == f"job {job_id}: priority 90"
    assert show(cli, job_id)["priority"] == 90


def test_priority_out_of_range_is_refused(cli: Invoke) -> None:
    job_id = submit(cli)

    assert cli("priority", str(job_id), "101").exit_code == 2
    assert show(cli, job_id)["priority"] == 50


def test_delete_removes_the_job(cli: Invoke) -> None:
    job_id = submit(cli)

    result = cli("delete", str(job_id), "--yes")

    assert result.exit_code == 0, result.output
    gone = cli("job", "show", str(job_id))
    assert gone.exit_code == 2
    assert gone.stderr.startswith("error: ")


def test_an_unknown_job_is_an_error(cli: Invoke) -> None:
    result = cli("pause", "4242")

    assert result.exit_code == 2
    assert result.stderr.startswith("error: ")


def test_watch_exits_0_when_the_job_succeeds(cli: Invoke) -> None:
    job_id = submit(cli)
    for index in (0, 1):
        assert cli("task", "skip", f"{job_id}/{index}").exit_code == 0

    result = cli("watch", str(job_id), "--every", "0.1")

    assert result.exit_code == 0, result.output
    assert "2/2" in result.stdout


def test_watch_exits_1_when_the_job_is_canceled(cli: Invoke) -> None:
    job_id = submit(cli)
    cli("cancel", str(job_id))

    result = cli("watch", str(job_id), "--every", "0.1")

    assert result.exit_code == 1
    assert "canceled" in result.stdout


def test_job_why_and_job_show_say_why_a_job_waits(cli: Invoke) -> None:
    first = submit(cli, "first")
    second = submit(cli, "second", "--after", str(first))

    no_worker = cli("job", "why", str(first))
    waiting = cli("job", "why", str(second), "--json")
    shown = cli("job", "show", str(first))

    assert no_worker.exit_code == 0, no_worker.output
    assert "block 0 main: 2 tasks to run" in no_worker.stdout
    assert "no worker is online" in no_worker.stdout
    assert "no worker is online" in shown.stdout
    answer = json.loads(waiting.stdout)
    assert answer["status"] == "waiting"
    assert str(first) in answer["reason"]
