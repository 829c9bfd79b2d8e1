"""A task-file job from `thresher submit --task-file` runs on a real worker: each line its own
task, its words passed as arguments (no shell: quotes group, `$HOME` and braces stay as written)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.e2e.conftest import THRESHER, Farm
from tests.e2e.openjd_support import task_texts, wait_final

pytestmark = [pytest.mark.e2e]

LIST = """# job_shots.txt: one task a line
'sc 01' {frame}
sc02 $HOME
["sc03", "it's; fine"]
"""


def test_each_line_of_a_task_file_runs_as_its_own_argv(sqlite_farm: Farm, tmp_path: Path) -> None:
    farm = sqlite_farm
    farm.controller()
    farm.worker("w1", lanes=2)
    listing = tmp_path / "job_shots.txt"
    listing.write_text(LIST)

    done = subprocess.run(
        [
            THRESHER,
            "submit",
            "--task-file",
            str(listing),
            "--url",
            farm.url,
            "--token",
            farm.token,
            "--",
            "printf",
            "%s|",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    job_id = int(done.stdout.strip())

    [job] = wait_final(farm, [job_id], timeout=60).values()
    assert (job.name, job.status, job.counts.total) == ("job_shots.txt", "succeeded", 3)
    assert task_texts(farm, job_id, 0, 0) == ["sc 01|{frame}|"]
    assert task_texts(farm, job_id, 0, 1) == ["sc02|$HOME|"]
    assert task_texts(farm, job_id, 0, 2) == ["sc03|it's; fine|"]


def test_a_bad_task_file_is_refused_naming_its_line(sqlite_farm: Farm, tmp_path: Path) -> None:
    farm = sqlite_farm
    farm.controller()
    listing = tmp_path / "bad.txt"
    listing.write_text("ok\necho 'unclosed\n")
    done = subprocess.run(
        [THRESHER, "submit", "--task-file", str(listing), "--url", farm.url, "--token", farm.token],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode != 0
    assert f"--task-file {listing} line 2 cannot be split into words" in done.stderr
