"""Scheduling use cases: what a submission asks of dispatch, and what people set and see.

- `plan_job` checks and completes a submission's scheduling fields (filters, limits, caps,
  block dependencies and their cycles, `after_name`), before anything is stored.
- `Scheduling` holds the people's side: limits, user settings, lanes, NIMBY, error hosts, sick
  workers and pools. Every change invalidates the dispatch index so it counts at the next poll.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TypeVar

from thresher.controller.auth import Caller
from thresher.controller.dispatch import DispatchIndex, block_policy
from thresher.core.clock import Clock
from thresher.core.deps import find_cycle
from thresher.core.dispatch import DEFAULT_CAPACITY
from thresher.core.error_hosts import avoided_until, block_error_count
from thresher.core.errors import InvalidInput
from thresher.core.filters import FilterSet, PoolFilter, PoolMode, parse_filters
from thresher.core.lanes import Nimby
from thresher.core.model import JobRecord, WorkerRecord
from thresher.core.states import JobStatus
from thresher.schemas import api
from thresher.store.limits import LimitRecord
from thresher.store.scheduling import UserRecord
from thresher.store.store import BlockSpec, JobSpec, Store

T = TypeVar("T")
_LIMIT_NAME = re.compile(r"[A-Za-z0-9_.-]{1,100}")
_ACTIVE = {JobStatus.WAITING, JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.PAUSED}


def _block_refs(
    refs: Sequence[int | str], names: list[str], *, index: int, field: str
) -> tuple[int, ...]:
    """Block references (indices or names) as indices; refuse unknown ones."""
    out = []
    for ref in refs:
        if isinstance(ref, int) or (isinstance(ref, str) and ref.isdigit()):
            found = int(ref)
            if not 0 <= found < len(names):
                raise InvalidInput(f"the job has no block {found}", field=field)
        elif ref in names:
            found = names.index(ref)
        else:
            raise InvalidInput(f"the job has no block named {ref!r}", field=field)
        out.append(found)
    return tuple(dict.fromkeys(out))


def plan_job(store: Store, caller: Caller, job: api.JobIn, spec: JobSpec) -> JobSpec:
    """The job spec with its scheduling fields checked and filled in (InvalidInput naming the
    field when something is wrong)."""
    filters = parse_filters(job.filters or "", field="filters")
    given: list[api.BlockIn | None] = list(job.blocks) if job.blocks else [None]
    names = [b.name for b in spec.blocks]
    blocks: list[BlockSpec] = []
    for i, (block, given_block) in enumerate(zip(spec.blocks, given, strict=True)):
        where = f"blocks[{i}]." if job.blocks else ""
        blocks.append(_plan_block(block, given_block, job, names, index=i, where=where))
    _refuse_cycles(blocks, names, job)
    for i, block in enumerate(blocks):
        where = f"blocks[{i}].limits" if job.blocks else "limits"
        store.check_limits_exist(block.limits, field=where)
    after = list(spec.after)
    if job.after_name:
        owner = None if job.after_global else caller.name
        after += [j for j in store.jobs_matching(job.after_name, owner=owner) if j not in after]
    return replace(
        spec,
        blocks=tuple(blocks),
        after=tuple(after),
        filters=filters.text,
        max_running=job.max_running,
        max_running_per_host=job.max_running_per_host,
        preempt=job.preempt,
        after_name=job.after_name,
        after_global=job.after_global,
    )


def _plan_block(
    block: BlockSpec,
    given: api.BlockIn | None,
    job: api.JobIn,
    names: list[str],
    *,
    index: int,
    where: str,
) -> BlockSpec:
    """A block's scheduling fields: its own when given, else the job's, else the defaults."""
    own = given or api.BlockIn.model_construct()  # every field at its default
    limits = own.limits if own.limits is not None else (job.limits or [])
    for name in limits:
        if not _LIMIT_NAME.fullmatch(name):
            raise InvalidInput(f"bad limit name {name!r}", field=f"{where}limits")
    after = _block_refs(own.after, names, index=index, field=f"{where}after")
    frames = _block_refs(own.after_frames, names, index=index, field=f"{where}after_frames")
    capacity = own.capacity if own.capacity is not None else job.capacity
    return replace(
        block,
        capacity=DEFAULT_CAPACITY if capacity is None else capacity,
        limits=tuple(dict.fromkeys(limits)),
        min_runtime_s=_first(own.min_runtime_s, job.min_runtime_s),
        preview_every=_first(own.preview_every, job.preview_every),
        after=after,
        after_frames=tuple(i for i in frames if i not in after),
        errors_to_avoid=_first(own.errors_to_avoid, job.errors_to_avoid),
        forgive_s=_first(own.forgive_s, job.forgive_s),
    )


def _first(own: T | None, job: T | None) -> T | None:
    return own if own is not None else job


def _refuse_cycles(blocks: list[BlockSpec], names: list[str], job: api.JobIn) -> None:
    graph = {i: [*b.after, *b.after_frames] for i, b in enumerate(blocks)}
    cycle = find_cycle(graph)
    if cycle is not None:
        shown = " -> ".join(names[i] for i in cycle)
        where = f"blocks[{cycle[0]}].after" if job.blocks else "after"
        raise InvalidInput(f"dependency cycle: {shown}", field=where)


@dataclass(frozen=True)
class ErrorHostRecord:
    block_index: int
    worker: str
    errors: int
    avoided_until: float | None
    last_error_at: float


class Scheduling:
    """The people's side of scheduling over one store and one dispatch index."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        dispatch_index: DispatchIndex,
        changed: Callable[[], None],
    ) -> None:
        self.store = store
        self.clock = clock
        self.dispatch_index = dispatch_index
        self._changed = changed

    def _worker(self, name_or_id: str) -> WorkerRecord:
        return self.store.find_worker(name_or_id)

    # -- limits -------------------------------------------------------------------------------

    def set_limit(self, caller: Caller, name: str, body: api.LimitIn) -> LimitRecord:
        caller.require("admin")
        if not _LIMIT_NAME.fullmatch(name):
            raise InvalidInput(f"bad limit name {name!r}: letters, digits, _ . -", field="name")
        self.store.set_limit(
            name,
            max_total=body.max_total,
            max_per_host=body.max_per_host,
            max_hosts=body.max_hosts,
            now=self.clock.now(),
        )
        self._changed()
        return self.store.get_limit(name)

    def delete_limit(self, caller: Caller, name: str) -> None:
        caller.require("admin")
        self.store.delete_limit(name)
        self._changed()

    # -- users --------------------------------------------------------------------------------

    def set_user(self, caller: Caller, name: str, body: api.UserIn) -> UserRecord:
        caller.require("admin")
        self.store.set_user(name, priority=body.priority, max_running=body.max_running)
        self._changed()
        return next(u for u in self.store.list_users() if u.name == name)

    # -- workers: lanes, NIMBY, sickness ------------------------------------------------------

    def set_lane(
        self, caller: Caller, name: str, lane: int, engines: list[str] | None, *, reset: bool
    ) -> WorkerRecord:
        """Change what a lane runs from the controller; it counts at the worker's next poll."""
        caller.require("admin")
        worker = self._worker(name)
        if engines is not None and not all(e.strip() for e in engines):
            raise InvalidInput("an engine name is empty", field="engines")
        cleaned = None if engines is None else [e.strip() for e in engines]
        self.store.set_lane_engines(worker.id, lane, cleaned, reset=reset)
        self._changed()
        return self.worker(worker.name)

    def set_pools(self, caller: Caller, name: str, pools: list[str] | None) -> WorkerRecord:
        """Put a worker in these pools (None: the ones it declared); counts at once."""
        caller.require("admin")
        worker = self._worker(name)
        self.store.set_worker_pools(
            worker.id, None if pools is None else list(dict.fromkeys(pools))
        )
        self._changed()
        return self.worker(worker.name)

    def set_nimby(self, caller: Caller, name: str, state: Nimby | None) -> WorkerRecord:
        """Pause (finish what runs, take nothing new), stop (also give back what runs) or
        resume a worker from the controller."""
        caller.require("admin")
        worker = self._worker(name)
        self.store.set_nimby(worker.id, state)
        if state is Nimby.STOPPED:
            held = self.store.worker_held(worker.id)
            self.store.request_stop([h.id for h in held], "nimby")
        self._changed()
        return self.worker(worker.name)

    def note_local_nimby(self, worker_id: int, state: str | None) -> None:
        """What the worker's machine says (poll after poll); stored when it changes."""
        if state == self.dispatch_index.local_nimby(worker_id):
            return
        nimby = Nimby(state) if state else None
        self.store.set_nimby(worker_id, nimby, local=True)
        if nimby is Nimby.STOPPED:
            self.store.request_stop([h.id for h in self.store.worker_held(worker_id)], "nimby")
        self.dispatch_index.invalidate()

    def clear_sick(self, caller: Caller, name: str) -> WorkerRecord:
        caller.require("admin")
        worker = self._worker(name)
        self.store.clear_sick(worker.id, now=self.clock.now())
        self._changed()
        return self.worker(worker.name)

    def worker(self, name: str) -> WorkerRecord:
        return self._with_state(self._worker(name))

    def workers(self) -> list[WorkerRecord]:
        return [self._with_state(w) for w in self.store.list_workers()]

    def _with_state(self, w: WorkerRecord) -> WorkerRecord:
        _, sick = self.dispatch_index.worker_state(w.id)
        return replace(w, sick_since=sick)

    # -- error hosts ----------------------------------------------------------------------------

    def error_hosts(self, job_id: int) -> list[ErrorHostRecord]:
        """The hosts each block of the job has errors from, with what still counts."""
        job = self.store.get_job(job_id)
        now = self.clock.now()
        names = {w.id: w.name for w in self.store.list_workers()}
        by_key: dict[tuple[int, int], list[float]] = {}
        for e in self.store.host_errors(job_id=job_id):
            by_key.setdefault((e.block_id, e.worker_id), []).append(e.at)
        out = []
        for block in job.blocks:
            policy = block_policy(
                self.dispatch_index.settings,
                errors_to_avoid=block.errors_to_avoid,
                forgive_s=block.forgive_s,
            )
            for (block_id, worker_id), times in sorted(by_key.items()):
                if block_id != block.id:
                    continue
                out.append(
                    ErrorHostRecord(
                        block_index=block.index,
                        worker=names.get(worker_id, str(worker_id)),
                        errors=block_error_count(times, now, policy),
                        avoided_until=avoided_until(times, now, policy),
                        last_error_at=max(times),
                    )
                )
        return out

    def reset_error_hosts(
        self, caller: Caller, job_id: int, *, block: int | None, worker: str | None
    ) -> int:
        job = self.store.get_job(job_id)
        if not caller.is_admin and job.owner != caller.name:
            caller.require("admin")
        worker_id = self._worker(worker).id if worker else None
        n = self.store.reset_error_hosts(job_id, block_index=block, worker_id=worker_id)
        self._changed()
        return n

    # -- pools ----------------------------------------------------------------------------------

    def pools(self) -> list[api.PoolOut]:
        """Every pool a worker is in or an unfinished job names, with both sides."""
        members: dict[str, list[str]] = {}
        for w in self.store.list_workers():
            for pool in w.pools:
                members.setdefault(pool, []).append(w.name)
        jobs: dict[str, dict[str, list[int]]] = {}
        for job in self.store.list_jobs(statuses=_ACTIVE, limit=10_000):
            for clause in _pool_clauses(job):
                for pool in clause.pools:
                    jobs.setdefault(pool, {}).setdefault(str(clause.mode), []).append(job.id)
        return [
            api.PoolOut(name=p, workers=sorted(members.get(p, [])), jobs=jobs.get(p, {}))
            for p in sorted(set(members) | set(jobs))
        ]


def _pool_clauses(job: JobRecord) -> list[PoolFilter]:
    try:
        parsed: FilterSet = parse_filters(job.filters)
    except InvalidInput:
        return []
    return [c for c in parsed.clauses if isinstance(c, PoolFilter) and c.mode != PoolMode.NEVER]
