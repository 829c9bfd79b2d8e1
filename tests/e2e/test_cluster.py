"""Three `thresher controller` processes started at once on one empty PostgreSQL database: all
come up; a poll held on one wakes for a submission on another (LISTEN/NOTIFY), and a client
waiting on a third for the job's end hears of its finish; logs are JSON lines carrying the
request id the client sent."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.cluster import PG_ONLY, Cluster, cluster_of
from thresher.testing import wait_until

# empty_database: the controllers race to set its schema up
pytestmark = [pytest.mark.e2e, PG_ONLY, pytest.mark.empty_database]


@pytest.fixture
def cluster(tmp_path: Path, db_url: str) -> Iterator[Cluster]:
    yield from cluster_of(tmp_path, db_url)


def sample(text: str, name: str) -> float:
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name:
                return s.value
    raise AssertionError(f"{name} not in the metrics")


def test_a_poll_held_on_one_controller_wakes_for_a_submit_on_another(cluster: Cluster) -> None:
    # A long heartbeat: without a notification the held poll would sleep out its 20 s hold.
    cluster.start_controllers(
        3, heartbeat=30, lease=90, extra=["--log-format", "json", "--log-level", "info"]
    )
    for i in range(3):
        assert httpx.get(cluster.url_of(i) + "/healthz").json()["status"] == "ok"
    admin = {"Authorization": f"Bearer {cluster.token}"}
    b = cluster.url_of(1)
    enrolled = httpx.post(
        b + "/api/v1/agent/register",
        headers=admin,
        json={"name": "w1", "hostname": "w1", "os": "linux", "cores": 1, "ram_bytes": 1},
    ).json()
    worker = {"Authorization": f"Bearer {enrolled['token']}"}
    answer: dict[str, Any] = {}

    def hold() -> None:
        answer.update(
            httpx.post(
                b + "/api/v1/agent/poll",
                headers=worker,
                json={"wait_s": 20, "lanes": [0]},
                timeout=60,
            ).json()
        )

    poll = threading.Thread(target=hold)
    poll.start()
    wait_until(
        lambda: sample(cluster.metrics(1), "thresher_polls_in_flight") == 1,
        timeout=10,
        what="the poll held on B",
    )
    job = httpx.post(
        cluster.url_of(0) + "/api/v1/jobs",
        headers={**admin, "X-Request-Id": "submit-on-a"},
        json={"name": "to B", "command": ["true"]},
    ).json()
    poll.join(timeout=10)  # well inside the 20 s hold: woken by the notification
    assert not poll.is_alive(), "the poll on B was not woken by the submit on A"
    assert [a["job_id"] for a in answer["assignments"]] == [job["id"]]
    assert sample(cluster.metrics(1), "thresher_peer_changes_total") >= 1

    # A client waiting on C for the job's end hears of its finish reported on B.
    seen: dict[str, Any] = {}

    def wait_on_c() -> None:
        seen.update(
            httpx.get(
                cluster.url_of(2) + f"/api/v1/jobs/{job['id']}/wait",
                params={"timeout_s": 30},
                headers=admin,
                timeout=60,
            ).json()
        )

    waiting = threading.Thread(target=wait_on_c)
    waiting.start()
    wait_until(
        lambda: sample(cluster.metrics(2), "thresher_job_waits_in_flight") == 1,
        timeout=10,
        what="the wait held on C",
    )
    (task,) = answer["assignments"]
    finished = {"attempt_id": task["attempt_id"], "token": task["token"], "status": "succeeded"}
    httpx.post(
        b + "/api/v1/agent/poll",
        headers=worker,
        json={"wait_s": 0, "finished": [{**finished, "exit_code": 0}]},
        timeout=30,
    ).raise_for_status()
    waiting.join(timeout=20)  # well inside the 30 s wait: woken by B's notification
    assert not waiting.is_alive(), "the wait on C was not woken by the finish on B"
    assert seen["status"] == "succeeded"
    # The submit's own log line on A, as JSON, with the request id the client sent.
    controller_a = cluster.controllers[0]
    assert controller_a is not None
    lines = [json.loads(x) for x in controller_a.text().splitlines() if x.startswith("{")]
    assert any(
        line["request_id"] == "submit-on-a" and "POST /api/v1/jobs 201" in line["message"]
        for line in lines
    ), lines[-5:]
