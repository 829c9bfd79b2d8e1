"""The agent follows its polling rules (`worker.poll_policy`, tabled in test_poll_policy.py).

A lane handed a batch of short tasks polls again once it used a third; a free lane polls at
once. The first tests drive the agent with answers and ends handed to it directly (its lanes'
threads are never started, so nothing runs) and check what its next poll asks for and when the
poll loop is woken; the last runs a real agent against a real controller.
"""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest

from thresher.client import Client
from thresher.controller.settings import ControllerSettings
from thresher.schemas import api
from thresher.testing import FakeClock, serve_in_thread
from thresher.worker.agent import Agent, AgentConfig
from thresher.worker.lanes import Done
from thresher.worker.nimby import nimby_path, write_nimby
from thresher.worker.poll_policy import Ask


def facts(lanes: int) -> api.RegisterIn:
    return api.RegisterIn(
        name="w1", hostname="w1", os="linux", cores=2, ram_bytes=1 << 30, site="hq", lanes=lanes
    )


def agent(
    tmp_path: Path, *, lanes: int = 2, ahead: int = 1, clock: FakeClock | None = None
) -> Agent:
    config = AgentConfig(
        controller_url="http://127.0.0.1:9",
        token="t",
        facts=facts(lanes),
        work_dir=tmp_path,
        ahead_per_lane=ahead,
    )
    return Agent(config, clock=clock)


_ids = iter(range(1, 1_000_000))


def handed(lane: int, n: int) -> api.PollOut:
    """A poll's answer handing `n` tasks of one job to `lane`."""
    return api.PollOut(
        assignments=[
            api.AssignmentOut(
                attempt_id=next(_ids),
                token="tok",
                job_id=1,
                block=0,
                index=i,
                frames=[i],
                kind="command",
                payload={"commands": [["true"]]},
                env={},
                cwd=None,
                max_runtime_s=None,
                lane=lane,
            )
            for i in range(n)
        ],
        stop=[],
        stale=[],
        heartbeat_s=5.0,
        lease_s=15.0,
        enabled=True,
    )


def end(a: Agent, lane: int, n: int) -> None:
    """The lane's first `n` held attempts ended."""
    ids = [i for i, h in a.executor.held.items() if h.lane == lane][:n]
    a.executor.on_lane_done([Done(lane, i) for i in ids])


def refill_due(a: Agent) -> bool:
    return a.policy.refill_due(a.executor.loads, nimby=a.nimby is not None)


def test_a_free_lane_polls_at_once(tmp_path: Path) -> None:
    a = agent(tmp_path)
    assert refill_due(a)
    assert a.ask() == Ask((0, 1), (0, 1))


def test_a_lane_handed_a_batch_polls_again_once_it_used_a_third(tmp_path: Path) -> None:
    a = agent(tmp_path)
    a._apply(handed(0, 33))  # 1 to run and 32 short ones ahead, though it asked for 1
    a._apply(handed(1, 33))
    end(a, 0, 10)
    end(a, 1, 5)
    assert not refill_due(a)  # 23 and 28 of 33 left: no poll yet
    assert not a._wake.is_set()
    end(a, 0, 1)  # lane 0 is down to two thirds
    assert a._wake.is_set()  # the poll loop is woken
    # The poll tops up every lane that used some of its batch, not only the one that ran low.
    assert a.ask() == Ask((), (0, 1))


def test_a_poll_is_not_due_again_once_the_answer_topped_the_lanes_up(tmp_path: Path) -> None:
    a = agent(tmp_path)
    a._apply(handed(0, 33))
    a._apply(handed(1, 33))
    end(a, 0, 17)
    assert a._wake.is_set()  # what a lane running low does while the poll is out
    a._apply(handed(0, 17))  # the answer: back to 33
    a._rearm()
    assert not a._wake.is_set()
    assert not refill_due(a)


def test_without_a_batch_the_lane_asks_for_its_one_ahead(tmp_path: Path) -> None:
    a = agent(tmp_path)
    a._apply(handed(0, 2))  # what it asked for: the task and one ahead (long or unknown ones)
    a._apply(handed(1, 1))
    assert a.ask() == Ask((), (1,))
    assert refill_due(a)
    end(a, 0, 1)
    assert a.ask() == Ask((), (0, 1))


def test_no_tasks_ahead_asked_for_none_asked_for_ever(tmp_path: Path) -> None:
    a = agent(tmp_path, ahead=0)
    a._apply(handed(0, 5))  # more than it asked for: still nothing ahead asked for
    end(a, 0, 3)
    assert a.ask() == Ask((1,), ())


def test_nimby_asks_for_nothing(tmp_path: Path) -> None:
    a = agent(tmp_path)
    write_nimby(nimby_path(tmp_path), "paused")
    a.check_nimby()
    assert a.ask() == Ask()


def test_finishes_wait_for_a_young_poll_only_while_polls_bring_work(tmp_path: Path) -> None:
    clock = FakeClock()
    a = agent(tmp_path, clock=clock)
    a._poll_sent_at = clock.now()
    a._answered(handed(0, 33))
    # The next poll will most likely come back at once with work: the finishes ride on it.
    assert a._report_wait() == pytest.approx(a.config.report_after_s)
    clock.advance(0.03)
    assert a._report_wait() == pytest.approx(a.config.report_after_s - 0.03)
    a._answered(handed(0, 0))
    # The job's last tasks: the next poll is held for want of work, so they are reported now.
    assert a._report_wait() == 0


def test_a_task_given_to_no_lane_of_this_worker_fails(tmp_path: Path) -> None:
    a = agent(tmp_path, lanes=2)
    a._apply(handed(5, 1))
    output, finished = a.outbox.drain()
    assert [(f.status, f.message) for f in finished] == [
        ("failed", "the controller gave it to no lane of this worker (5)")
    ]
    assert [text for batch in output for _, text in batch.lines] == [finished[0].message]
    assert a.ask() == Ask((0, 1), (0, 1))


@pytest.mark.skipif(shutil.which("true") is None, reason="no `true` binary")
def test_short_tasks_take_few_polls(db_url: str, tmp_path: Path) -> None:
    """GIVEN 300 tasks of `true` on one worker with 2 lanes WHEN they run THEN the worker
    sends far fewer polls than tasks (a poll brings a batch per lane and its finishes)."""
    tasks = 300
    settings = ControllerSettings(data_dir=tmp_path / "data")
    with (
        serve_in_thread(settings, database_url=db_url) as served,
        Client(served.url, served.admin_token) as client,
    ):
        job = client.submit("short", [str(shutil.which("true")), "{frame}"], frames=f"1-{tasks}")
        config = AgentConfig(
            controller_url=served.url,
            token=served.admin_token,
            facts=facts(2),
            work_dir=tmp_path / "work",
        )
        worker = Agent(config)

        async def run() -> None:
            stop = asyncio.Event()
            running = asyncio.create_task(worker.run(stop))
            while (await asyncio.to_thread(client.job, job.id)).status != "succeeded":
                await asyncio.wait({running}, timeout=0.05)
                assert not running.done(), "the agent stopped"
            stop.set()
            await running

        asyncio.run(run())
    assert worker.sent["assignments"] == tasks
    # One poll per task before tasks were held ahead in batches; now a poll brings up to 33
    # per lane. The bound leaves room for a slow machine (lanes running dry, index rebuilds).
    assert worker.sent["polls"] + worker.sent["reports"] <= tasks // 5


class _Recording:
    """An agent client that answers at once with nothing and records what was sent."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, api.PollIn | api.ReportIn]] = []

    async def poll(self, body: api.PollIn) -> api.PollOut:
        self.sent.append(("poll", body))
        return handed(0, 0)

    async def report(self, body: api.ReportIn) -> api.PollOut:
        self.sent.append(("report", body))
        return handed(0, 0)


def test_a_finish_goes_in_a_report_before_the_held_poll(tmp_path: Path) -> None:
    """GIVEN a lane gone idle with its finish and a line queued WHEN the worker polls for the
    free lane THEN the line and the finish are reported first (committed without waiting for
    the poll's claim), and the held poll carries neither and no longer names the attempt."""
    recording = _Recording()
    a = Agent(agent(tmp_path, lanes=1).config, client=recording)  # type: ignore[arg-type]

    async def scenario() -> int:
        a.outbox.bind(asyncio.get_running_loop())
        a._apply(handed(0, 1))
        (attempt_id,) = a.executor.held
        a.outbox.add_line(attempt_id, "tok", "stdout", "done")
        end(a, 0, 1)  # ended (as not started: `canceled`), its finish queued
        await a._poll_round(asyncio.Event())
        return attempt_id

    attempt_id = asyncio.run(scenario())
    (kind, report), (then, poll) = recording.sent
    assert (kind, then) == ("report", "poll")
    assert isinstance(report, api.ReportIn)
    assert isinstance(poll, api.PollIn)
    assert [f.attempt_id for f in report.finished] == [attempt_id]
    assert [text for batch in report.output for _, text in batch.lines] == ["done"]
    assert poll.wait_s > 0
    assert poll.finished == []
    assert poll.output == []
    assert poll.running == []
    assert a.executor.held == {}
