"""The accsyn-style API through the real client against a served controller (SQLite and
PostgreSQL): `find` evaluated on the controller and paged, `update` on the fly, `delete`,
`create`, and task-file jobs (each task its own argv, sent alone to the worker)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from tests.controller.test_dispatch import worker

from thresher.client import Client, Conflict, Forbidden, InvalidRequest, NotFound
from thresher.schemas import api
from thresher.schemas import engines as eng
from thresher.testing import ServedController


@pytest.fixture
def artist(served: ServedController, admin: Client) -> Iterator[Client]:
    with Client(served.url, admin.create_token("ann", "user").token) as client:
        yield client


# -- find -----------------------------------------------------------------------------------------


def test_find_jobs_by_status_owner_priority_and_name(
    served: ServedController, admin: Client, artist: Client
) -> None:
    low = artist.submit("comp low", ["true"], frames="1-4", priority=10)
    high = artist.submit("comp high", ["true"], frames="1-4", priority=90)
    held = admin.submit("fx held", ["true"], frames="1-2", paused=True)
    w = worker(served, "w1", lanes=1)
    w.poll()  # the highest priority job's first task runs

    def ids(query: str) -> list[int]:
        found = admin.find(query)
        assert all(isinstance(j, api.JobOut) for j in found)
        return [j.id for j in found]

    assert ids("job where status=running") == [high.id]
    assert ids("jobs where status=queued") == [low.id]
    assert ids("job where status=paused") == [held.id]
    assert ids("job where owner=ann") == [high.id, low.id]  # newest first
    assert ids("job where priority>=50 and owner=ann") == [high.id]
    assert ids("job where name~COMP and tasks_running=0") == [low.id]
    assert ids("job where id=" + str(held.id)) == [held.id]


def test_find_tasks_of_a_job_by_status_and_worker(served: ServedController, admin: Client) -> None:
    job = admin.submit("ten", ["true"], frames="1-10")
    w = worker(served, "w1", lanes=2)
    first = w.poll()
    a, b = first.assignments
    w.finish(a, "succeeded")
    w.finish(b, "failed")

    def found(query: str) -> list[tuple[int, str]]:
        tasks = admin.find(query)
        assert all(isinstance(t, api.TaskOut) for t in tasks)
        return [(t.index, t.status) for t in tasks]

    assert found(f"task where job={job.id} and status=succeeded") == [(a.index, "succeeded")]
    assert found(f"task where job={job.id} and worker=w1 and status!=succeeded") == [
        (b.index, "queued")  # failed once, retried: queued again
    ]
    waiting = found(f"task where job={job.id} and status=waiting")
    assert len(waiting) == 8
    assert found(f"task where job={job.id} and frames=7") == [(6, "waiting")]


def test_find_workers_and_engines(served: ServedController, admin: Client) -> None:
    worker(served, "w1")
    worker(served, "w2")
    admin.set_pools("w2", ["gpu"])
    assert [w.name for w in admin.find("worker where site=hq")] == ["w1", "w2"]
    assert [w.name for w in admin.find("worker where pools=gpu")] == ["w2"]
    assert admin.find("worker where site=sthlm") == []
    engines = admin.find("engine where type=compute")
    assert engines
    assert all(isinstance(e, eng.EngineOut) and e.type == "compute" for e in engines)


def test_find_pages_through_the_matches(admin: Client) -> None:
    made = [admin.submit(f"job {i}", ["true"]).id for i in range(7)]
    page = admin.find_page("job where name~job", offset=0, limit=3)
    assert (page.matched, page.next_offset, page.partial) == (7, 3, False)
    assert [j["id"] for j in page.items] == made[::-1][:3]
    last = admin.find_page("job where name~job", offset=6, limit=3)
    assert (len(last.items), last.next_offset) == (1, None)
    assert [j.id for j in admin.find("job where name~job")] == made[::-1]
    assert len(admin.find("job where name~job", limit=5)) == 5


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("shots where a=b", "a query starts with what to find"),
        ("job status=running", "expected 'where'"),
        ("job where colour=red", "unknown field 'colour'; known: "),
        ("task where status=failed", "a task query names its job: task where job=ID"),
        ("job where status", "expected FIELD OP VALUE"),
    ],
)
def test_a_malformed_query_is_a_422_naming_q(admin: Client, query: str, message: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        admin.find(query)
    assert info.value.status == 422
    assert info.value.field == "q"
    assert message in info.value.message


def test_find_bounds_its_page(served: ServedController) -> None:
    headers = {"Authorization": f"Bearer {served.admin_token}"}
    answer = httpx.get(
        f"{served.url}/api/v1/find", params={"q": "job", "limit": 5000}, headers=headers
    )
    assert answer.status_code == 422
    assert "limit" in answer.text
    answer = httpx.get(f"{served.url}/api/v1/find", params={"q": "job " * 600}, headers=headers)
    assert answer.status_code == 422


# -- update, delete, create ---------------------------------------------------------------------


def test_update_changes_a_job_on_the_fly(admin: Client, artist: Client) -> None:
    job = artist.submit("shot", ["true"], frames="1-10", retries=3)

    changed = artist.update(
        "job",
        job.id,
        {"priority": 80, "filters": "ram:>2g,site:hq", "max_running": 2, "retries": 1},
    )
    assert (changed.priority, changed.filters, changed.max_running) == (80, "ram:>2GB,site:hq", 2)
    assert [b.retries for b in changed.blocks] == [1]
    assert artist.update("job", job.id, {"status": "paused"}).status == "paused"
    assert artist.update("job", job.id, {"state": "queued"}).status == "queued"
    assert artist.update("job", job.id, {"max_running": 0}).max_running is None
    assert artist.update("job", job.id, {"status": "aborted"}).status == "canceled"


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"filters": "ram:lots"}, "filters", "ram:lots"),
        ({"range": "1-"}, "range", "is not a frame range"),
        ({"priority_frames": "1"}, "range", "give both"),
        ({"priority": 101}, "priority", ""),
        ({"state": "exploded"}, "state", ""),
        ({"colour": "red"}, "colour", ""),
    ],
)
def test_a_bad_update_is_a_422_naming_the_field_and_changes_nothing(
    admin: Client, change: dict[str, object], field: str, message: str
) -> None:
    job = admin.submit("shot", ["true"], frames="1-3", priority=40)
    with pytest.raises(InvalidRequest) as info:
        admin.update("job", job.id, {"priority": 70, **change})
    assert info.value.status == 422
    assert field in str(info.value.field)
    assert message in info.value.message
    assert admin.job(job.id).priority == 40  # nothing changed


def test_a_range_changes_until_the_first_task_goes_out(
    served: ServedController, admin: Client
) -> None:
    job = admin.submit("shot", ["echo", "{start}-{end}"], frames="1-10", chunk=5, paused=True)
    changed = admin.update("job", job.id, {"range": "1-100", "priority_frames": "50"})
    assert (changed.counts.total, changed.blocks[0].frames) == (20, "1-100")
    assert changed.blocks[0].priority_frames == "50"
    admin.update("job", job.id, {"state": "queued"})
    w = worker(served, "w1")
    [first] = w.poll().assignments
    assert first.frames == [46, 47, 48, 49, 50]  # the new layout, priority frames first
    with pytest.raises(Conflict) as info:
        admin.update("job", job.id, {"range": "1-200"})
    assert info.value.field == "range"
    assert admin.job(job.id).counts.total == 20


def test_an_engine_jobs_range_changes_in_its_payload_too(admin: Client) -> None:
    job = admin.create(
        "job", {"engine": "povray", "input": "/s/a.pov", "range": "1-48", "paused": True}
    )
    changed = admin.update("job", job.id, {"range": "10-20"})
    assert (changed.payload["range"], changed.payload["job_range"]) == ("10-20", [10, 20])
    tasks = admin.find(f"task where job={job.id}")
    assert tasks[0].frames[0] == 10
    assert tasks[-1].frames[-1] == 20
    listed = admin.create("job", {"name": "list", "tasks": [["a"]], "paused": True})
    with pytest.raises(InvalidRequest, match="task-file job's tasks are not frames"):
        admin.update("job", listed.id, {"range": "1-5"})


def test_only_its_owner_or_an_admin_updates_or_deletes_a_job(admin: Client, artist: Client) -> None:
    theirs = admin.submit("admin's", ["true"])
    # someone else's job the artist may not see answers as if there were none
    with pytest.raises(NotFound):
        artist.update("job", theirs.id, {"priority": 99})
    with pytest.raises(NotFound):
        artist.delete("job", theirs.id)
    assert artist.find(f"job where id={theirs.id}") == []
    mine = artist.submit("mine", ["true"])
    with pytest.raises(Forbidden, match="wrangler"):  # a dedicated pool takes others' machines
        artist.update("job", mine.id, {"filters": "pool:@gpu"})
    assert admin.update("job", mine.id, {"filters": "pool:@gpu"}).filters == "pool:@gpu"
    mine = artist.create("job", {"name": "mine", "command": ["true"], "frames": "1-2"})
    artist.delete("job", mine.id)
    assert artist.find(f"job where id={mine.id}") == []
    admin.delete(theirs.id)  # the older shape: a job id alone


def test_update_workers_and_engines_by_name(served: ServedController, admin: Client) -> None:
    worker(served, "w1")
    updated = admin.update("worker", "w1", {"enabled": False, "pools": ["lookdev"]})
    assert (updated.enabled, updated.pools) == (False, ["lookdev"])
    assert admin.update("engine", "povray", {"enabled": False}).enabled is False
    assert admin.find("engine where name=povray and enabled=false")
    with pytest.raises(ValueError, match="update"):
        admin.update("pool", "x", {})


# -- task-file jobs -----------------------------------------------------------------------------


def test_a_task_file_job_sends_each_task_only_its_own_argv(
    served: ServedController, admin: Client
) -> None:
    lines = [["--scene", "a b.ifd", "{frame}"], ["--scene", "c.ifd", "$HOME"], []]
    job = admin.create("job", {"name": "list", "command": ["render"], "tasks": lines})
    assert (job.kind, job.counts.total, job.blocks[0].frames) == ("command", 3, "0-2")

    w = worker(served, "w1", lanes=3)
    sent = {a.index: a.payload["commands"][0] for a in w.poll().assignments}
    assert sent == {
        0: ["render", "--scene", "a b.ifd", "{{frame}}"],  # braces kept literal
        1: ["render", "--scene", "c.ifd", "$HOME"],
        2: ["render"],
    }


@pytest.mark.parametrize(
    ("tasks", "field"),
    [
        ([], "tasks"),
        ([["ok"], []], "tasks[1]"),
        ([["x" * 5000, "y" * 5000]], "tasks[0]"),
        ([["t"]] * 10_001, "tasks"),
    ],
)
def test_a_bad_task_list_is_a_422_naming_the_task(
    admin: Client, tasks: list[list[str]], field: str
) -> None:
    with pytest.raises(InvalidRequest) as info:
        admin.create("job", {"name": "bad", "tasks": tasks})
    assert info.value.status == 422
    assert str(info.value.field).startswith(field)
