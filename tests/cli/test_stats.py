"""`thresher stats` against a served controller: its figures are those of the attempt
history it summarises (`GET /jobs/{id}/attempts`), in Rich tables and as JSON."""

from __future__ import annotations

import json

from tests.cli.conftest import Invoke, RunningController
from tests.controller.test_dispatch import SimWorker, ended

from thresher.client import Client


def test_stats_match_the_attempt_history(cli: Invoke, controller: RunningController) -> None:
    with Client(controller.url, controller.token) as client:
        jobs = [
            client.submit("a", ["true"], frames="1-6", chunk=2),
            client.submit("b", ["true"], frames="1-3"),
        ]
        w1 = SimWorker(controller.url, controller.token, "w1", lanes=3).register()
        w2 = SimWorker(controller.url, controller.token, "w2", lanes=3).register()
        first, second = w1.poll().assignments, w2.poll().assignments
        w1.poll(want=0, finished=[ended(a, duration_s=30.0) for a in first])
        w2.poll(
            want=0,
            finished=[ended(second[0], "failed", duration_s=12.0)]
            + [ended(a, duration_s=6.0) for a in second[1:]],
        )
        history = [a for job in jobs for a in client.attempts(job.id)]
        frames = {
            (job.id, t.block, t.index): len(t.frames)
            for job in jobs
            for t in client.tasks(job.id).tasks
        }
        by_attempt = {
            a.id: frames[(job.id, a.block, a.index)]
            for job in jobs
            for a in client.attempts(job.id)
        }

    result = cli("stats", "--days", "0", "--json")

    assert result.exit_code == 0, result.output
    found = json.loads(result.output)
    ended_ = [a for a in history if a.status != "running"]
    hosts = {h["key"]: h for h in found["by_host"]}
    for name in ("w1", "w2"):
        mine = [a for a in ended_ if a.worker == name]
        assert hosts[name]["attempts"] == len(mine)
        assert hosts[name]["failed"] == sum(a.status == "failed" for a in mine)
        assert hosts[name]["frames"] == sum(
            by_attempt[a.id] for a in mine if a.status == "succeeded"
        )
        assert hosts[name]["render_hours"] == round(sum(a.duration_s or 0 for a in mine) / 3600, 6)
    (engine,) = found["by_engine"]
    assert engine["attempts"] == len(ended_) == 6
    assert engine["failure_rate"] == round(1 / 6, 6)
    assert sum(d["frames"] for d in found["by_day"]) == sum(
        by_attempt[a.id] for a in ended_ if a.status == "succeeded"
    )

    text = cli("stats", "--days", "0")
    assert text.exit_code == 0, text.output
    for heading in ("engine", "user", "site", "host", "day (UTC)", "render h", "failure rate"):
        assert heading in text.output


def test_jobs_shows_the_eta(cli: Invoke, controller: RunningController) -> None:
    """Four tasks of 10 s on one lane, one done and one running: 2 x 10 s + half of one."""
    with Client(controller.url, controller.token) as client:
        client.submit("timed", ["true"], frames="1-4")
        w = SimWorker(controller.url, controller.token, "w1", lanes=1).register()
        (a,) = w.poll().assignments
        w.poll(finished=[ended(a, duration_s=10.0)])

    listed = cli("jobs")
    as_json = json.loads(cli("jobs", "--json").output)

    assert listed.exit_code == 0, listed.output
    assert "ETA" in listed.output
    assert "25s" in listed.output
    assert as_json[0]["eta_s"] == 25.0
