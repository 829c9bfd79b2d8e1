"""`/metrics`: Prometheus text that parses, whose numbers agree with the API; request ids."""

from __future__ import annotations

import json
import re
from collections import Counter

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from tests.conftest import REPO

from thresher.client import Client
from thresher.testing import ServedController


def scrape(
    served: ServedController, token: str
) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    answer = httpx.get(
        served.url + "/metrics", headers={"Authorization": f"Bearer {token}"}, timeout=10
    )
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain")
    out: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(answer.text):
        for sample in family.samples:
            out.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return out


def by_state(samples: dict[tuple[tuple[str, str], ...], float]) -> dict[str, float]:
    return {dict(labels)["state"]: value for labels, value in samples.items() if value}


class Worker:
    """A worker speaking the agent API by hand: enrol, poll, finish."""

    def __init__(self, served: ServedController, name: str) -> None:
        self.url = served.url
        enrolled = httpx.post(
            f"{served.url}/api/v1/agent/register",
            headers={"Authorization": f"Bearer {served.admin_token}"},
            json={"name": name, "hostname": name, "os": "linux", "cores": 2, "ram_bytes": 1},
        ).json()
        self.headers = {"Authorization": f"Bearer {enrolled['token']}"}

    def poll(self, **body: object) -> dict[str, object]:
        answer = httpx.post(f"{self.url}/api/v1/agent/poll", headers=self.headers, json=body)
        assert answer.status_code == 200, answer.text
        data: dict[str, object] = answer.json()
        return data


def test_metrics_parse_and_agree_with_the_api(served: ServedController, admin: Client) -> None:
    worker = Worker(served, "w1")
    running = admin.submit("runs", ["true"], frames="1-5")
    admin.submit("paused", ["true"], frames="1-3", paused=True)
    first = worker.poll(wait_s=0, lanes=[0])
    assignments = first["assignments"]
    assert isinstance(assignments, list)
    assert len(assignments) == 1
    claimed: dict[str, object] = assignments[0]
    line = {"attempt_id": claimed["attempt_id"], "token": claimed["token"]}
    worker.poll(
        wait_s=0,
        lanes=[0],
        output=[{**line, "lines": [["stdout", "hello"], ["stderr", "world!"]]}],
        finished=[{**line, "status": "succeeded", "exit_code": 0}],
    )

    got = scrape(served, served.admin_token)

    jobs = admin.jobs()
    assert by_state(got["thresher_jobs"]) == Counter(j.status for j in jobs)
    tasks: Counter[str] = Counter()
    for job in jobs:
        for state in ("waiting", "queued", "running", "succeeded", "failed", "canceled"):
            tasks[state] += getattr(job.counts, state)
    assert by_state(got["thresher_tasks"]) == +tasks
    assert by_state(got["thresher_workers"]) == Counter(w.status for w in admin.workers())
    assert got["thresher_assignments_total"][()] == 2  # the first poll's and the second's
    assert got["thresher_log_bytes_total"][()] == len("hello") + len("world!")
    assert admin.job(running.id).counts.succeeded == 1
    polls = got["thresher_poll_seconds_count"][()]
    assert polls == 2
    requests = got["thresher_request_seconds_count"]
    assert requests[(("method", "POST"), ("route", "/api/v1/jobs"), ("status", "201"))] == 2
    assert got["thresher_store_transaction_seconds_count"][()] > 0
    assert got["thresher_dispatch_seconds_count"][()] >= 2


def test_metrics_need_a_wrangler_token(served: ServedController, admin: Client) -> None:
    user = admin.create_token("someone", role="artist").token
    assert httpx.get(served.url + "/metrics").status_code == 401
    answer = httpx.get(served.url + "/metrics", headers={"Authorization": f"Bearer {user}"})
    assert answer.status_code == 403
    wrangler = admin.create_token("ops", role="wrangler").token
    scraped = httpx.get(served.url + "/metrics", headers={"Authorization": f"Bearer {wrangler}"})
    assert scraped.status_code == 200


@pytest.mark.parametrize("given", ["cli-1234abcd", None])
def test_a_request_id_is_answered_back(served: ServedController, given: str | None) -> None:
    headers = {"Authorization": f"Bearer {served.admin_token}"}
    if given:
        headers["X-Request-Id"] = given
    answer = httpx.get(served.url + "/api/v1/jobs", headers=headers)
    assert answer.status_code == 200
    rid = answer.headers["x-request-id"]
    assert rid == given if given else len(rid) == 16


def test_the_grafana_dashboard_queries_metrics_that_exist(served: ServedController) -> None:
    dashboard = json.loads((REPO / "deploy" / "grafana" / "thresher.json").read_text())
    queried = {
        name
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in re.findall(r"\bthresher_[a-z_]+", target["expr"])
    }
    scrape(served, served.admin_token)  # a request, so the request histogram has a sample
    got = scrape(served, served.admin_token)
    assert queried
    assert queried <= set(got), queried - set(got)


def test_sync_bytes_agree_with_the_sync_reports(served: ServedController, admin: Client) -> None:
    """What a job's sync runner reports moving counts once in `thresher_sync_bytes_total`,
    as much as the API's job sites say is done (a report repeated adds nothing)."""
    headers = {"Authorization": f"Bearer {served.admin_token}"}
    put = httpx.put(f"{served.url}/api/v1/sites/sthlm", headers=headers, json={})
    assert put.status_code == 200, put.text
    job = admin.submit("synced", ["true"], frames="1")
    worker = Worker(served, "w-sthlm")
    sync = f"{served.url}/api/v1/agent/sync/{job.id}/sthlm"
    claimed = httpx.post(sync, headers=worker.headers)
    assert claimed.status_code == 200, claimed.text
    assert claimed.json()["run"] is True
    for done, state in ((1000, "running"), (1000, "running"), (4096, "done")):
        report = {"state": state, "bytes_done": done, "bytes_total": 4096}
        answer = httpx.put(sync, headers=worker.headers, json=report)
        assert answer.status_code == 200, answer.text

    got = scrape(served, served.admin_token)

    sites = httpx.get(f"{served.url}/api/v1/jobs/{job.id}/sites", headers=headers).json()
    done_in_api = sum(s["bytes_done"] for s in sites["sites"])
    assert done_in_api == 4096
    assert got["thresher_sync_bytes_total"][()] == done_in_api
