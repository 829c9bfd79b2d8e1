"""End to end: scheduling with a controller and workers as real processes on 127.0.0.1.

Workers stand in for different machines through their command line (`--attr hostname=...`,
`--attr ram=...`, `--site`, `--pool`), so one test machine plays a small studio.
"""

from __future__ import annotations

import signal
from collections import defaultdict
from pathlib import Path

import pytest

from tests.e2e.conftest import Farm
from thresher.client import Client
from thresher.schemas import api
from thresher.testing import wait_until

pytestmark = pytest.mark.e2e


def done(client: Client, *job_ids: int, timeout: float = 120) -> None:
    wait_until(
        lambda: all(client.job(j).status == "succeeded" for j in job_ids),
        timeout=timeout,
        what=f"jobs {job_ids} done",
    )


def max_overlap(intervals: list[tuple[float, float]]) -> int:
    """The most intervals [start, end) open at one moment."""
    events = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals])
    most = now = 0
    for _, step in events:
        now += step
        most = max(most, now)
    return most


def test_filters_land_only_where_allowed_and_a_license_limit_of_2_holds(farm: Farm) -> None:
    farm.controller()
    hosts = {
        "ren01": ["--attr", "ram=128GB", "--site", "hq", "--pool", "render"],
        "ren02": ["--attr", "ram=64GB", "--site", "hq", "--pool", "render"],
        "ws01": ["--attr", "ram=16GB", "--site", "sthlm", "--label", "desk=yes"],
    }
    for name, args in hosts.items():
        farm.worker(name, lanes=2, args=["--attr", f"hostname={name}", *args])
    with farm.client() as client:
        client.set_limit("nuke", max_total=2)
        sleepy = ["sh", "-c", "sleep 0.3"]
        big = client.submit("big", sleepy, frames="1-8", filters="ram:>60GB")
        remote = client.submit("remote", sleepy, frames="1-6", filters="site:sthlm")
        desk = client.submit("desk", sleepy, frames="1-4", filters="label:desk=yes,ram:<32g")
        comp = client.submit("comp", sleepy, frames="1-12", limits=["nuke"])
        done(client, big.id, remote.id, desk.id, comp.id)
        where = {j.id: {a.worker for a in client.attempts(j.id)} for j in (big, remote, desk)}
        licensed = client.attempts(comp.id)

    assert where[big.id] <= {"ren01", "ren02"}
    assert where[remote.id] == {"ws01"}
    assert where[desk.id] == {"ws01"}
    spans = [(a.created_at, a.ended_at) for a in licensed if a.ended_at is not None]
    assert len(spans) == 12
    assert max_overlap(spans) == 2  # six lanes, but never more than two licenses at once


def test_a_dedicated_job_takes_its_pools_workers_ahead_of_a_higher_priority_job(
    farm: Farm,
) -> None:
    farm.controller()
    with farm.client() as client:
        sleepy = ["sh", "-c", "sleep 0.3"]
        high = client.submit("high", sleepy, frames="1-6", priority=90)
        dedicated = client.submit(
            "dedicated", sleepy, frames="1-6", priority=10, filters="pool:@lighting"
        )
        farm.worker("lighting-1", args=["--pool", "lighting"])
        farm.worker("general-1")
        done(client, high.id, dedicated.id)
        runs = sorted(
            (a.created_at, a.worker, job_id)
            for job_id in (high.id, dedicated.id)
            for a in client.attempts(job_id)
        )

    on_pool = [job_id for _, worker, job_id in runs if worker == "lighting-1"]
    # The pool's worker serves the dedicated job first, whatever the other job's priority...
    assert on_pool[: on_pool.count(dedicated.id)] == [dedicated.id] * on_pool.count(dedicated.id)
    # ...and the general worker starts on the higher-priority job.
    assert next(job_id for _, worker, job_id in runs if worker == "general-1") == high.id


def test_frame_by_frame_starts_downstream_frames_before_the_upstream_block_ends(
    farm: Farm,
) -> None:
    farm.controller()
    farm.worker("w1", lanes=2)
    farm.worker("w2", lanes=2)
    render = ["sh", "-c", "sleep 0.2; if [ {frame} -eq 8 ]; then sleep 3; fi"]
    blocks = [
        api.BlockIn.model_validate({"name": "render", "frames": "1-8", "command": render}),
        api.BlockIn.model_validate(
            {"name": "comp", "frames": "1-8", "command": ["true"], "after_frames": ["render"]}
        ),
    ]
    with farm.client() as client:
        job = client.submit_job(api.JobIn(name="shot", blocks=blocks))
        done(client, job.id)
        attempts = client.attempts(job.id)

    render_end = max(a.ended_at or 0 for a in attempts if a.block == 0)
    comp_starts = {a.index: a.created_at for a in attempts if a.block == 1}
    frame_done = {a.index: a.ended_at or 0 for a in attempts if a.block == 0}
    assert comp_starts[0] < render_end  # comp frame 1 ran while render frame 8 still ran
    assert all(comp_starts[i] >= frame_done[i] for i in range(8))  # never before its frame


def test_a_failing_host_is_avoided_then_forgiven(farm: Farm) -> None:
    farm.controller()
    farm.worker("bad")
    farm.worker("good")
    # Tasks fail on the worker whose work directory is work-bad, and succeed elsewhere.
    script = 'case "$PWD" in *work-bad*) exit 1;; esac; sleep 0.25'
    forgive = 2.0
    with farm.client() as client:
        job = client.submit(
            "flaky",
            ["sh", "-c", script],
            frames="1-40",
            retries=20,
            errors_to_avoid=2,
            forgive_s=forgive,
        )
        done(client, job.id, timeout=180)
        bad = [a for a in client.attempts(job.id) if a.worker == "bad"]

    assert {a.status for a in bad} == {"failed"}
    assert len(bad) >= 3  # avoided after two errors, then forgiven and tried again
    ends = [a.ended_at or 0 for a in bad]
    # Two errors, then nothing until the forgive time has passed since the second.
    assert bad[2].created_at - ends[1] >= forgive


def test_nimby_from_the_controller_and_from_the_workers_machine(farm: Farm, tmp_path: Path) -> None:
    farm.controller(heartbeat=0.3)
    proc = farm.worker("desk")
    marks = tmp_path / "marks"
    marks.mkdir()
    with farm.client() as client:
        job = client.submit(
            "long", ["sh", "-c", f"touch {marks}/{{frame}}; sleep 30"], frames="1-3", retries=0
        )
        wait_until(lambda: any(marks.iterdir()), timeout=30, what="a task running")
        client.stop_worker("desk")  # stop: the running task is killed and requeued
        wait_until(
            lambda: [a.status for a in client.attempts(job.id)] == ["canceled"],
            timeout=30,
            what="the task stopped",
        )
        assert client.task(job.id, 0).status == "queued"
        client.resume_worker("desk")
        wait_until(
            lambda: len(client.attempts(job.id)) == 2, timeout=30, what="the task running again"
        )

        proc.popen.send_signal(signal.SIGUSR2)  # the person at the machine stops it
        wait_until(
            lambda: client.worker("desk").local_nimby == "stopped", timeout=30, what="local stop"
        )
        wait_until(
            lambda: all(a.status == "canceled" for a in client.attempts(job.id)),
            timeout=30,
            what="the task stopped again",
        )
        assert (farm.work_dir("desk") / "nimby").read_text().strip() == "stop"
        (farm.work_dir("desk") / "nimby").unlink()  # `thresher nimby resume` does this
        wait_until(
            lambda: client.worker("desk").local_nimby is None, timeout=30, what="local resume"
        )
        wait_until(lambda: len(client.attempts(job.id)) == 3, timeout=30, what="running once more")
        client.cancel(job.id)
        statuses: defaultdict[str, int] = defaultdict(int)
        for a in client.attempts(job.id):
            statuses[a.status] += 1
    assert statuses["failed"] == 0
