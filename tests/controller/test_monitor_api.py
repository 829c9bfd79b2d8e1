"""The web monitor's API over HTTP on a served controller (SQLite and PostgreSQL): task runs
of a big block, range actions, statistics that match the attempt history, estimates, stuck
tasks, resource samples kept and downsampled."""

from __future__ import annotations

import httpx
from tests.controller.conftest import Serve
from tests.controller.test_dispatch import ended, worker

from thresher.client import Client
from thresher.schemas import api
from thresher.store.monitor import TIERS
from thresher.testing import FakeClock, ServedController

#: The fake clock jumps further than a lease: the sweeper (a real-time loop reading the fake
#: clock) must not take the test's worker offline meanwhile.
LONG_LEASE_S = 1e6


def _http(served: ServedController, admin: Client) -> httpx.Client:
    return httpx.Client(
        base_url=served.url, headers={"Authorization": f"Bearer {served.admin_token}"}
    )


def test_runs_of_a_100000_task_block_are_a_few_runs_with_their_frames(
    served: ServedController, admin: Client
) -> None:
    job = admin.submit("big", ["true"], frames="1-100000")
    w = worker(served, "w1", lanes=3)
    a, b, _running = w.poll().assignments
    w.poll(want=0, finished=[ended(a), ended(b, "failed", exit_code=3)])

    runs = admin.runs(job.id)

    assert runs.task_count == 100_000
    shape = [(r.status, r.first, r.last) for r in runs.runs]
    assert shape == [
        ("succeeded", 0, 0),
        ("queued", 1, 1),  # a failure with retries left waits again
        ("running", 2, 2),
        ("waiting", 3, 99_999),
    ]
    assert runs.runs[-1].last_frames == [100_000]


def test_a_range_is_skipped_then_retried_in_one_call_each(
    served: ServedController, admin: Client
) -> None:
    job = admin.submit("strip", ["true"], frames="1-20")
    w = worker(served, "w1", lanes=1)
    (first,) = w.poll().assignments  # task 0 runs

    skipped = admin.act_on_range(job.id, 0, 9, "skip")

    assert (skipped.affected, skipped.unchanged) == (10, 0)
    statuses = [(r.status, r.first, r.last) for r in admin.runs(job.id).runs]
    # the running task is asked to stop; the others are skipped at once
    assert statuses == [("running", 0, 0), ("skipped", 1, 9), ("waiting", 10, 19)]
    w.poll(want=0, finished=[ended(first, "canceled")])
    retried = admin.act_on_range(job.id, 5, 14, "retry")
    assert retried.affected == 5  # only the skipped tasks 5-9; 10-14 never ran
    runs = [(r.status, r.first, r.last) for r in admin.runs(job.id).runs]
    assert ("queued", 5, 9) in runs
    canceled = admin.act_on_range(job.id, 15, 19, "cancel")
    assert canceled.affected == 5
    assert admin.job(job.id).counts.canceled == 5


def test_a_range_past_the_bound_is_refused_naming_the_field(
    served: ServedController, admin: Client
) -> None:
    job = admin.submit("strip", ["true"], frames="1-20")
    for body, field in (
        ({"first": 0, "last": 20_000, "action": "skip"}, "last"),
        ({"first": 50, "last": 60, "action": "skip"}, "first"),
        ({"first": 0, "last": 1, "action": "explode"}, "action"),
    ):
        answer = _http(served, admin).post(f"/api/v1/jobs/{job.id}/blocks/0/range", json=body)
        assert answer.status_code == 422, body
        assert field in answer.json()["field"], answer.json()


def test_stats_match_the_attempt_history_they_summarise(serve: Serve) -> None:
    clock = FakeClock()
    served = serve(clock=clock, lease_s=LONG_LEASE_S)
    with Client(served.url, served.admin_token) as admin:
        job = admin.submit("stats", ["true"], frames="1-10", chunk=3)  # tasks of 3,3,3,1
        w = worker(served, "w1", lanes=4)
        got = w.poll().assignments
        clock.advance(60)
        fins = [ended(a, duration_s=10.0 * (i + 1), cpu_s=7.5) for i, a in enumerate(got[:3])]
        fins.append(ended(got[3], "failed", duration_s=5.0))
        w.poll(want=0, finished=fins)

        stats = admin.stats()
        history = admin.attempts(job.id)

    ended_ok = [a for a in history if a.status == "succeeded"]
    assert [a.cpu_s for a in ended_ok] == [7.5, 7.5, 7.5]  # each task's CPU time, as reported
    frames = sum(len(admin_frames) for admin_frames in _frames(job, ended_ok))
    (engine,) = stats.by_engine
    assert engine.key == "command"
    assert engine.attempts == len(history) == 4
    assert (engine.succeeded, engine.failed) == (3, 1)
    assert engine.frames == frames
    assert engine.render_hours == round(sum(a.duration_s or 0 for a in history) / 3600, 6)
    assert engine.failure_rate == 0.25
    assert engine.cpu_hours == round(3 * 7.5 / 3600, 6)
    (host,) = stats.by_host
    assert (host.key, host.attempts) == ("w1", 4)
    (user,) = stats.by_user
    assert user.key == job.owner
    (day,) = stats.by_day
    assert day.frames == frames
    (wait,) = stats.queue_wait_by_user
    assert wait.jobs == 1


def _frames(job: api.JobOut, attempts: list[api.AttemptOut]) -> list[list[int]]:
    """Each attempt's frames: tasks of 3 frames of 1-10."""
    return [list(range(1 + 3 * a.index, min(1 + 3 * (a.index + 1), 11))) for a in attempts]


def test_eta_is_within_20_percent_on_a_job_of_known_task_durations(serve: Serve) -> None:
    """Twenty tasks of 10 s each on two lanes: after the first four, the rest takes 80 s."""
    clock = FakeClock()
    served = serve(clock=clock, lease_s=LONG_LEASE_S)
    with Client(served.url, served.admin_token) as admin:
        job = admin.submit("timed", ["true"], frames="1-20")
        w = worker(served, "w1", lanes=2)
        running = w.poll().assignments
        for _ in range(2):
            clock.advance(10)
            running = w.poll(finished=[ended(a, duration_s=10.0) for a in running]).assignments
        clock.advance(4)  # the two running tasks have run 4 s of their 10

        eta = admin.eta(job.id)
        shown = admin.job(job.id)
        one_running = admin.task(job.id, running[0].index)
        waiting = admin.task(job.id, 19)

    truth = 6 + 14 * 10 / 2  # what is left of the running pair, then 7 rounds of two
    assert eta.eta_s is not None
    assert abs(eta.eta_s - truth) <= 0.2 * truth
    assert shown.eta_s is not None
    assert one_running.eta_s == 6.0  # 4 s run of its block's 10
    assert waiting.eta_s == 10.0  # a whole run, once it runs
    assert abs(shown.eta_s - truth) <= 0.2 * truth


def test_a_task_running_far_past_its_block_usual_time_is_stuck(serve: Serve) -> None:
    clock = FakeClock()
    served = serve(clock=clock, lease_s=LONG_LEASE_S)
    with Client(served.url, served.admin_token) as admin:
        job = admin.submit("slow", ["true"], frames="1-3")
        w = worker(served, "w1", lanes=2)
        a, b = w.poll().assignments
        clock.advance(10)
        assert len(w.poll(want=1, finished=[ended(a, duration_s=10.0)]).assignments) == 1
        clock.advance(25)  # b ran 35 s where its block's tasks take 10 (c: 25 s)
        stuck = (
            _http(served, admin).get("/api/v1/stuck", params={"factor": 3, "silent_s": 3600}).json()
        )

    assert [(t["job_id"], t["index"]) for t in stuck["tasks"]] == [(job.id, b.index)]
    assert "usual" in stuck["tasks"][0]["why"]


def test_samples_are_kept_and_folded_into_averages_with_age(serve: Serve) -> None:
    clock = FakeClock()
    served = serve(clock=clock, lease_s=LONG_LEASE_S)
    w = worker(served, "w1")
    start = clock.now()
    for i in range(3):
        w.sample({"cpu": 10.0 * (i + 1), "mem_used": 1e9})
        clock.advance(5)
    with Client(served.url, served.admin_token) as admin:
        raw = admin.samples("w1").points
        assert [(p.step_s, p.values["cpu"]) for p in raw] == [(0, 10.0), (0, 20.0), (0, 30.0)]
        clock.advance(TIERS[0][1] + 120)  # an hour later they are folded into minutes
        w.sample({"cpu": 45.0})
        clock.advance(5)
        # an idle worker, its poll held, sends its sample on its own
        assert w._call(lambda c: c.sample({"cpu": 50.0})) is True
        points = admin.samples("w1", since=start - 60).points
        latest = _http(served, admin).get("/api/v1/samples/latest").json()["samples"]

    assert [(p.step_s, p.values["cpu"]) for p in points] == [(60, 20.0), (0, 45.0), (0, 50.0)]
    assert latest["w1"]["cpu"] == 50.0


def test_engines_carry_a_description_vendor_and_colour(admin: Client) -> None:
    engines = {e.name: e for e in admin.engines()}

    assert engines["blender"].vendor == "Blender Foundation"
    assert engines["blender"].colour == "#e87d0d"
    assert engines["povray"].description
    assert all(e.colour for e in engines.values())
