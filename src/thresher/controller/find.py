"""`find`: jobs, tasks, workers and engines by a query (`job where status=running`, see
`thresher.core.query`), evaluated here on the controller, paged and bounded.

Each entity has the fields a query may name (an unknown one is refused naming the known ones).
A query reads at most `SCAN_JOBS` jobs (newest first) or `SCAN_TASKS` tasks of one job; a result
cut short by that bound says so (`partial`). A task query needs `job=ID`: tasks live in jobs."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from thresher.controller.auth import Caller
from thresher.controller.engines import QUERY_FIELDS as ENGINE_FIELDS
from thresher.controller.engines import SETTING_FIELDS, query_record
from thresher.controller.unit import UnitOfWork
from thresher.controller.visibility import check_visible, visible_owners
from thresher.core.errors import InvalidInput
from thresher.core.model import JobRecord, TaskRecord, WorkerRecord
from thresher.core.query import Condition, Query, check_fields, parse_query
from thresher.store.store import Store

ENTITIES = ("job", "task", "worker", "engine")
SCAN_JOBS = 10_000
SCAN_TASKS = 100_000
MAX_LIMIT = 1000
_TASK_PAGE = 2000

JOB_FIELDS = (
    "id",
    "name",
    "owner",
    "priority",
    "kind",
    "status",
    "paused",
    "canceled",
    "created_at",
    "finished_at",
    "filters",
    "max_running",
    "max_running_per_host",
    "blocks",
    "engine",
    *(f"tasks_{k}" for k in ("total", "waiting", "queued", "running", "succeeded", "failed")),
)
TASK_FIELDS = (
    "job",
    "block",
    "index",
    "status",
    "failures",
    "attempts",
    "worker",
    "progress",
    "updated_at",
    "frames",
)
WORKER_FIELDS = (
    "id",
    "name",
    "hostname",
    "os",
    "cores",
    "ram_gb",
    "site",
    "pools",
    "status",
    "enabled",
    "lanes",
    "running",
    "gpus",
    "capacity",
    "nimby",
)


def job_fields(job: JobRecord) -> dict[str, Any]:
    counts = job.counts
    return {
        "id": job.id,
        "name": job.spec.name,
        "owner": job.spec.owner,
        "priority": job.spec.priority,
        "kind": job.spec.kind,
        "status": job.status.value,
        "paused": job.spec.paused,
        "canceled": job.canceled,
        "created_at": job.created_at,
        "finished_at": job.finished_at,
        "filters": job.spec.filters,
        "max_running": job.spec.max_running,
        "max_running_per_host": job.spec.max_running_per_host,
        "blocks": [b.spec.name for b in job.blocks],
        "engine": [b.spec.engine for b in job.blocks if b.spec.engine],
        **{f"tasks_{k}": v for k, v in counts.as_dict().items()},
    }


def task_fields(task: TaskRecord) -> dict[str, Any]:
    return {
        "job": task.job_id,
        "block": task.block_index,
        "index": task.index,
        "status": task.status.value,
        "failures": task.failures,
        "attempts": task.attempts,
        "worker": task.last_worker,
        "progress": task.progress,
        "updated_at": task.updated_at,
        "frames": list(task.frames),
    }


def worker_fields(worker: WorkerRecord) -> dict[str, Any]:
    return {
        "id": worker.id,
        "name": worker.name,
        "hostname": worker.hostname,
        "os": worker.os,
        "cores": worker.cores,
        "ram_gb": round(worker.ram_bytes / 2**30, 1),
        "site": worker.site,
        "pools": list(worker.pools),
        "status": worker.status.value,
        "enabled": worker.enabled,
        "lanes": worker.lanes,
        "running": worker.running,
        "gpus": worker.gpus,
        "capacity": worker.capacity,
        "nimby": worker.nimby or worker.local_nimby,
    }


@dataclass(frozen=True)
class Found:
    """One page of what a query found: records of its entity (JobRecord, TaskRecord,
    WorkerRecord or EngineRecord), how many matched within the bound, and whether the bound
    cut the search short."""

    entity: str
    items: list[Any]
    matched: int
    offset: int
    partial: bool


def _job_of(query: Query) -> int:
    wanted = [c for c in query.conditions if c.field == "job" and c.op == "="]
    if len(wanted) != 1 or not wanted[0].value.isdigit():
        raise InvalidInput("a task query names its job: task where job=ID and ...", field="q")
    return int(wanted[0].value)


class Finder:
    def __init__(self, store: Store, unit: UnitOfWork) -> None:
        self.store, self.unit = store, unit

    def find(self, caller: Caller, text: str, *, offset: int = 0, limit: int = 100) -> Found:
        """The page [offset, offset + limit) of what `text` matches (a 422 naming `q` when
        the query is malformed or names an unknown field)."""
        if not 1 <= limit <= MAX_LIMIT:
            raise InvalidInput(f"limit must be 1 to {MAX_LIMIT}", field="limit")
        if offset < 0:
            raise InvalidInput("offset must be at least 0", field="offset")
        query = parse_query(text, entities=ENTITIES)
        known: Mapping[str, tuple[str, ...]] = {
            "job": JOB_FIELDS,
            "task": TASK_FIELDS,
            "worker": WORKER_FIELDS,
            "engine": (*ENGINE_FIELDS, *SETTING_FIELDS),
        }
        check_fields(query.conditions, known[query.entity], field="q")
        with self.unit.transaction():
            candidates, partial = self._candidates(caller, query)
            matched = [r for r, fields in candidates if query.matches(fields)]
        return Found(query.entity, matched[offset : offset + limit], len(matched), offset, partial)

    def _candidates(
        self, caller: Caller, query: Query
    ) -> tuple[list[tuple[Any, dict[str, Any]]], bool]:
        if query.entity == "job":
            owners = visible_owners(self.store, caller)
            jobs = self.store.jobs.page(owners=owners, limit=SCAN_JOBS + 1)
            return [(j, job_fields(j)) for j in jobs[:SCAN_JOBS]], len(jobs) > SCAN_JOBS
        if query.entity == "worker":
            return [(w, worker_fields(w)) for w in self.store.workers.all()], False
        if query.entity == "engine":
            return [(e, query_record(e)) for e in self.store.engines.all()], False
        tasks = list(self._tasks(caller, query, _job_of(query)))
        return tasks[:SCAN_TASKS], len(tasks) > SCAN_TASKS

    def _tasks(
        self, caller: Caller, query: Query, job_id: int
    ) -> Iterator[tuple[TaskRecord, dict[str, Any]]]:
        job = self.store.jobs.get(job_id)
        check_visible(self.store, caller, job_id, job.spec.owner)
        blocks = [b.index for b in job.blocks if _may_hold(query.conditions, "block", b.index)]
        seen = 0
        for block in blocks:
            offset = 0
            while seen <= SCAN_TASKS:
                total, page = self.store.tasks.page(
                    job_id, block_index=block, offset=offset, limit=_TASK_PAGE
                )
                for task in page:
                    seen += 1
                    yield task, task_fields(task)
                offset += len(page)
                if not page or offset >= total:
                    break


def _may_hold(conditions: tuple[Condition, ...], name: str, value: int) -> bool:
    """Whether an `=` condition on `name` (if any) allows `value`: skips blocks early."""
    equal: Callable[[Condition], bool] = lambda c: c.field == name and c.op == "="  # noqa: E731
    return all(c.value == str(value) for c in conditions if equal(c))
