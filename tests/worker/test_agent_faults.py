"""The agent outlives faults: a controller answering 500 for a while, a round of its own that
fails. Real controllers served on 127.0.0.1, faults injected by a proxy in front of them
(`fault_proxy`), a real agent in this process; nothing restarted."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.worker.fault_proxy import fault_proxy
from thresher.client import Client
from thresher.controller.settings import ControllerSettings
from thresher.schemas import api
from thresher.store.tables import attempts, log_lines, tasks
from thresher.testing import ServedController, serve_in_thread
from thresher.worker.agent import Agent, AgentConfig
from thresher.worker.poll_policy import MAX_RETRY_S

REPORT = "/api/v1/agent/report"
POLL = "/api/v1/agent/poll"


def facts(lanes: int) -> api.RegisterIn:
    return api.RegisterIn(
        name="w1", hostname="w1", os="linux", cores=2, ram_bytes=1 << 30, site="hq", lanes=lanes
    )


def run_agent(agent: Agent, until: Callable[[], bool], *, timeout: float) -> float:
    """Run `agent` until `until()` (checked off the loop) holds, then stop it; the seconds
    that took. Fails when the agent ends by itself or `timeout` passes."""

    async def run() -> float:
        started = time.monotonic()
        stop = asyncio.Event()
        running = asyncio.create_task(agent.run(stop))
        while not await asyncio.to_thread(until):
            await asyncio.wait({running}, timeout=0.05)
            assert not running.done(), "the agent stopped"
            assert time.monotonic() - started < timeout, "timed out"
        took = time.monotonic() - started
        stop.set()
        await running
        return took

    return asyncio.run(run())


def test_a_finish_is_recorded_once_reports_are_taken_again(
    db_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """GIVEN a worker whose reports the controller answers with 500 three times WHEN a task ends
    while its poll is held THEN the finish is recorded within the backoff (not when the held
    poll comes back), and the worker's log says what failed and when it tries again."""
    caplog.set_level(logging.WARNING, logger="thresher.worker")
    settings = ControllerSettings(data_dir=tmp_path / "data", poll_hold_s=60.0)
    with (
        serve_in_thread(settings, database_url=db_url) as served,
        fault_proxy(served.url, {REPORT: 3}) as proxy,
        Client(served.url, served.admin_token) as client,
    ):
        # Two lanes: the task runs on one while the poll for the other is held open.
        job = client.submit("short", ["sh", "-c", "sleep 0.3"], frames="1")
        config = AgentConfig(
            controller_url=proxy.url,
            token=served.admin_token,
            facts=facts(2),
            work_dir=tmp_path / "work",
            hold_s=60.0,  # a finish left for the held poll would wait a minute
        )
        took = run_agent(
            Agent(config), lambda: client.job(job.id).status == "succeeded", timeout=60
        )
    assert proxy.faulted(REPORT) == 3
    assert proxy.answered[(REPORT, 200)] >= 1
    assert took < 0.3 + 3 * MAX_RETRY_S  # without the retries: 60 s
    failures = [r.getMessage() for r in caplog.records if "report failed" in r.getMessage()]
    assert len(failures) == 3
    assert "injected fault" in failures[0]
    assert "retrying in" in failures[0]


def test_polls_answered_500_are_retried_until_work_comes(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """GIVEN a controller answering the first four polls with 500 WHEN a job waits THEN the
    worker keeps polling (with backoff, logged) and runs it."""
    caplog.set_level(logging.WARNING, logger="thresher.worker")
    settings = ControllerSettings(data_dir=tmp_path / "data")
    with (
        serve_in_thread(settings) as served,
        fault_proxy(served.url, {POLL: 4}) as proxy,
        Client(served.url, served.admin_token) as client,
    ):
        job = client.submit("one", ["true"], frames="1-3")
        config = AgentConfig(
            controller_url=proxy.url,
            token=served.admin_token,
            facts=facts(1),
            work_dir=tmp_path / "work",
        )
        run_agent(Agent(config), lambda: client.job(job.id).status == "succeeded", timeout=60)
    assert proxy.faulted(POLL) == 4
    logged = [r.getMessage() for r in caplog.records]
    assert sum("poll failed" in m for m in logged) == 4
    assert any("failure 4 in a row" in m for m in logged)


def test_a_loop_outlives_a_fault_of_its_own(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """GIVEN a round that raises (a bug, not a controller error) WHEN the loop runs THEN the
    failure is logged with its traceback and the next round runs after the backoff."""
    config = AgentConfig(
        controller_url="http://127.0.0.1:9", token="t", facts=facts(1), work_dir=tmp_path
    )
    agent = Agent(config, jitter=lambda: 0.0)
    rounds: list[int] = []

    async def flaky(stop: asyncio.Event) -> None:
        rounds.append(len(rounds))
        if len(rounds) <= 2:
            raise KeyError("a bug")
        stop.set()

    async def run() -> None:
        await agent._forever("flaky loop", flaky, asyncio.Event())

    caplog.set_level(logging.ERROR, logger="thresher.worker")
    asyncio.run(run())
    assert rounds == [0, 1, 2]
    errors = [r for r in caplog.records if "flaky loop failed" in r.getMessage()]
    assert [r.exc_info is not None for r in errors] == [True, True]
    assert "retrying in 0.1s (first failure)" in errors[0].getMessage()
    assert "retrying in 0.2s (failure 2 in a row)" in errors[1].getMessage()


def stored_stdout(served: ServedController, job_id: int) -> list[str]:
    """The job's stdout lines as the controller stored them, in the order it did."""
    query = (
        sa.select(log_lines.c.text)
        .join(attempts, attempts.c.id == log_lines.c.attempt_id)
        .join(tasks, tasks.c.id == attempts.c.task_id)
        .where(tasks.c.job_id == job_id, log_lines.c.stream == "stdout")
        .order_by(log_lines.c.id)
    )
    with served.store.engine.connect() as conn:
        return list(conn.execute(query).scalars())


def test_fast_output_is_stored_whole_and_in_order(db_url: str, tmp_path: Path) -> None:
    """GIVEN a task printing 200,000 lines at once (the worker once kept 50,000 and dropped
    the rest, "while offline", while online) WHEN it runs THEN the controller stores every
    line, in order: the task waits for the worker to send them (back-pressure)."""
    count = 200_000
    settings = ControllerSettings(data_dir=tmp_path / "data")
    with (
        serve_in_thread(settings, database_url=db_url) as served,
        Client(served.url, served.admin_token) as client,
    ):
        job = client.submit("chatty", ["seq", str(count)], frames="1")
        config = AgentConfig(
            controller_url=served.url,
            token=served.admin_token,
            facts=facts(1),
            work_dir=tmp_path / "work",
        )
        run_agent(Agent(config), lambda: client.job(job.id).status == "succeeded", timeout=120)
        stored = stored_stdout(served, job.id)
        system = [line.text for line in client.log(job.id, 0) if line.stream == "system"]
    assert len(stored) == count
    assert stored == [str(n) for n in range(1, count + 1)]
    assert system == []  # no word of dropped lines: none were


def test_output_sent_again_after_a_lost_answer_is_stored_once(db_url: str, tmp_path: Path) -> None:
    """GIVEN a controller that stores the worker's first three reports but whose answers are
    lost (a 500 in their place, as after a timeout or a proxy failing after the commit) WHEN a
    task prints lines in two bursts THEN the worker sends those reports again and the log
    holds every line once, in order (the lines sent again are marked `repeat`, and the
    controller stores only those past the attempt's last numbered line)."""
    settings = ControllerSettings(data_dir=tmp_path / "data", poll_hold_s=60.0)
    script = "seq 1 500; sleep 0.3; seq 501 1000"
    with (
        serve_in_thread(settings, database_url=db_url) as served,
        fault_proxy(served.url, {}, lost={REPORT: 3}) as proxy,
        Client(served.url, served.admin_token) as client,
    ):
        job = client.submit("bursts", ["sh", "-c", script], frames="1")
        config = AgentConfig(
            controller_url=proxy.url,
            token=served.admin_token,
            facts=facts(2),  # a poll held for the second lane: output goes in reports
            work_dir=tmp_path / "work",
            hold_s=60.0,
        )
        run_agent(Agent(config), lambda: client.job(job.id).status == "succeeded", timeout=60)
        stored = stored_stdout(served, job.id)
    assert proxy.faulted(REPORT) == 3
    assert stored == [str(n) for n in range(1, 1001)]
