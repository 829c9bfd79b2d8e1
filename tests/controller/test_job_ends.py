"""Every job ends, over HTTP on a served controller (SQLite and PostgreSQL): a block that
cannot succeed ends its job `failed` with what waited on it marked as never run, a retry brings
it all back, and a job waiting on a deleted job fails saying so; a wait for a job's end is
answered by it."""

from __future__ import annotations

import threading
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from tests.controller.test_dispatch import ended, worker

from thresher.client import Client, InvalidRequest, NotFound
from thresher.schemas import api
from thresher.testing import FakeClock, ServedController, wait_until


def staged(admin: Client, *, retries: int = 0) -> api.JobOut:
    """render 1-2 (`retries`), comp 1-2 waiting on it whole, mux waiting on comp."""
    return admin.submit_job(
        api.JobIn(
            name="staged",
            command=["true"],
            blocks=[
                api.BlockIn(name="render", frames="1-2", retries=retries),
                api.BlockIn(name="comp", frames="1-2", after=["render"]),
                api.BlockIn(name="mux", frames="1", after=["comp"]),
            ],
        )
    )


def task_statuses(admin: Client, job_id: int, block: int) -> list[str]:
    return [t.status for t in admin.tasks(job_id, block=block).tasks]


def test_a_block_failed_for_good_ends_its_job_and_a_retry_brings_it_back(
    served: ServedController, admin: Client
) -> None:
    job = staged(admin)
    w = worker(served, "w1", lanes=2)
    first, second = w.poll().assignments
    assert {first.block, second.block} == {0}

    w.poll(want=0, finished=[ended(first, "failed"), ended(second)])

    done = admin.job(job.id)
    assert done.status == "failed"
    assert done.finished_at is not None
    assert done.status_reason == (
        "1 task of block render failed; 2 tasks of block comp never ran; "
        "1 task of block mux never ran"
    )
    assert (done.counts.failed, done.counts.canceled, done.counts.waiting) == (1, 3, 0)
    assert task_statuses(admin, job.id, 1) == ["canceled", "canceled"]
    assert w.poll(wait_s=0).assignments == []

    admin.retry_task(job.id, first.index, block=0)

    again = admin.job(job.id)
    assert (again.status, again.finished_at, again.counts.waiting) == ("queued", None, 3)
    assert task_statuses(admin, job.id, 1) == ["waiting", "waiting"]
    (redo,) = w.poll().assignments
    assert (redo.block, redo.index) == (0, first.index)
    comps = w.poll(finished=[ended(redo)]).assignments
    assert sorted((a.block, a.index) for a in comps) == [(1, 0), (1, 1)]
    (mux,) = w.poll(finished=[ended(a) for a in comps]).assignments
    w.poll(want=0, finished=[ended(mux)])
    assert admin.job(job.id).status == "succeeded"


def test_a_job_retry_after_a_failed_block_runs_it_all_again(
    served: ServedController, admin: Client
) -> None:
    job = staged(admin)
    w = worker(served, "w1", lanes=2)
    got = w.poll().assignments
    w.poll(want=0, finished=[ended(a, "failed") for a in got])
    assert admin.job(job.id).status == "failed"

    assert admin.retry(job.id).affected == 2 + 3
    assert admin.job(job.id).counts.waiting == 3
    got = w.poll().assignments
    assert sorted(a.block for a in got) == [0, 0]  # render first, as before


def test_a_job_waiting_on_a_deleted_job_fails_and_never_runs(
    served: ServedController, admin: Client
) -> None:
    first = admin.submit("render", ["true"], frames="1")
    second = admin.submit("encode", ["true"], frames="1", after=[first.id], priority=100)
    assert (second.status, second.status_reason) == ("waiting", f"waiting on job {first.id}")

    admin.delete(first.id)

    gone = admin.job(second.id)
    assert (gone.status, gone.status_reason) == (
        "failed",
        f"job {first.id}, which this job waits on, was deleted",
    )
    assert gone.finished_at is not None
    w = worker(served, "w1")
    assert w.poll(wait_s=0.2).assignments == []
    assert [j.id for j in admin.jobs(status=["failed"])] == [second.id]


def test_a_task_requeued_where_it_can_never_run_is_marked_by_dispatch(serve: Any) -> None:
    """GIVEN comp runs on a worker that goes silent after render failed for good (a retry of
    a render task), WHEN its task is requeued by the lease sweep (no finish reports it), THEN
    dispatch sees it can never run, marks it, and the job ends failed."""
    clock = FakeClock()
    served: ServedController = serve(clock=clock, sweep_every_s=0.02)
    with Client(served.url, served.admin_token) as admin:
        job = admin.submit_job(
            api.JobIn(
                name="late",
                command=["true"],
                blocks=[
                    api.BlockIn(name="render", frames="1-2", retries=0),
                    api.BlockIn(name="comp", frames="1", after=["render"]),
                ],
            )
        )
        w = worker(served, "w1", lanes=2)
        renders = w.poll().assignments
        w.poll(want=0, finished=[ended(a) for a in renders])
        silent = worker(served, "silent")
        (comp,) = silent.poll().assignments
        assert comp.block == 1
        admin.retry_task(job.id, 0, block=0)
        (redo,) = w.poll(want=1).assignments
        w.poll(want=0, finished=[ended(redo, "failed")])
        assert admin.job(job.id).status == "running"  # comp may still succeed

        clock.advance(served.settings.lease_s + 1)
        wait_until(
            lambda: admin.worker("silent").status == "offline",
            timeout=10,
            what="the lease to expire",
        )
        fresh = worker(served, "fresh")
        assert fresh.poll(wait_s=0).assignments == []

        done = admin.job(job.id)
        assert (done.status, done.counts.canceled) == ("failed", 1)
        assert task_statuses(admin, job.id, 1) == ["canceled"]


# -- waiting for a job's end (GET /jobs/{id}/wait) --------------------------------------------


def waits_held(served: ServedController) -> float:
    text = httpx.get(
        served.url + "/metrics", headers={"Authorization": f"Bearer {served.admin_token}"}
    ).text
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == "thresher_job_waits_in_flight":
                return s.value
    raise AssertionError("no thresher_job_waits_in_flight in the metrics")


def test_a_wait_answers_when_the_job_ends_else_at_its_timeout(
    served: ServedController, admin: Client
) -> None:
    """GIVEN a one-task job, WHEN a client waits for it: the wait times out returning the job
    unfinished; a wait held while the task runs is answered by its finish, long before its timeout,
    with the job as stored (its record handed by the use case that ended it); a bad timeout is
    refused naming the field; another artist's job is not found."""
    job = admin.submit("one", ["true"], frames="1")
    assert admin.wait(job.id, timeout_s=0.05).status == "queued"  # the job as it is

    seen: list[api.JobOut] = []
    with Client(served.url, served.admin_token) as other:
        held = threading.Thread(target=lambda: seen.append(other.wait(job.id, timeout_s=60)))
        held.start()
        wait_until(lambda: waits_held(served) == 1, timeout=10, what="the wait held")
        w = worker(served, "w1")
        (task,) = w.poll().assignments
        w.poll(want=0, finished=[ended(task)])
        held.join(timeout=30)  # inside the 60 s hold: answered by the finish
    assert not held.is_alive(), "the wait was not answered by the job's end"
    assert [j.status for j in seen] == ["succeeded"]
    assert seen == [admin.job(job.id)]  # the record handed with the end is the job as stored
    assert waits_held(served) == 0
    assert admin.wait(job.id, timeout_s=60) == seen[0]  # ended already: answered at once
    with pytest.raises(NotFound):
        admin.wait(job.id + 100, timeout_s=0)

    with pytest.raises(InvalidRequest) as bad:
        admin.get_json(f"/api/v1/jobs/{job.id}/wait", timeout_s=61)
    assert "timeout_s" in str(bad.value)
    bob = admin.create_token("bob", "artist").token
    with Client(served.url, bob) as as_bob, pytest.raises(NotFound):
        as_bob.wait(job.id, timeout_s=0)
