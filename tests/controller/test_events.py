"""Events recorded by the controller's use cases (SQLite and PostgreSQL): the worker events,
and who may see and subscribe to what. Workers are played by the test (`Sim`)."""

from __future__ import annotations

import pytest
from tests.controller.test_scheduling import Sim, job, user_client

from thresher.client import Client, Forbidden
from thresher.testing import ServedController, wait_until


def test_a_worker_turning_sick_is_one_event(served: ServedController, admin: Client) -> None:
    bad, good = Sim(served, "bad"), Sim(served, "good")
    alice, bob = user_client(served, admin, "alice"), user_client(served, admin, "bob")
    for owner, name in ((alice, "a1"), (alice, "a2"), (bob, "b1")):
        job(owner, name)
        (a,) = bad.take()
        bad.end(a, status="failed")
        (b,) = good.take()
        good.end(b)
    assert admin.worker("bad").sick_since is not None
    wait_until(
        lambda: [e for e in admin.events() if e.kind == "worker.sick"],
        timeout=30,
        what="a worker.sick event",
    )
    job(bob, "b2")  # the index is rebuilt, and the sweeper runs again
    assert good.take()
    sick = [e for e in admin.events(limit=1000) if e.kind == "worker.sick"]
    assert [e.worker for e in sick] == ["bad"]
    # Alice sees her jobs' events, not the workers' nor Bob's.
    seen = {(e.kind, e.owner) for e in alice.events(limit=1000)}
    assert seen == {
        ("job.submitted", "alice"),
        ("task.failed", "alice"),
        ("job.succeeded", "alice"),
    }
    alice.close()
    bob.close()


def test_subscriptions_are_their_owners(served: ServedController, admin: Client) -> None:
    alice, bob = user_client(served, admin, "alice"), user_client(served, admin, "bob")
    bobs_job = job(bob, "b1")
    with pytest.raises(Forbidden, match="not yours"):
        alice.subscribe("webhook", "http://127.0.0.1:9/x", job_id=bobs_job)
    with pytest.raises(Forbidden, match="admins"):
        alice.subscribe("webhook", "http://127.0.0.1:9/x", all_users=True)
    mine = alice.subscribe("email", "alice@studio.example")
    with pytest.raises(Forbidden):
        bob.unsubscribe(mine.id)
    assert [s.id for s in admin.subscriptions()] == [mine.id]
    assert bob.subscriptions() == []
    alice.close()
    bob.close()
