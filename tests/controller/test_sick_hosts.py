"""Sick hosts over HTTP on a real controller (SQLite and PostgreSQL): a failure counts against a
host only on evidence that the host is at fault, so one user's broken jobs never take the farm
away from the others, while a host failing several users' work that runs elsewhere is sick.

Workers are played by the test (`Sim`, as in test_scheduling.py).
"""

from __future__ import annotations

from typing import Any

from tests.controller.test_scheduling import Sim, job, user_client

from thresher.client import Client
from thresher.testing import ServedController


def fail_everything(*sims: Sim) -> int:
    """Each worker fails whatever it is handed until none is handed anything; returns how many
    attempts failed."""
    failed = 0
    while True:
        taken = 0
        for sim in sims:
            for a in sim.take():
                sim.end(a, status="failed")
                taken += 1
        if not taken:
            return failed
        failed += taken


def test_one_users_broken_jobs_failing_on_every_worker_make_no_worker_sick(
    served: ServedController, admin: Client
) -> None:
    """The farm that stopped: three jobs of one user (a typo, a missing file) fail on both
    workers of a two-worker farm. They fail the jobs; the workers stay well."""
    x, y = Sim(served, "x"), Sim(served, "y")
    alice, bob = user_client(served, admin, "alice"), user_client(served, admin, "bob")
    broken = [job(alice, name) for name in ("typo", "missing-file", "typo-again")]

    failures = fail_everything(x, y)

    assert failures == 3 * 4  # every attempt of every task (3 retries each)
    assert [admin.job(j).status for j in broken] == ["failed"] * 3
    assert {host.worker for j in broken for host in admin.error_hosts(j)} == {"x", "y"}
    assert [admin.worker(w).sick_since for w in ("x", "y")] == [None, None]
    fine = job(bob, "fine", frames="1-2")
    (on_x,), (on_y,) = x.take(), y.take()  # both workers still take work: one task each
    x.end(on_x)
    y.end(on_y)
    assert admin.job(fine).status == "succeeded"
    alice.close()
    bob.close()


def test_a_worker_failing_two_users_work_that_succeeds_elsewhere_is_sick(
    served: ServedController, admin: Client
) -> None:
    """Under the default thresholds (3 jobs of 2 owners within an hour): what `bad` fails, `good`
    renders. One user's jobs alone are not enough; a second user's makes `bad` sick."""
    bad, good = Sim(served, "bad"), Sim(served, "good")
    alice, bob = user_client(served, admin, "alice"), user_client(served, admin, "bob")

    def fails_on_bad_then_succeeds_on_good(owner: Client, name: str) -> None:
        job_id = job(owner, name)
        (a,) = bad.take()
        bad.end(a, status="failed")
        (b,) = good.take()  # the retry, on another host
        good.end(b)
        assert admin.job(job_id).status == "succeeded"

    for name in ("a1", "a2", "a3"):
        fails_on_bad_then_succeeds_on_good(alice, name)
    assert admin.worker("bad").sick_since is None  # three jobs, but all of one user

    fails_on_bad_then_succeeds_on_good(bob, "b1")
    assert admin.worker("bad").sick_since is not None
    assert [w.name for w in admin.workers() if w.sick_since is not None] == ["bad"]
    later = job(bob, "b2")
    assert bad.take() == []
    (c,) = good.take()
    assert c.job_id == later
    alice.close()
    bob.close()


def test_a_worker_sick_before_others_tried_the_blocks_is_cleared_by_their_failures(
    serve: Any,
) -> None:
    """`x` fails two users' jobs first and is sick (nothing else had tried them); `y` then fails
    the same jobs: they are broken, not `x`, which takes work again without an admin."""
    served: ServedController = serve(sick_jobs=2)
    with Client(served.url, served.admin_token) as admin:
        x, y = Sim(served, "x"), Sim(served, "y")  # a retry waits for another host than x
        alice = user_client(served, admin, "alice")
        for owner in (admin, alice):
            job(owner, "broken", retries=1)
            (a,) = x.take()
            x.end(a, status="failed")
        assert admin.worker("x").sick_since is not None
        assert x.take() == []

        fail_everything(y)  # the retries of both jobs fail on y too
        assert admin.worker("x").sick_since is None
        job(admin, "fine")
        assert len(x.take()) == 1
        alice.close()


def test_a_task_that_cannot_start_on_two_hosts_fails_at_once_blaming_no_host(
    served: ServedController, admin: Client
) -> None:
    """An executable missing everywhere: the first failure before start is retried; a second
    host failing it before start too shows the definition broken, so the task fails at once,
    whatever its retries, and the job ends failed. Failing after starting is retried as usual."""
    x, y = Sim(served, "x"), Sim(served, "y")
    missing = {"exit_code": None, "message": "executable not found: 'blendr'", "before_start": True}
    broken = job(admin, "typo", retries=10)

    (a,) = x.take()
    x.end(a, status="failed", **missing)
    assert admin.job(broken).status != "failed"  # one host's word: retried
    (c,) = y.take()
    y.end(c, status="failed", **missing)

    assert admin.job(broken).status == "failed"
    assert (x.take(), y.take()) == ([], [])  # 10 retries, but not retried
    attempts = admin.attempts(broken)
    assert len(attempts) == 2
    assert "broken definition" in (attempts[-1].message or "")
    assert [admin.worker(w).sick_since for w in ("x", "y")] == [None, None]

    started = job(admin, "crashes", retries=1)
    (d,) = x.take()
    x.end(d, status="failed")  # it ran and failed: not a definition problem
    (e,) = y.take()
    assert e.job_id == started  # retried
    y.end(e)
    assert admin.job(started).status == "succeeded"
