"""Scheduling use cases: what people set and see of how work is spread over workers.

Limits, user settings, workers (enabled, lanes, pools, NIMBY, sickness), error hosts and pools.
Each change is one transaction and invalidates the dispatch index, so it counts at the next
poll. (What a submission asks of dispatch is checked when it is compiled: `compile`.)
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from thresher.controller.auth import ANY_JOB, Caller
from thresher.controller.compile.jobs import LIMIT_NAME
from thresher.controller.dispatch import DispatchIndex, block_policy
from thresher.controller.unit import UnitOfWork
from thresher.controller.visibility import check_may_change, check_visible, visible_owners
from thresher.core.clock import Clock
from thresher.core.error_hosts import avoided_until, block_error_count
from thresher.core.errors import InvalidInput
from thresher.core.filters import FilterSet, PoolFilter, PoolMode, parse_filters
from thresher.core.lanes import Nimby
from thresher.core.model import JobRecord, WorkerRecord
from thresher.core.states import JobStatus
from thresher.schemas import api
from thresher.store.limits import LimitRecord
from thresher.store.scheduling import UserRecord
from thresher.store.store import Store

_ACTIVE = {JobStatus.WAITING, JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.PAUSED}


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
        self, store: Store, clock: Clock, dispatch_index: DispatchIndex, unit: UnitOfWork
    ) -> None:
        self.store = store
        self.clock = clock
        self.dispatch_index = dispatch_index
        self.unit = unit

    def _worker(self, name_or_id: str) -> WorkerRecord:
        return self.store.workers.find(name_or_id)

    # -- limits -------------------------------------------------------------------------------

    def set_limit(self, caller: Caller, name: str, body: api.LimitIn) -> LimitRecord:
        caller.require(*ANY_JOB)
        if not LIMIT_NAME.fullmatch(name):
            raise InvalidInput(f"bad limit name {name!r}: letters, digits, _ . -", field="name")
        with self.unit.change():
            self.store.limits.set(
                name,
                max_total=body.max_total,
                max_per_host=body.max_per_host,
                max_hosts=body.max_hosts,
                now=self.clock.now(),
            )
            return self.store.limits.get(name)

    def delete_limit(self, caller: Caller, name: str) -> None:
        caller.require(*ANY_JOB)
        with self.unit.change():
            self.store.limits.delete(name)

    def limits(self) -> list[LimitRecord]:
        """Every limit with its maximums and who holds units now."""
        return self.store.limits.all()

    def limit(self, name: str) -> LimitRecord:
        return self.store.limits.get(name)

    # -- users --------------------------------------------------------------------------------

    def set_user(self, caller: Caller, name: str, body: api.UserIn) -> UserRecord:
        caller.require(*ANY_JOB)
        with self.unit.change():
            self.store.scheduling.set_user(
                name, priority=body.priority, max_running=body.max_running
            )
            return next(u for u in self.store.scheduling.users() if u.name == name)

    def users(self) -> list[UserRecord]:
        return self.store.scheduling.users()

    # -- workers: lanes, NIMBY, sickness ------------------------------------------------------

    def set_lane(
        self, caller: Caller, name: str, lane: int, engines: list[str] | None, *, reset: bool
    ) -> WorkerRecord:
        """Change what a lane runs from the controller; it counts at the worker's next poll."""
        caller.require(*ANY_JOB)
        worker = self._worker(name)
        if engines is not None and not all(e.strip() for e in engines):
            raise InvalidInput("an engine name is empty", field="engines")
        cleaned = None if engines is None else [e.strip() for e in engines]
        with self.unit.change():
            self.store.scheduling.set_lane_engines(worker.id, lane, cleaned, reset=reset)
        return self.worker(worker.name)

    def set_pools(self, caller: Caller, name: str, pools: list[str] | None) -> WorkerRecord:
        """Put a worker in these pools (None: the ones it declared); counts at once."""
        caller.require(*ANY_JOB)
        worker = self._worker(name)
        with self.unit.change():
            self.store.workers.set_pools(
                worker.id, None if pools is None else list(dict.fromkeys(pools))
            )
        return self.worker(worker.name)

    def set_nimby(self, caller: Caller, name: str, state: Nimby | None) -> WorkerRecord:
        """Pause (finish what runs, take nothing new), stop (also give back what runs) or
        resume a worker from the controller."""
        caller.require(*ANY_JOB)
        worker = self._worker(name)
        with self.unit.change():
            self.store.scheduling.set_nimby(worker.id, state)
            if state is Nimby.STOPPED:
                held = self.store.snapshot.worker_held(worker.id)
                self.store.dispatch.request_stop([h.id for h in held], "nimby")
        return self.worker(worker.name)

    def note_local_nimby(self, worker_id: int, state: str | None) -> None:
        """What the worker's machine says (poll after poll); stored when it changes."""
        if state == self.dispatch_index.local_nimby(worker_id):
            return
        nimby = Nimby(state) if state else None
        self.store.scheduling.set_nimby(worker_id, nimby, local=True)
        if nimby is Nimby.STOPPED:
            self.store.dispatch.request_stop(
                [h.id for h in self.store.snapshot.worker_held(worker_id)], "nimby"
            )
        self.dispatch_index.invalidate()

    def clear_sick(self, caller: Caller, name: str) -> WorkerRecord:
        caller.require(*ANY_JOB)
        worker = self._worker(name)
        with self.unit.change():
            self.store.error_hosts.clear_sick(worker.id, now=self.clock.now())
        return self.worker(worker.name)

    def set_worker_enabled(self, caller: Caller, name: str, enabled: bool) -> WorkerRecord:
        """A disabled worker takes no new task; what it runs goes on."""
        caller.require(*ANY_JOB)
        worker = self._worker(name)
        with self.unit.change():
            self.store.workers.set_enabled(worker.id, enabled)
        return self.worker(worker.name)

    def worker(self, name: str) -> WorkerRecord:
        return self._with_state(self._worker(name))

    def workers(self) -> list[WorkerRecord]:
        return [self._with_state(w) for w in self.store.workers.all()]

    def _with_state(self, w: WorkerRecord) -> WorkerRecord:
        _, sick = self.dispatch_index.worker_state(w.id)
        return replace(w, sick_since=sick)

    # -- error hosts ----------------------------------------------------------------------------

    def error_hosts(self, caller: Caller, job_id: int) -> list[ErrorHostRecord]:
        """The hosts each block of the job has errors from, with what still counts."""
        job = self.store.jobs.get(job_id)
        check_visible(self.store, caller, job_id, job.spec.owner)
        now = self.clock.now()
        names = {w.id: w.name for w in self.store.workers.all()}
        by_key: dict[tuple[int, int], list[float]] = {}
        for e in self.store.error_hosts.errors(job_id=job_id):
            by_key.setdefault((e.block_id, e.worker_id), []).append(e.at)
        out = []
        for block in job.blocks:
            policy = block_policy(
                self.dispatch_index.settings,
                errors_to_avoid=block.spec.errors_to_avoid,
                forgive_s=block.spec.forgive_s,
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
        job = self.store.jobs.get(job_id)
        check_may_change(self.store, caller, job_id, job.spec.owner)
        worker_id = self._worker(worker).id if worker else None
        with self.unit.change():
            return self.store.error_hosts.reset(job_id, block_index=block, worker_id=worker_id)

    # -- pools ----------------------------------------------------------------------------------

    def pools(self, caller: Caller) -> list[api.PoolOut]:
        """Every pool a worker is in or an unfinished job names, with both sides (the jobs:
        those the caller may see)."""
        owners = visible_owners(self.store, caller)
        members: dict[str, list[str]] = {}
        for w in self.store.workers.all():
            for pool in w.pools:
                members.setdefault(pool, []).append(w.name)
        jobs: dict[str, dict[str, list[int]]] = {}
        for job in self.store.jobs.page(statuses=_ACTIVE, owners=owners, limit=10_000):
            for clause in _pool_clauses(job):
                for pool in clause.pools:
                    jobs.setdefault(pool, {}).setdefault(str(clause.mode), []).append(job.id)
        return [
            api.PoolOut(name=p, workers=sorted(members.get(p, [])), jobs=jobs.get(p, {}))
            for p in sorted(set(members) | set(jobs))
        ]


def _pool_clauses(job: JobRecord) -> list[PoolFilter]:
    try:
        parsed: FilterSet = parse_filters(job.spec.filters)
    except InvalidInput:
        return []
    return [c for c in parsed.clauses if isinstance(c, PoolFilter) and c.mode != PoolMode.NEVER]
