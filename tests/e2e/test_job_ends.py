"""End to end: a job whose first block always fails ends `failed`, its second block never
runs, and `thresher watch` returns (non-zero) instead of waiting for ever."""

from __future__ import annotations

import os
import subprocess
import time

import pytest

from tests.e2e.conftest import THRESHER, Farm
from thresher.schemas import api
from thresher.testing import wait_until

pytestmark = pytest.mark.e2e

#: How long `thresher watch` may take to see the job end (the job itself takes well under 1 s).
WATCH_DEADLINE_S = 30.0


def test_a_failed_first_block_ends_the_job_and_watch_returns(farm: Farm) -> None:
    farm.controller()
    farm.worker("w1", lanes=2)
    with farm.client() as client:
        job = client.submit_job(
            api.JobIn(
                name="doomed",
                blocks=[
                    api.BlockIn(name="render", frames="1-2", command=["false"], retries=0),
                    api.BlockIn(name="encode", frames="1", command=["true"], after=["render"]),
                ],
            )
        )
        started = time.monotonic()
        watch = subprocess.run(
            [THRESHER, "watch", str(job.id), "--every", "0.2"],
            env={**os.environ, "THRESHER_URL": farm.url, "THRESHER_TOKEN": farm.token},
            capture_output=True,
            timeout=WATCH_DEADLINE_S,
            check=False,
        )
        took = time.monotonic() - started
        done = client.job(job.id)
        attempts = client.attempts(job.id)
        encode = client.tasks(job.id, block=1).tasks

    assert watch.returncode == 1, watch.stdout.decode() + watch.stderr.decode()
    assert took < WATCH_DEADLINE_S
    assert done.status == "failed"
    assert done.status_reason == (
        "2 tasks of block render failed; 1 task of block encode never ran"
    )
    assert [t.status for t in encode] == ["canceled"]
    assert sorted((a.block, a.index, a.status) for a in attempts) == [
        (0, 0, "failed"),
        (0, 1, "failed"),
    ]


def test_an_executable_missing_everywhere_fails_its_job_after_two_hosts(farm: Farm) -> None:
    """Real workers: the spawn fails before the process starts on one host, then on another, and
    the task fails there and then, though it had retries left; neither host is sick."""
    farm.controller()
    farm.worker("w1")
    farm.worker("w2")
    with farm.client() as client:
        job = client.submit("typo", ["thresher-no-such-program-blendr"], retries=8)
        wait_until(
            lambda: client.job(job.id).finished_at is not None, timeout=30, what="the job ended"
        )
        done = client.job(job.id)
        attempts = client.attempts(job.id)
        workers = client.workers()

    assert done.status == "failed"
    assert len(attempts) == 2
    assert {a.worker for a in attempts} == {"w1", "w2"}
    assert "executable not found" in (attempts[-1].message or "")
    assert "broken definition" in (attempts[-1].message or "")
    assert [w.sick_since for w in workers] == [None, None]
