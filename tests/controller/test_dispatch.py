"""Dispatch over HTTP: workers played by the test through the real `AgentClient`.

A `SimWorker` registers, polls (heartbeat + reports + claim in one call) and finishes attempts the
way the agent does, so these tests exercise the long-poll, fencing, leases, pause/cancel/retry and
dependencies of a real controller served by uvicorn, on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Literal, TypeVar

import pytest

from thresher.client import (
    AgentClient,
    Client,
    Conflict,
    InvalidRequest,
    StaleAttempt,
    Unauthorized,
)
from thresher.schemas import api
from thresher.testing import FakeClock, ServedController, wait_until

T = TypeVar("T")
Status = Literal["succeeded", "failed", "timed_out", "canceled"]
Line = tuple[Literal["stdout", "stderr", "system"], str]


class SimWorker:
    """A worker process played by the test. Tracks the attempts it holds, like the agent."""

    def __init__(self, url: str, enrol_token: str, name: str, *, lanes: int = 1) -> None:
        self.url = url
        self.token = enrol_token
        self.name = name
        self.lanes = lanes
        self.id = 0
        self.running: dict[int, api.AssignmentOut] = {}

    def _call(self, call: Callable[[AgentClient], Awaitable[T]]) -> T:
        async def run() -> T:
            client = AgentClient(self.url, self.token)
            try:
                return await call(client)
            finally:
                await client.aclose()

        return asyncio.run(run())

    def register(self) -> SimWorker:
        body = api.RegisterIn(
            name=self.name,
            hostname=self.name,
            os="linux",
            cores=4,
            ram_bytes=1 << 30,
            site="hq",
            lanes=self.lanes,
        )
        out = self._call(lambda c: c.register(body))
        self.token, self.id = out.token, out.worker_id
        self.running.clear()
        return self

    def poll(
        self,
        *,
        want: int | None = None,
        wait_s: float | None = None,
        finished: Sequence[api.FinishIn] = (),
        output: Sequence[api.OutputBatch] = (),
    ) -> api.PollOut:
        """Report, heartbeat and claim. A poll that wants work is held (up to 5 s by default)
        until work appears, as the agent's is; pass `wait_s=0` to check that none is there."""
        done = {f.attempt_id for f in finished}
        if want is None:
            want = max(0, self.lanes - len(self.running) + len(done))
        if wait_s is None:
            wait_s = 5.0 if want else 0.0
        body = api.PollIn(
            lanes=list(range(want)),
            wait_s=wait_s,
            running=[
                api.RunningIn(attempt_id=a.attempt_id, token=a.token)
                for a in self.running.values()
                if a.attempt_id not in done
            ],
            finished=list(finished),
            output=list(output),
        )
        out = self._call(lambda c: c.poll(body))
        for attempt_id in done | set(out.stale):
            self.running.pop(attempt_id, None)
        self.running.update({a.attempt_id: a for a in out.assignments})
        return out

    def finish(self, a: api.AssignmentOut, status: Status = "succeeded", **values: Any) -> None:
        """Report one finish through `/agent/report`; a stale one raises StaleAttempt."""
        body = api.ReportIn(finished=[ended(a, status, **values)])
        answer = self._call(lambda c: c.report(body))
        self.running.pop(a.attempt_id, None)
        if a.attempt_id in answer.stale:
            raise StaleAttempt(409, "stale_attempt", f"attempt {a.attempt_id} is stale", "token")

    def sample(self, values: dict[str, float]) -> None:
        """A poll that asks for nothing and carries a resource sample."""
        body = api.PollIn(wait_s=0, sample=values)
        self._call(lambda c: c.poll(body))

    def output(self, a: api.AssignmentOut, lines: list[Line]) -> None:
        body = api.OutputBatch(attempt_id=a.attempt_id, token=a.token, lines=lines)
        answer = self._call(lambda c: c.report(api.ReportIn(output=[body])))
        if a.attempt_id in answer.stale:
            raise StaleAttempt(409, "stale_attempt", f"attempt {a.attempt_id} is stale", "token")


def ended(a: api.AssignmentOut, status: Status = "succeeded", **values: Any) -> api.FinishIn:
    if status == "failed":
        values.setdefault("exit_code", 1)
    elif status == "succeeded":
        values.setdefault("exit_code", 0)
    return api.FinishIn(attempt_id=a.attempt_id, token=a.token, status=status, **values)


def worker(served: ServedController, name: str, *, lanes: int = 1) -> SimWorker:
    return SimWorker(served.url, served.admin_token, name, lanes=lanes).register()


def attempt_statuses(admin: Client, job_id: int, index: int) -> list[tuple[str, str]]:
    return [(a.worker, a.status) for a in admin.task(job_id, index).attempts_detail]


# -- the long poll ------------------------------------------------------------------------------


def test_a_poll_is_answered_at_once_with_fenced_assignments(
    served: ServedController, admin: Client
) -> None:
    w = worker(served, "w1", lanes=2)
    idle = w.poll(wait_s=0)
    assert (idle.assignments, idle.stop, idle.stale) == ([], [], [])
    assert (idle.heartbeat_s, idle.lease_s) == (5.0, 15.0)
    job = admin.submit("three", ["echo", "{frame:04d}"], frames="1-3", env={"A": "1"})

    out = w.poll(wait_s=30)

    assert [(a.job_id, a.index, a.frames) for a in out.assignments] == [
        (job.id, 0, [1]),
        (job.id, 1, [2]),
    ]
    tokens = [a.token for a in out.assignments]
    assert len(set(tokens)) == 2
    assert all(len(t) >= 16 for t in tokens)
    first = out.assignments[0]
    assert first.payload == {"commands": [["echo", "{frame:04d}"]]}
    assert (first.kind, first.env) == ("command", {"A": "1"})
    assert (out.stop, out.stale, out.enabled) == ([], [], True)
    assert admin.job(job.id).counts.running == 2
    assert admin.worker("w1").running == 2


def test_a_held_poll_returns_as_soon_as_a_job_is_submitted(serve: Any) -> None:
    # The fake clock never reaches the poll's deadline and the heartbeat wake-up is a minute away,
    # so only the submission's notification can end this poll before the join below gives up.
    clock = FakeClock()
    served: ServedController = serve(clock=clock, heartbeat_s=60.0, poll_hold_s=60.0, lease_s=600.0)
    w = worker(served, "w1")
    clock.advance(1)
    answers: list[api.PollOut] = []
    held = threading.Thread(target=lambda: answers.append(w.poll(wait_s=60)), daemon=True)
    held.start()
    wait_until(
        lambda: served.store.workers.get(w.id).last_seen == clock.now(),
        timeout=10,
        what="the poll to begin",
    )

    with Client(served.url, served.admin_token) as admin:
        job = admin.submit("late", ["true"], frames="1")
        held.join(timeout=20)

        assert not held.is_alive(), "the held poll was not woken by the submission"
        (answer,) = answers
        assert [(a.job_id, a.index) for a in answer.assignments] == [(job.id, 0)]
        assert admin.job(job.id).status == "running"


# -- fencing ------------------------------------------------------------------------------------


def test_reports_with_a_stale_fencing_token_are_named_stale(
    served: ServedController, admin: Client
) -> None:
    job = admin.submit("fenced", ["true"], frames="1-2")
    w = worker(served, "w1", lanes=2)
    a, b = w.poll().assignments
    wrong_token = a.model_copy(update={"token": "f" * 32})
    with pytest.raises(StaleAttempt):
        w.finish(wrong_token)
    with pytest.raises(StaleAttempt):
        w.output(wrong_token, [("stdout", "x")])
    forged = api.FinishIn(attempt_id=b.attempt_id, token=a.token, status="succeeded")
    answer = w._call(lambda c: c.report(api.ReportIn(finished=[forged])))
    assert answer.stale == [b.attempt_id]
    w.running.update({a.attempt_id: a, b.attempt_id: b})

    # Inside a poll, a stale finish is named in `stale` instead.
    assert w.poll(want=0, finished=[forged]).stale == [b.attempt_id]
    assert admin.job(job.id).counts.running == 2  # nothing was changed by the refused reports
    assert admin.log(job.id, 0) == []

    w.finish(a)
    w.finish(a)  # the same report again (the first answer was lost): accepted, counted once
    with pytest.raises(StaleAttempt):
        w.finish(a, "failed")
    counts = admin.job(job.id).counts
    assert (counts.succeeded, counts.running) == (1, 1)


def test_a_live_workers_name_is_refused_to_anyone_else(
    served: ServedController, admin: Client
) -> None:
    job = admin.submit("taken", ["true"], frames="1")
    live = worker(served, "w1")
    (held,) = live.poll().assignments

    with pytest.raises(Conflict, match="in use by a live worker"):
        worker(served, "w1")  # the enrolment token again: refused, nothing taken over

    assert attempt_statuses(admin, job.id, 0) == [("w1", "running")]
    live.finish(held)
    assert admin.job(job.id).status == "succeeded"


def test_a_restarted_worker_re_attaches_with_its_own_token_and_loses_its_old_attempts(
    served: ServedController, admin: Client
) -> None:
    job = admin.submit("restart", ["true"], frames="1")
    before = worker(served, "w1")
    (old,) = before.poll().assignments

    after = SimWorker(served.url, before.token, "w1").register()

    assert after.id == before.id
    task = admin.task(job.id, 0)
    assert (task.status, task.failures) == ("queued", 0)
    assert attempt_statuses(admin, job.id, 0) == [("w1", "lost")]
    with pytest.raises(StaleAttempt):
        after.finish(old, "failed")  # the old process's attempt is over
    with pytest.raises(Unauthorized):
        before.poll()  # the old process's token was revoked: refused on its next request
    (new,) = after.poll().assignments
    assert (new.index, new.attempt_id != old.attempt_id) == (0, True)
    after.finish(new)
    assert admin.job(job.id).status == "succeeded"
    assert attempt_statuses(admin, job.id, 0) == [("w1", "lost"), ("w1", "succeeded")]


# -- pause, cancel, retry -----------------------------------------------------------------------


def test_pause_stops_running_attempts_and_resume_makes_them_claimable(
    served: ServedController, admin: Client
) -> None:
    job = admin.submit("pausable", ["true"], frames="1-2", retries=0)
    w = worker(served, "w1", lanes=2)
    a, b = w.poll().assignments

    assert admin.pause(job.id).affected == 2

    out = w.poll(want=0)
    assert sorted(out.stop) == sorted([a.attempt_id, b.attempt_id])
    out = w.poll(finished=[ended(a, "canceled"), ended(b, "canceled")], wait_s=0)
    assert (out.assignments, out.stop) == ([], [])
    paused = admin.job(job.id)
    assert paused.status == "paused"
    assert (paused.counts.queued, paused.counts.failed) == (2, 0)
    assert admin.task(job.id, 0).failures == 0
    assert attempt_statuses(admin, job.id, 1) == [("w1", "canceled")]
    assert w.poll(wait_s=0).assignments == []

    assert admin.resume(job.id).status == "queued"
    again = w.poll().assignments
    assert sorted(x.index for x in again) == [0, 1]
    w.poll(want=0, finished=[ended(x) for x in again])
    assert admin.job(job.id).status == "succeeded"


def test_a_reports_answer_names_the_attempts_to_stop(
    served: ServedController, admin: Client
) -> None:
    """A report (a finish, or output alone) is answered with the worker's running attempts
    asked to stop, as a poll is: here the canceled job's, beside a success of another job."""
    done = admin.submit("done", ["true"])
    w = worker(served, "w1", lanes=2)
    (a,) = w.poll(want=1).assignments
    doomed = admin.submit("doomed", ["true"])
    (b,) = w.poll(want=1).assignments
    assert (a.job_id, b.job_id) == (done.id, doomed.id)
    admin.cancel(doomed.id)

    line = api.OutputBatch(attempt_id=b.attempt_id, token=b.token, lines=[("stdout", "hi")])
    assert w._call(lambda c: c.report(api.ReportIn(output=[line]))).stop == [b.attempt_id]
    answer = w._call(lambda c: c.report(api.ReportIn(finished=[ended(a)])))
    assert (answer.stop, answer.stale) == ([b.attempt_id], [])
    answer = w._call(lambda c: c.report(api.ReportIn(finished=[ended(b, "canceled")])))
    assert answer.stop == []
    assert admin.job(done.id).status == "succeeded"


def test_cancel_stops_running_attempts_and_ends_the_job(
    served: ServedController, admin: Client
) -> None:
    job = admin.submit("doomed", ["true"], frames="1-3")
    w = worker(served, "w1")
    (a,) = w.poll().assignments

    action = admin.cancel(job.id)

    assert (action.status, action.affected) == ("canceled", 1)
    assert w.poll(want=0).stop == [a.attempt_id]
    w.finish(a, "canceled", exit_code=-15)
    canceled = admin.job(job.id)
    assert canceled.status == "canceled"
    assert (canceled.counts.canceled, canceled.counts.waiting) == (1, 2)
    assert canceled.finished_at is not None
    assert w.poll(wait_s=0).assignments == []


def test_a_retry_right_after_a_cancel_runs_the_job_again(
    served: ServedController, admin: Client
) -> None:
    job = admin.submit("undo", ["true"], frames="1")
    w = worker(served, "w1")
    (a,) = w.poll().assignments
    admin.cancel(job.id)
    admin.retry(job.id)  # the user changed their mind before the worker heard of the cancel

    stopped = a.attempt_id in w.poll(want=0).stop
    w.finish(a, "canceled" if stopped else "succeeded")

    # Either the attempt ran on, or it was stopped and its task must run again.
    assert admin.task(job.id, 0).status in ("queued", "succeeded")


def test_resume_withdraws_the_stop_requests_of_a_pause(
    served: ServedController, admin: Client
) -> None:
    job = admin.submit("undo", ["true"], frames="1")
    w = worker(served, "w1")
    (a,) = w.poll().assignments

    admin.pause(job.id)
    admin.resume(job.id)

    assert w.poll(want=0).stop == []
    w.finish(a)
    assert admin.job(job.id).status == "succeeded"


def test_deleting_a_job_stops_its_running_attempts(served: ServedController, admin: Client) -> None:
    job = admin.submit("gone", ["true"], frames="1")
    w = worker(served, "w1")
    (a,) = w.poll().assignments

    admin.delete(job.id)

    out = w.poll(want=0)
    assert a.attempt_id in out.stop + out.stale


def test_retry_requeues_the_failed_tasks_of_a_failed_job(
    served: ServedController, admin: Client
) -> None:
    job = admin.submit("flaky", ["true"], frames="1-2", retries=0)
    w = worker(served, "w1", lanes=2)
    a, b = w.poll().assignments
    w.poll(want=0, finished=[ended(a, "failed", exit_code=3), ended(b)])
    failed = admin.job(job.id)
    assert failed.status == "failed"
    assert failed.finished_at is not None

    action = admin.retry(job.id)

    assert (action.status, action.affected) == ("queued", 1)
    assert admin.job(job.id).finished_at is None
    assert admin.task(job.id, a.index).failures == 0
    (again,) = w.poll().assignments
    assert again.index == a.index
    w.finish(again)
    assert admin.job(job.id).status == "succeeded"


def test_a_failed_attempt_is_retried_on_another_worker(
    served: ServedController, admin: Client
) -> None:
    job = admin.submit("picky", ["true"], frames="1", retries=2)
    first, second = worker(served, "first"), worker(served, "second")
    (a,) = first.poll().assignments

    out = first.poll(finished=[ended(a, "failed")], wait_s=0)

    assert out.assignments == []  # the task waits for another host
    (b,) = second.poll().assignments
    assert b.index == a.index
    second.finish(b)
    assert attempt_statuses(admin, job.id, 0) == [("first", "failed"), ("second", "succeeded")]
    task = admin.task(job.id, 0)
    assert (task.status, task.failures, task.worker) == ("succeeded", 1, "second")


def test_retry_and_skip_of_single_tasks(served: ServedController, admin: Client) -> None:
    job = admin.submit("edits", ["true"], frames="1-3")
    w = worker(served, "w1", lanes=2)
    (a,) = w.poll(want=1).assignments
    w.finish(a)

    admin.skip_task(job.id, 2)
    admin.retry_task(job.id, a.index)

    counts = admin.job(job.id).counts
    assert (counts.skipped, counts.queued, counts.succeeded) == (1, 1, 0)
    got = w.poll().assignments
    assert sorted(x.index for x in got) == [0, 1]
    w.poll(want=0, finished=[ended(x) for x in got])
    done = admin.job(job.id)
    assert (done.status, done.counts.succeeded, done.counts.skipped) == ("succeeded", 2, 1)


# -- dependencies, leases, enablement -----------------------------------------------------------


def test_a_job_after_another_gets_nothing_until_the_first_succeeded(
    served: ServedController, admin: Client
) -> None:
    first = admin.submit("render", ["true"], frames="1")
    second = admin.submit("encode", ["true"], frames="1", after=[first.id], priority=100)
    assert (second.status, second.status_reason) == ("waiting", f"waiting on job {first.id}")
    w = worker(served, "w1", lanes=2)

    (a,) = w.poll().assignments

    assert a.job_id == first.id
    out = w.poll(finished=[ended(a)])
    assert [x.job_id for x in out.assignments] == [second.id]
    assert admin.job(second.id).status == "running"


def test_a_silent_worker_goes_offline_and_its_task_is_requeued(serve: Any) -> None:
    clock = FakeClock()
    served: ServedController = serve(clock=clock, sweep_every_s=0.02)
    with Client(served.url, served.admin_token) as admin:
        job = admin.submit("lease", ["true"], frames="1", retries=0)
        silent = worker(served, "silent")
        (a,) = silent.poll().assignments
        assert admin.worker("silent").status == "online"

        clock.advance(served.settings.lease_s + 1)

        wait_until(
            lambda: admin.worker("silent").status == "offline",
            timeout=10,
            what="the lease to expire",
        )
        task = admin.task(job.id, 0)
        assert (task.status, task.failures) == ("queued", 0)
        assert attempt_statuses(admin, job.id, 0) == [("silent", "lost")]
        fresh = worker(served, "fresh")
        (b,) = fresh.poll().assignments
        assert b.index == 0
        with pytest.raises(StaleAttempt):
            silent.finish(a)  # too late: another worker took the task
        fresh.finish(b)
        assert admin.job(job.id).status == "succeeded"


def test_a_disabled_worker_gets_no_work(served: ServedController, admin: Client) -> None:
    admin.submit("one", ["true"], frames="1")
    w = worker(served, "w1")

    assert admin.disable_worker("w1").enabled is False
    out = w.poll(wait_s=0)
    assert (out.assignments, out.enabled) == ([], False)

    admin.enable_worker("w1")
    assert len(w.poll().assignments) == 1


# -- task pages and logs ------------------------------------------------------------------------


def test_task_pages_include_waiting_tasks_and_the_worker_of_the_latest_attempt(
    served: ServedController, admin: Client
) -> None:
    job = admin.submit("pages", ["true"], frames="1-500", chunk=2)
    first, second = worker(served, "first", lanes=3), worker(served, "second")
    t0, t1, _t2 = first.poll().assignments
    first.poll(want=0, finished=[ended(t0), ended(t1, "failed")])
    (t1_again,) = second.poll().assignments
    assert t1_again.index == t1.index

    page = admin.tasks(job.id, offset=0, limit=100)

    assert (page.total, page.offset, page.limit, len(page.tasks)) == (250, 0, 100, 100)
    shown = [(t.index, t.frames, t.status, t.worker) for t in page.tasks[:4]]
    assert shown == [
        (0, [1, 2], "succeeded", "first"),
        (1, [3, 4], "running", "second"),
        (2, [5, 6], "running", "first"),
        (3, [7, 8], "waiting", None),
    ]
    assert {t.status for t in page.tasks[3:]} == {"waiting"}
    last = admin.tasks(job.id, offset=200, limit=100)
    assert [t.index for t in last.tasks] == list(range(200, 250))
    assert last.tasks[-1].frames == [499, 500]
    assert {(t.status, t.worker) for t in last.tasks} == {("waiting", None)}
    assert admin.tasks(job.id, offset=250).tasks == []
    with pytest.raises(InvalidRequest) as info:
        admin.tasks(job.id, limit=0)
    assert info.value.field == "limit"


def test_log_lines_sent_with_polls_come_back_in_order(
    served: ServedController, admin: Client
) -> None:
    job = admin.submit("chatty", ["true"], frames="1")
    w = worker(served, "w1")
    (a,) = w.poll().assignments

    def batch(*lines: Line, progress: float | None = None) -> api.OutputBatch:
        return api.OutputBatch(
            attempt_id=a.attempt_id, token=a.token, lines=list(lines), progress=progress
        )

    w.poll(want=0, output=[batch(("stdout", "one"), ("stderr", "two")), batch(("stdout", "three"))])
    w.output(a, [("stdout", "four")])
    w.poll(want=0, output=[batch(("system", "five"), progress=100)], finished=[ended(a)])

    lines = admin.log(job.id, 0)
    assert [(x.stream, x.text) for x in lines] == [
        ("stdout", "one"),
        ("stderr", "two"),
        ("stdout", "three"),
        ("stdout", "four"),
        ("system", "five"),
    ]
    assert {x.attempt_id for x in lines} == {a.attempt_id}
    assert [x.id for x in lines] == sorted(x.id for x in lines)
    assert [x.text for x in admin.log(job.id, 0, after=lines[2].id)] == ["four", "five"]
    assert admin.job(job.id).status == "succeeded"


def test_two_workers_finish_a_job_with_one_success_per_task(
    served: ServedController, admin: Client
) -> None:
    job = admin.submit("farm", ["true"], frames="1-24", chunk=2)
    workers = [worker(served, "a", lanes=2), worker(served, "b", lanes=2)]
    held: dict[str, list[api.AssignmentOut]] = {w.name: [] for w in workers}

    for _ in range(20):
        for w in workers:
            done = [ended(x) for x in held[w.name]]
            held[w.name] = w.poll(finished=done, wait_s=0).assignments
        if admin.job(job.id).status == "succeeded":
            break

    final = admin.job(job.id)
    assert (final.status, final.counts.succeeded, final.finished_at is not None) == (
        "succeeded",
        12,
        True,
    )
    attempts = served.store.attempts.of_job(job.id)
    per_task = sorted((x.task_index, x.status.value) for x in attempts)
    assert per_task == [(i, "succeeded") for i in range(12)]
    assert {x.worker for x in attempts} == {"a", "b"}
