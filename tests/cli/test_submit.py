"""GIVEN a running controller WHEN a command job is submitted from the CLI THEN ..."""

from __future__ import annotations

import json

from tests.cli.conftest import Invoke


def test_submit_prints_the_new_job_id(cli: Invoke) -> None:
    result = cli(
        "submit",
        "--name",
        "hello",
        "--frames",
        "1-10",
        "--chunk",
        "5",
        "--",
        "echo",
        "-n",
        "{start}-{end}",
    )

    assert result.exit_code == 0, result.output
    job_id = int(result.stdout.strip())
    shown = json.loads(cli("job", "show", str(job_id), "--json").stdout)
    assert shown["name"] == "hello"
    assert shown["payload"]["commands"] == [["echo", "-n", "{start}-{end}"]]


def test_submit_json_prints_an_object_with_the_id(cli: Invoke) -> None:
    result = cli("submit", "--name", "hello", "--json", "--", "true")

    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert list(body) == ["id"]
    assert isinstance(body["id"], int)


def test_submit_passes_every_option(cli: Invoke) -> None:
    first = int(cli("submit", "--name", "first", "--", "true").stdout)

    result = cli(
        "submit",
        "--name",
        "second",
        "--frames",
        "1-20",
        "--chunk",
        "4",
        "--priority",
        "80",
        "--retries",
        "1",
        "--after",
        str(first),
        "--env",
        "A=1",
        "--env",
        "B=x=y",
        "--cwd",
        "/tmp",
        "--priority-frames",
        "10",
        "--max-runtime",
        "60",
        "--paused",
        "--json",
        "--",
        "render",
        "{frames}",
    )

    assert result.exit_code == 0, result.output
    job = json.loads(cli("job", "show", str(json.loads(result.stdout)["id"]), "--json").stdout)
    assert job["priority"] == 80
    assert job["after"] == [first]
    assert job["env"] == {"A": "1", "B": "x=y"}
    assert job["cwd"] == "/tmp"
    assert job["paused"] is True
    assert job["status"] == "paused"
    [block] = job["blocks"]
    assert (block["frames"], block["chunk"], block["retries"]) == ("1-20", 4, 1)
    assert block["priority_frames"] == "10"
    assert block["max_runtime_s"] == 60


def test_a_malformed_frame_range_is_refused_naming_the_field(cli: Invoke) -> None:
    result = cli("submit", "--name", "bad", "--frames", "1-x", "--", "true")

    assert result.exit_code == 2
    assert result.stderr.startswith("error: ")
    assert "(field: frames)" in result.stderr
    assert json.loads(cli("jobs", "--json").stdout) == []


def test_an_env_pair_without_equals_is_refused_before_sending(cli: Invoke) -> None:
    result = cli("submit", "--name", "bad", "--env", "NOVALUE", "--", "true")

    assert result.exit_code == 2
    assert "expected K=V" in result.stderr
    assert json.loads(cli("jobs", "--json").stdout) == []


def test_a_command_is_required(cli: Invoke) -> None:
    result = cli("submit", "--name", "nothing")

    assert result.exit_code == 2
