"""Events recorded by the controller's use cases (SQLite and PostgreSQL): the worker events,
and who may see and subscribe to what. Workers are played by the test (`Sim`)."""

from __future__ import annotations

import functools
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from tests.controller.conftest import Serve
from tests.controller.test_scheduling import Sim, job, user_client

from thresher.client import Client, Forbidden, NotFound
from thresher.core.events import MAX_TRIES, backoff_s
from thresher.testing import FakeClock, ServedController, wait_until


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
    with pytest.raises(NotFound):  # a job alice cannot see is not there for her
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


class Refusing:
    """A webhook receiver on 127.0.0.1 that answers every delivery with 500."""

    def __init__(self) -> None:
        self.tries = 0

        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers["Content-Length"]))
                outer.tries += 1
                self.send_response(500)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def test_a_failing_delivery_is_retried_with_backoff_then_given_up(serve: Serve) -> None:
    clock = FakeClock()
    served = serve(clock=clock)
    receiver = Refusing()
    try:
        with Client(served.url, served.admin_token) as admin:
            sub = admin.subscribe("webhook", receiver.url, events=["job.submitted"])
            admin.submit("first", ["true"], paused=True)

            def first(tries: int) -> bool:
                found = admin.subscription(sub.id).deliveries
                return bool(found) and found[0].tries == tries

            wait_until(lambda: first(1), timeout=30, what="the first try")
            admin.submit("second", ["true"], paused=True)  # a round, before the backoff ends
            wait_until(lambda: receiver.tries >= 2, timeout=30, what="the second job's try")
            assert first(1)  # not tried again within its backoff (1 s)
            for n in range(2, MAX_TRIES + 1):
                clock.advance(backoff_s(n - 1))
                wait_until(functools.partial(first, n), timeout=30, what=f"try {n}")
            (d, *_) = admin.subscription(sub.id).deliveries
            assert (d.status, d.last_error) == ("failed", "HTTP 500")
    finally:
        receiver.server.shutdown()
        receiver.server.server_close()


def test_a_subscriptions_secret_is_sealed_at_rest(served: ServedController, admin: Client) -> None:
    made = admin.subscribe("webhook", "http://127.0.0.1:9/x")
    assert made.secret is not None
    (stored,) = served.store.events.subscriptions()
    assert stored.secret != made.secret
    assert made.secret not in stored.secret
