"""GIVEN a controller WHEN `thresher sites` and `thresher volumes` run THEN they set and show
what the controller holds, and a job's sync settings per site change."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.cli.conftest import Invoke


def as_json(cli: Invoke, *args: str) -> Any:
    result = cli(*args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_sites_volumes_and_a_jobs_sync_settings(cli: Invoke, tmp_path: Path) -> None:
    token = tmp_path / "sthlm-token"
    token.write_text("secret-files-token\n")
    assert cli("sites", "set", "hq", "--main").exit_code == 0
    made = cli(
        "sites",
        "set",
        "sthlm",
        "--file-service",
        "http://files.sthlm:8421",
        "--token-file",
        str(token),
        "--bandwidth",
        "1000000",
    )
    assert made.exit_code == 0, made.output
    volume = cli(
        "volumes", "set", "proj", "--root", "hq:linux=/mnt/proj", "--root", "sthlm=/data/proj"
    )
    assert volume.exit_code == 0, volume.output
    job = cli("submit", "--name", "j", "--", "cat", "share=proj/a.txt")
    assert job.exit_code == 0, job.output
    job_id = job.stdout.strip()
    changed = as_json(
        cli, "sites", "job", job_id, "--site", "sthlm", "--no-upload", "--speed-limit", "500"
    )
    bad = cli("submit", "--name", "k", "--", "cat", "share=proj/../x")

    sites = {s["name"]: s for s in as_json(cli, "sites")}
    (listed,) = as_json(cli, "volumes")
    assert sites["hq"]["main"]
    assert sites["sthlm"]["bandwidth_bps"] == 1_000_000
    assert "secret" not in json.dumps(sites)  # the file service's token is never shown
    assert listed["roots"] == {"hq": {"linux": "/mnt/proj"}, "sthlm": {"*": "/data/proj"}}
    assert changed["sites"][0]["upload"] is False
    assert changed["sites"][0]["speed_limit_bps"] == 500
    assert bad.exit_code != 0
    assert "command[1]" in bad.output
