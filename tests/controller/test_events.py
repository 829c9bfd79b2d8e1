"""The event stream (server-sent events) on a served controller: a ticket opens it once, a
submission, a claim, a task's output and a worker's sample arrive as events, and a client
that cannot keep up is dropped."""

from __future__ import annotations

import asyncio
import faulthandler
import json
import queue
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from tests.controller.test_dispatch import worker

from thresher.client import Client
from thresher.controller.events import Client as StreamClient
from thresher.controller.events import EventHub
from thresher.testing import ServedController, wait_until


class Listener:
    """Reads a stream on a thread; the events it got so far are in `events`."""

    def __init__(self, url: str) -> None:
        self.events: queue.Queue[tuple[str, dict[str, Any]]] = queue.Queue()
        self.seen: list[tuple[str, dict[str, Any]]] = []
        self._client = httpx.Client(timeout=httpx.Timeout(5.0, read=None))
        self._response = self._client.send(self._client.build_request("GET", url), stream=True)
        self.status = self._response.status_code
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        kind = ""
        try:
            for line in self._response.iter_lines():
                if line.startswith("event: "):
                    kind = line[7:]
                elif line.startswith("data: "):
                    self.events.put((kind, json.loads(line[6:])))
        except httpx.HTTPError:
            pass

    def saw(self, kind: str, **fields: Any) -> bool:
        while not self.events.empty():
            self.seen.append(self.events.get_nowait())
        return any(
            k == kind and all(d.get(f) == v for f, v in fields.items()) for k, d in self.seen
        )

    def carried(self, kind: str, check: Any) -> bool:
        self.saw(kind)
        return any(k == kind and check(d) for k, d in self.seen)

    def sampled(self, cpu: float) -> bool:
        self.saw("worker")
        return any(k == "worker" and (d["sample"] or {}).get("cpu") == cpu for k, d in self.seen)

    def close(self) -> None:
        self._response.close()
        self._client.close()


@pytest.fixture
def listen(served: ServedController, admin: Client) -> Iterator[Any]:
    opened: list[Listener] = []

    def open_(job: int | None = None, token: str | None = None) -> Listener:
        headers = {"Authorization": f"Bearer {token or served.admin_token}"}
        try:
            answer = httpx.post(f"{served.url}/api/v1/events/ticket", headers=headers)
        except httpx.TimeoutException:  # seen once under load: say where every thread was
            faulthandler.dump_traceback(all_threads=True)
            raise
        ticket = answer.json()["ticket"]
        url = f"{served.url}/api/v1/events/stream?ticket={ticket}"
        listener = Listener(url + (f"&job={job}" if job is not None else ""))
        opened.append(listener)
        return listener

    yield open_
    for listener in opened:
        listener.close()


def test_a_ticket_opens_the_stream_once(served: ServedController, admin: Client) -> None:
    headers = {"Authorization": f"Bearer {served.admin_token}"}
    ticket = httpx.post(f"{served.url}/api/v1/events/ticket", headers=headers).json()["ticket"]
    url = f"{served.url}/api/v1/events/stream"
    with httpx.stream("GET", url, params={"ticket": ticket}) as first:
        assert first.status_code == 200
        assert first.headers["content-type"].startswith("text/event-stream")
    assert httpx.get(url, params={"ticket": ticket}).status_code == 401
    assert httpx.get(url).status_code == 401


def test_a_submission_a_claim_output_and_a_sample_reach_an_open_stream(
    served: ServedController, admin: Client, listen: Any
) -> None:
    everything = listen()
    wait_until(lambda: everything.saw("hello"), timeout=10, what="the stream opened")
    job = admin.submit("watched", ["true"], frames="1-4")
    wait_until(lambda: everything.saw("job", job_id=job.id), timeout=10, what="a job event")
    following = listen(job.id)
    wait_until(lambda: following.saw("hello"), timeout=10, what="the job's stream opened")

    w = worker(served, "w1")
    (a,) = w.poll().assignments
    wait_until(
        lambda: following.saw("task", job_id=job.id, index=a.index, status="running"),
        timeout=10,
        what="the claimed task's move",
    )
    wait_until(
        lambda: following.carried("runs", lambda d: d["runs"][0]["status"] == "running"),
        timeout=10,
        what="the block's task runs, the claimed task running",
    )
    wait_until(  # the job's state comes in the event: pages need not ask
        lambda: everything.carried(
            "job", lambda d: d["job_id"] == job.id and d["job"]["counts"]["running"] == 1
        ),
        timeout=10,
        what="the job's event with its running task",
    )
    assert not everything.saw("runs")  # nor does a stream not following the job get its runs
    w.output(a, [("stdout", "rendering frame 1")])
    wait_until(
        lambda: following.saw("log", job_id=job.id, index=a.index),
        timeout=10,
        what="the task's new log line",
    )
    assert not everything.saw("log")  # a stream not following the job gets no log lines
    w.sample({"cpu": 42.0})
    wait_until(lambda: everything.sampled(42.0), timeout=10, what="the worker's sample")


def test_a_client_that_cannot_keep_up_is_dropped() -> None:
    async def scenario() -> tuple[bool, int]:
        hub = EventHub.__new__(EventHub)
        hub.clients = set()
        slow = StreamClient(job=None, queue=asyncio.Queue(2))
        fast = StreamClient(job=None, queue=asyncio.Queue(100))
        hub.clients.update({slow, fast})
        hub._fan_out([("job", {"job_id": i}) for i in range(5)])
        ended = slow.queue.get_nowait() is None  # its stream ends: the page reconnects
        return slow.dropped and ended and slow not in hub.clients, fast.queue.qsize()

    dropped, delivered = asyncio.run(scenario())
    assert dropped
    assert delivered == 5


def test_a_stream_carries_only_the_jobs_its_caller_may_see(
    served: ServedController, admin: Client, listen: Any
) -> None:
    """Read isolation holds for the stream as for the API: alice's stream gets her job's
    events, not bob's; following bob's job is refused as if it did not exist."""
    tokens = {name: admin.create_token(name, "artist").token for name in ("alice", "bob")}
    alices = listen(token=tokens["alice"])
    wait_until(lambda: alices.saw("hello"), timeout=10, what="alice's stream opened")
    with Client(served.url, tokens["bob"]) as bob, Client(served.url, tokens["alice"]) as alice:
        hidden = bob.submit("bob's", ["true"])
        shown = alice.submit("alice's", ["true"])
    wait_until(lambda: alices.saw("job", job_id=shown.id), timeout=10, what="alice's job event")
    assert not alices.saw("job", job_id=hidden.id)
    bobs_job = listen(hidden.id, token=tokens["alice"])
    assert bobs_job.status == 404


def test_a_job_waiting_on_another_hears_when_that_one_ends(
    served: ServedController, admin: Client, listen: Any
) -> None:
    """Its own counters do not move when the job it waits on succeeds, yet its state does
    (waiting -> queued): the stream says so."""
    stream = listen()
    wait_until(lambda: stream.saw("hello"), timeout=10, what="the stream opened")
    first = admin.submit("first", ["true"])
    second = admin.submit("second", ["true"], after=[first.id])
    wait_until(
        lambda: stream.carried(
            "job", lambda d: d["job_id"] == second.id and d["job"]["status"] == "waiting"
        ),
        timeout=10,
        what="the second job waiting",
    )
    w = worker(served, "w1")
    (a,) = w.poll().assignments
    assert a.job_id == first.id
    w.finish(a)
    wait_until(
        lambda: stream.carried(
            "job", lambda d: d["job_id"] == second.id and d["job"]["status"] == "queued"
        ),
        timeout=10,
        what="the second job queued once the first succeeded",
    )
