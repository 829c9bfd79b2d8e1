"""Wake across controllers: a poll held on controller B, a job submitted on controller A.

Two `thresher controller` processes on one PostgreSQL database (a throwaway cluster unless
--db-url names a server). One simulated worker holds a poll on B (wait_s 20; the controllers'
heartbeat is 30 s, so only a notification can wake it early); the bench submits a one-task job
on A and times from sending the submit to reading the poll's answer with the task in it. The
yardstick, in the same run: the same with the submit sent to B itself (an in-process wake).
`--rounds` of each, alternating; prints one JSON line with p50/p95/max of both, from sending the
submit and from reading its answer (sent right after its commit). Goal: the cross-controller wake
within 100 ms of the commit (`met`: the p95 from the submit's answer)."""

from __future__ import annotations

import argparse
import contextlib
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as c

GOAL_MS = 100.0


def _held_poll(url: str, token: str, box: dict[str, Any]) -> None:
    answer = httpx.post(
        url + "/api/v1/agent/poll",
        headers={"Authorization": f"Bearer {token}"},
        json={"wait_s": 20, "lanes": [0]},
        timeout=60,
    )
    box["at"] = time.perf_counter()
    box["answer"] = answer.json()


def _in_flight(url: str, admin: str) -> float:
    text = httpx.get(url + "/metrics", headers={"Authorization": f"Bearer {admin}"}).text
    for line in text.splitlines():
        if line.startswith("thresher_polls_in_flight "):
            return float(line.split()[1])
    return 0.0


def one_round(
    a: str, b: str, admin: str, worker: str, attempt: dict[str, Any]
) -> tuple[float, float]:
    """Hold a poll on `b`, submit on `a`; the seconds from sending the submit to the poll's
    answer, and from the submit's own answer (sent after its commit) to the poll's answer."""
    box: dict[str, Any] = {}
    poll = threading.Thread(target=_held_poll, args=(b, worker, box))
    poll.start()
    deadline = time.monotonic() + 10
    while _in_flight(b, admin) < 1:  # the poll is held (a metrics read, not a guess)
        if time.monotonic() > deadline:
            raise RuntimeError("the poll was never held")
        time.sleep(0.01)
    time.sleep(0.05)  # past its first round: it waits on the notifier now
    sent = time.perf_counter()
    job = httpx.post(
        a + "/api/v1/jobs",
        headers={"Authorization": f"Bearer {admin}"},
        json={"name": "wake", "command": ["true"]},
    ).json()
    answered = time.perf_counter()
    poll.join(timeout=30)
    got = box["answer"]["assignments"]
    if [x["job_id"] for x in got] != [job["id"]]:
        raise RuntimeError(f"the poll got {got}, not job {job['id']}")
    attempt.update(got[0])
    return box["at"] - sent, box["at"] - answered


def _finish(b: str, worker: str, attempt: dict[str, Any]) -> None:
    """Report the task done (a poll with wait 0), so the lane is free for the next round."""
    done = {"attempt_id": attempt["attempt_id"], "token": attempt["token"]}
    httpx.post(
        b + "/api/v1/agent/poll",
        headers={"Authorization": f"Bearer {worker}"},
        json={"wait_s": 0, "lanes": [], "finished": [{**done, "status": "succeeded"}]},
    ).raise_for_status()


def run(args: argparse.Namespace, tmp: Path, db_url: str) -> dict[str, Any]:
    extra = ["--heartbeat", "30", "--lease", "90"]
    with (
        c.controller(tmp / "data", db_url, extra=extra) as ctl_a,
        c.controller(tmp / "data", db_url, extra=extra) as ctl_b,
    ):
        a, b, admin = ctl_a.url, ctl_b.url, ctl_a.token
        worker = httpx.post(
            b + "/api/v1/agent/register",
            headers={"Authorization": f"Bearer {admin}"},
            json={"name": "w", "hostname": "w", "os": "linux", "cores": 1, "ram_bytes": 1},
        ).json()["token"]
        cross: list[tuple[float, float]] = []
        local: list[tuple[float, float]] = []
        for _ in range(args.rounds):
            for submit_to, out in ((a, cross), (b, local)):
                attempt: dict[str, Any] = {}
                out.append(one_round(submit_to, b, admin, worker, attempt))
                _finish(b, worker, attempt)

    def summary(pairs: list[tuple[float, float]]) -> dict[str, float]:
        xs, after = [p[0] for p in pairs], [p[1] for p in pairs]
        return {
            "p50_ms": round(c.percentile(xs, 50) * 1000, 1),
            "p95_ms": round(c.percentile(xs, 95) * 1000, 1),
            "max_ms": round(max(xs) * 1000, 1),
            "after_submit_answer_p50_ms": round(c.percentile(after, 50) * 1000, 1),
            "after_submit_answer_p95_ms": round(c.percentile(after, 95) * 1000, 1),
        }

    return {
        "cross_controller": summary(cross),
        "same_controller": summary(local),
        "goal_ms": GOAL_MS,
        # The wake is what follows the submit's commit: timed from the submit's answer (sent
        # right after its commit), so the submit request's own time is not charged to it.
        "met": c.percentile([p[1] for p in cross], 95) * 1000 <= GOAL_MS,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    c.add_common_options(parser)
    args = parser.parse_args()
    if not args.db_url:
        args.pg = True  # controllers share PostgreSQL: a throwaway cluster by default
    busy_before = c.wait_quiet(args.quiet_wait)
    with c.temp_dir(args.keep) as tmp, c.database(args, tmp) as (db_url, _db):
        assert db_url is not None
        result = run(args, tmp, db_url)
    c.emit(
        {
            "bench": "peer_wake",
            "rounds": args.rounds,
            **result,
            "measured": "submit sent (client) to the held poll's answer read (client)",
            "cpu_busy_before_pct": busy_before,
            "topology": "two controller processes on one PostgreSQL; the bench's client",
            "machine": c.machine(),
            "date": c.stamp(),
        }
    )


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
