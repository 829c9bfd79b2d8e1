"""Every use case is one transaction: a failure between any two of its steps changes nothing.

The farm is driven directly (no HTTP) over a real store (SQLite and PostgreSQL). For each use
case, the k-th store call it makes is made to fail (as a lost connection would), for k = 2, 3,
... until the use case makes fewer calls than k and succeeds; after every failure the whole
database must be as it was before, row for row. The last run checks the use case did change
something, so a use case that wrote nothing could not pass.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from thresher.controller.auth import Caller
from thresher.controller.farm import Farm
from thresher.controller.notifier import Notifier
from thresher.controller.settings import ControllerSettings
from thresher.controller.submitters import JobChange
from thresher.core.lanes import Nimby
from thresher.schemas import api
from thresher.schemas.openjd import TemplateJobIn
from thresher.schemas.submitters import TaskFileJobIn
from thresher.store.base import Repository
from thresher.store.store import Store
from thresher.store.tables import metadata
from thresher.testing import FakeClock

ADMIN = Caller(token_id=0, name="admin", role="admin")
DEADLINE_TEMPLATE = """
specificationVersion: jobtemplate-2023-09
name: T
steps:
- name: S
  script: {actions: {onRun: {command: "true"}}}
"""
QUEUE_ENV = """
specificationVersion: environment-2023-09
environment:
  name: Venv
  variables: {VENV: /opt/venv}
"""
ALICE = Caller(token_id=0, name="alice", role="artist")


class InjectedFault(Exception):
    """The failure put between two steps of a use case."""


class FaultAt:
    """Makes the `at`-th call of any public store method made inside a transaction raise,
    counting from 1. (Calls after the commit, such as reading what to answer, may fail
    without undoing what was committed: that is not between two steps of the use case.)"""

    def __init__(self, store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
        self.at = 0
        self.calls = 0
        self.depth = 0
        transaction = store.transaction

        @contextlib.contextmanager
        def counted(*, claims_later: bool = False) -> Iterator[sa.Connection]:
            self.depth += 1
            try:
                with transaction(claims_later=claims_later) as conn:
                    yield conn
            finally:
                self.depth -= 1

        monkeypatch.setattr(store, "transaction", counted)
        repositories = [r for r in vars(store).values() if isinstance(r, Repository)]
        assert repositories, "the store has no repositories to wrap"
        for repository in repositories:
            for name, method in inspect.getmembers(repository, inspect.ismethod):
                if not name.startswith("_"):
                    monkeypatch.setattr(repository, name, self._wrap(name, method))

    def _wrap(self, name: str, method: Callable[..., Any]) -> Callable[..., Any]:
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            if not self.depth:
                return method(*args, **kwargs)
            self.calls += 1
            if self.calls == self.at:
                raise InjectedFault(f"injected before call {self.calls} ({name})")
            return method(*args, **kwargs)

        return wrapped


@pytest.fixture
def farm(db_url: str, tmp_path: Path) -> Iterator[Farm]:
    store = Store.open(db_url)
    try:
        farm = Farm(store, FakeClock(), ControllerSettings(data_dir=tmp_path), Notifier())
        farm.start(0.0)
        yield farm
    finally:
        farm.close()
        store.close()


def dump(farm: Farm) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, in key order."""
    engine = farm.unit.store.engine
    with engine.connect() as conn:
        return {
            table.name: [
                tuple(row)
                for row in conn.execute(sa.select(table).order_by(*table.primary_key.columns))
            ]
            for table in metadata.sorted_tables
        }


def register(farm: Farm, name: str, lanes: int) -> Caller:
    """Enrol a worker the way a worker does; the caller its own token names."""
    body = api.RegisterIn(
        name=name, hostname=name, os="linux", cores=2, ram_bytes=1 << 30, site="hq", lanes=lanes
    )
    caller = farm.access.caller(farm.agents.register(ADMIN, body).token)
    assert caller is not None
    return caller


def claim(farm: Farm, worker: Caller, lanes: list[int]) -> api.PollOut:
    async def connected() -> bool:
        return False

    return asyncio.run(farm.agents.poll(worker, api.PollIn(lanes=lanes), disconnected=connected))


def prepared(farm: Farm) -> dict[str, Any]:
    """A farm with work in every state a use case may touch: alice's job with a task running
    on a worker, one failed for good and two waiting; a limit."""
    job = farm.jobs.submit(
        ALICE, api.JobIn(name="shot", frames="1-4", command=["true", "{frame}"], retries=0)
    )
    worker = register(farm, "w1", lanes=2)
    running, failed = claim(farm, worker, [0, 1]).assignments
    finish = api.FinishIn(
        attempt_id=failed.attempt_id, token=failed.token, status="failed", exit_code=1
    )
    farm.agents.report(worker, api.ReportIn(finished=[finish]))
    farm.scheduling.set_limit(ADMIN, "nuke", api.LimitIn(max_total=2))
    return {"job": job.id, "worker": worker, "running": running}


USE_CASES: dict[str, Callable[[Farm, dict[str, Any]], object]] = {
    "submit": lambda f, s: f.jobs.submit(
        ALICE,
        api.JobIn(
            name="comp",
            after=[s["job"]],
            blocks=[
                api.BlockIn(name="a", frames="1-3", command=["true"], limits=["nuke"]),
                api.BlockIn(name="b", frames="1-3", command=["true"], after=["a"]),
            ],
        ),
    ),
    "pause": lambda f, s: f.jobs.pause(ALICE, s["job"]),
    "resume": lambda f, s: f.jobs.resume(ALICE, s["job"]),
    "cancel": lambda f, s: f.jobs.cancel(ALICE, s["job"]),
    "retry": lambda f, s: f.jobs.retry(ALICE, s["job"]),
    "priority": lambda f, s: f.jobs.set_priority(ALICE, s["job"], 90),
    "delete": lambda f, s: f.jobs.delete(ALICE, s["job"]),
    "retry a running task": lambda f, s: f.jobs.retry_task(ALICE, s["job"], 0, 0),
    "retry a failed task": lambda f, s: f.jobs.retry_task(ALICE, s["job"], 0, 1),
    "skip a waiting task": lambda f, s: f.jobs.skip_task(ALICE, s["job"], 0, 3),
    "register": lambda f, s: f.agents.register(
        ADMIN,
        api.RegisterIn(
            name="w2", hostname="w2", os="linux", cores=2, ram_bytes=1 << 30, site="hq", lanes=1
        ),
    ),
    "report": lambda f, s: f.agents.report(
        s["worker"],
        api.ReportIn(
            output=[
                api.OutputBatch(
                    attempt_id=s["running"].attempt_id,
                    token=s["running"].token,
                    lines=[("stdout", "frame 1")],
                )
            ],
            finished=[
                api.FinishIn(
                    attempt_id=s["running"].attempt_id,
                    token=s["running"].token,
                    status="succeeded",
                    exit_code=0,
                )
            ],
        ),
    ),
    "stop a worker": lambda f, s: f.scheduling.set_nimby(ADMIN, "w1", Nimby.STOPPED),
    "set a limit": lambda f, s: f.scheduling.set_limit(ADMIN, "katana", api.LimitIn(max_total=1)),
    "access key": lambda f, s: f.access.create_access_key(ADMIN, "deadline", "user"),
    "update a job": lambda f, s: f.submitters.update_job(
        ALICE,
        s["job"],
        JobChange(priority=80, filters="ram:>1g", retries=1, max_failed_tasks=2, state="paused"),
    ),
    "task-file job": lambda f, s: f.submitters.submit_task_file(
        ALICE, TaskFileJobIn(name="list", tasks=[["echo", "a"], ["echo", "b"]])
    ),
    "deadline job": lambda f, s: f.submitters.submit_deadline(
        ALICE, TemplateJobIn(template=DEADLINE_TEMPLATE), max_failed_tasks=3, description="d"
    ),
    "queue environment": lambda f, s: f.submitters.add_environment(
        ADMIN, name="venv", priority=1, template=QUEUE_ENV
    ),
    "skip a range": lambda f, s: f.monitor.act_on_range(
        ALICE, s["job"], 0, first=0, last=3, action="skip"
    ),
    "a poll with a sample": lambda f, s: sampled(f, s["worker"]),
    "main site": lambda f, s: f.sites.set_site(ADMIN, "sthlm", api.SiteIn(main=True)),
    "claim a sync": lambda f, s: f.sites.claim_sync(ADMIN, s["job"], "sthlm"),
}


def sampled(farm: Farm, worker: Caller) -> api.PollOut:
    async def connected() -> bool:
        return False

    body = api.PollIn(sample={"cpu": 12.5}, lanes=[1])
    return asyncio.run(farm.agents.poll(worker, body, disconnected=connected))


@pytest.mark.parametrize("name", list(USE_CASES))
def test_a_failure_between_any_two_steps_changes_nothing(
    farm: Farm, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = prepared(farm)
    if name == "resume":
        farm.jobs.pause(ALICE, state["job"])
    before = dump(farm)
    fault = FaultAt(farm.unit.store, monkeypatch)
    use_case = USE_CASES[name]
    for at in range(2, 100):
        fault.at, fault.calls = at, 0
        try:
            use_case(farm, state)
        except InjectedFault:
            assert dump(farm) == before, f"{name}: a fault before store call {at} left changes"
            continue
        break
    else:
        pytest.fail(f"{name} still failed after 100 store calls")
    assert at > 2, f"{name} made a single store call: nothing to fail between"
    assert dump(farm) != before, f"{name} changed nothing when it succeeded"
