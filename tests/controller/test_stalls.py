"""Nothing the database does stalls the controller: use cases run on the farm thread, so the
event loop answers `/healthz` while a store call waits; an unavailable database is a 503 with
a JSON error, and the time it was away costs no worker its lease."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from tests.controller.test_scheduling import Sim

from thresher.controller.auth import Caller
from thresher.controller.farm import Farm
from thresher.controller.notifier import Notifier
from thresher.controller.settings import ControllerSettings
from thresher.core.errors import Unavailable
from thresher.schemas import api
from thresher.store.store import Store
from thresher.testing import FakeClock, ServedController, serve_in_thread, wait_until

pytestmark = pytest.mark.alone  # /healthz within 1 s: not beside the rest of the suite

ADMIN = Caller(token_id=0, name="admin", role="admin")


@pytest.fixture
def sqlite_served(tmp_path: Path) -> Iterator[ServedController]:
    settings = ControllerSettings(data_dir=tmp_path / "data")
    with serve_in_thread(settings) as served:
        yield served


def test_healthz_answers_while_a_store_call_waits_on_a_lock(
    sqlite_served: ServedController,
) -> None:
    """Another process holds SQLite's write lock; a submission waits for it (busy timeout)
    on the farm thread, and the event loop goes on answering."""
    db = sqlite3.connect(sqlite_served.settings.data_dir / "thresher.db", isolation_level=None)
    db.execute("BEGIN IMMEDIATE")  # the write lock, as an outside writer would hold it
    headers = {"Authorization": f"Bearer {sqlite_served.admin_token}"}
    answers: list[httpx.Response] = []
    body = {"name": "blocked", "frames": "1-3", "command": ["true"]}

    def submit() -> None:
        with httpx.Client(base_url=sqlite_served.url, headers=headers, timeout=60) as http:
            answers.append(http.post("/api/v1/jobs", json=body))

    submitter = threading.Thread(target=submit)
    submitter.start()
    try:
        # For 1.5 s the submission cannot commit; every /healthz meanwhile answers within 1 s.
        until = time.monotonic() + 1.5
        with httpx.Client(base_url=sqlite_served.url, timeout=1.0) as http:
            while time.monotonic() < until:
                assert http.get("/healthz").status_code == 200
        assert answers == []  # still held up by the lock
    finally:
        db.execute("ROLLBACK")
        db.close()
    submitter.join(timeout=30)
    assert len(answers) == 1
    assert answers[0].status_code == 201, answers[0].text


def test_the_openapi_document_is_built_off_the_event_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Describing every route is a second or more of CPU on a busy machine: it is built in a
    worker thread, never on the thread that runs the event loop (and answers `/healthz`)."""
    builders: list[str] = []
    describe = FastAPI.openapi

    def recorded(app: FastAPI) -> dict[str, Any]:
        builders.append(threading.current_thread().name)
        return describe(app)

    monkeypatch.setattr(FastAPI, "openapi", recorded)
    with serve_in_thread(ControllerSettings(data_dir=tmp_path / "data")) as served:
        document = httpx.get(f"{served.url}/openapi.json", timeout=60)
    assert document.status_code == 200
    assert "/api/v1/jobs" in document.json()["paths"]
    assert builders  # and none of them the thread that runs the served event loop:
    assert "thresher-served-controller" not in builders


@pytest.fixture
def farm(tmp_path: Path) -> Iterator[tuple[Farm, Store, FakeClock]]:
    store = Store.open(f"sqlite:///{tmp_path / 'farm.db'}")
    clock = FakeClock(100.0)
    farm = Farm(store, clock, ControllerSettings(data_dir=tmp_path, lease_s=15.0), Notifier())
    farm.start(clock.now())
    try:
        yield farm, store, clock
    finally:
        farm.close()
        store.close()


def test_an_outage_costs_no_worker_its_lease(
    farm: tuple[Farm, Store, FakeClock], monkeypatch: pytest.MonkeyPatch
) -> None:
    farm_, store, clock = farm
    body = api.RegisterIn(
        name="w1", hostname="w1", os="linux", cores=2, ram_bytes=1 << 30, site="hq", lanes=1
    )
    farm_.agents.register(ADMIN, body)

    def away(*_: object, **__: object) -> list[int]:
        raise Unavailable("the database is unavailable: connection refused")

    with monkeypatch.context() as outage:
        outage.setattr(store.workers, "expire", away)
        outage.setattr(store.workers, "refresh_all", away)
        for _ in range(60):  # the outage lasts longer than a lease; nobody can be heard
            with pytest.raises(Unavailable):
                farm_.agents.sweep()
            clock.advance(1.0)

    assert farm_.agents.sweep() == []  # back: leases renewed instead of run out
    assert store.workers.find("w1").status.value == "online"
    clock.advance(16.0)  # then a lease runs out as usual
    assert farm_.agents.sweep() == [store.workers.find("w1").id]


def test_an_unavailable_database_is_answered_503_with_a_json_error(
    sqlite_served: ServedController, monkeypatch: pytest.MonkeyPatch
) -> None:
    def away(*_: object, **__: object) -> None:
        raise Unavailable("the database is unavailable: disk I/O error")

    monkeypatch.setattr(sqlite_served.store.jobs, "page", away)
    headers = {"Authorization": f"Bearer {sqlite_served.admin_token}"}
    with httpx.Client(base_url=sqlite_served.url, headers=headers, timeout=5) as http:
        response = http.get("/api/v1/jobs")
        assert response.status_code == 503
        assert response.json()["error"] == "unavailable"
        assert "disk I/O error" in response.json()["message"]
        assert response.headers["retry-after"] == "1"
        monkeypatch.undo()
        assert http.get("/api/v1/jobs").status_code == 200  # the same connection goes on


def test_a_worker_that_says_goodbye_is_offline_and_its_task_requeued(
    sqlite_served: ServedController,
) -> None:
    admin = {"Authorization": f"Bearer {sqlite_served.admin_token}"}
    with httpx.Client(base_url=sqlite_served.url, headers=admin, timeout=10) as http:
        job = http.post("/api/v1/jobs", json={"name": "j", "frames": "1", "command": ["true"]})
        registered = http.post(
            "/api/v1/agent/register",
            json={
                "name": "w1",
                "hostname": "w1",
                "os": "linux",
                "cores": 2,
                "ram_bytes": 1 << 30,
                "site": "hq",
                "lanes": 1,
            },
        ).json()
        mine = {"Authorization": f"Bearer {registered['token']}"}
        got = http.post("/api/v1/agent/poll", json={"lanes": [0]}, headers=mine).json()
        assert len(got["assignments"]) == 1

        assert http.post("/api/v1/agent/goodbye", json={}, headers=mine).status_code == 204

        assert http.get("/api/v1/workers/w1").json()["status"] == "offline"
        job_id = job.json()["id"]
        wait_until(
            lambda: (
                http.get(f"/api/v1/jobs/{job_id}/tasks").json()["tasks"][0]["status"] == "queued"
            ),
            timeout=10,
            what="the task back in the queue",
        )
        attempts = http.get(f"/api/v1/jobs/{job_id}/attempts").json()["attempts"]
        assert [a["status"] for a in attempts] == ["lost"]


def answers_healthz_throughout(served: ServedController, action: Callable[[], object]) -> int:
    """Run `action` (heavy requests) in a thread and ask `/healthz` again and again, each with a
    1 s timeout, until it ends; returns how many times /healthz answered meanwhile."""
    done = threading.Event()
    errors: list[BaseException] = []

    def run() -> None:
        try:
            action()
        except BaseException as exc:  # handed to the test thread
            errors.append(exc)
        finally:
            done.set()

    thread = threading.Thread(target=run)
    thread.start()
    answered = 0
    with httpx.Client(base_url=served.url, timeout=1.0) as http:
        while not done.is_set():
            assert http.get("/healthz").status_code == 200  # a stall past 1 s raises here
            answered += 1
    thread.join()
    assert not errors, errors
    return answered


def test_healthz_answers_during_big_submissions_listings_and_log_reads(
    sqlite_served: ServedController,
) -> None:
    """The heavy requests a careless user makes (a job of 1,000 blocks, the listing of jobs that
    size, a task's log of 200,000 lines read to its end) hold the farm thread or the database,
    never the event loop."""
    served = sqlite_served
    headers = {"Authorization": f"Bearer {served.admin_token}"}
    blocks = [{"name": f"b{i}", "frames": "1-10", "command": ["true"]} for i in range(1000)]
    http = httpx.Client(base_url=served.url, headers=headers, timeout=120)

    def submit_many() -> None:
        for n in range(3):
            response = http.post("/api/v1/jobs", json={"name": f"huge{n}", "blocks": blocks})
            assert response.status_code == 201, response.text

    def list_all() -> None:
        page = http.get("/api/v1/jobs", params={"limit": 1000, "max_bytes": 64 << 20}).json()
        assert len(page["jobs"]) == 3

    with http:
        assert answers_healthz_throughout(served, submit_many) > 0
        assert answers_healthz_throughout(served, list_all) > 0
        (task,) = Sim(served, "w").take()
        lines = 200_000
        for start in range(0, lines, 10_000):
            served.store.attempts.record_output(
                task.attempt_id,
                task.token,
                lines=[("stdout", f"line {n} " + "x" * 80) for n in range(start, start + 10_000)],
                progress=None,
                outputs=[],
                status_message=None,
            )
        log = f"/api/v1/jobs/{task.job_id}/blocks/{task.block}/tasks/{task.index}/log"

        def read_log() -> None:
            after, read = 0, 0
            while True:
                page = http.get(log, params={"after": after, "limit": 100_000}).json()
                read += len(page["lines"])
                if not page["more"]:
                    break
                after = page["next_after"]
            assert read == lines

        assert answers_healthz_throughout(served, read_log) > 0
