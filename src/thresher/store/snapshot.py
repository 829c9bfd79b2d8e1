"""What dispatch reads: the snapshot of the farm, and the attempts a worker holds.

`dispatch_snapshot` reads, in one connection, everything the controller's dispatch index is
built from: the blocks of active jobs with their jobs' fields that dispatch decides on, the
workers, running attempts, user settings, limits with their holds, and the host errors that
still matter with what sickness weighs them by (the owner of each failed job, and whether each
recently failed block succeeded on another host). `worker_held` and `job_standing` are the
quick reads of each poll and finish.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from thresher.core.errors import NotFound
from thresher.core.gpu_lanes import gpu_lanes
from thresher.core.lanes import lane_keys
from thresher.core.states import AttemptStatus
from thresher.store import tally
from thresher.store.base import Database, Repository
from thresher.store.error_hosts import HostError
from thresher.store.jobs import dependency_state
from thresher.store.limits import LimitRecord, limit_usage
from thresher.store.prepared import Prepared
from thresher.store.scheduling import UserRecord
from thresher.store.tables import (
    attempts,
    blocks,
    host_errors,
    jobs,
    limits,
    tasks,
    user_settings,
    workers,
)


@dataclass(frozen=True)
class SnapBlock:
    """A block of an active job, with the fields of its job that dispatch decides on."""

    block_id: int
    job_id: int
    index: int
    name: str
    frames: str
    chunk: int
    priority_frames: str | None
    preview_every: int | None
    task_count: int
    cursor: int
    n_queued: int
    n_running: int
    n_done: int
    n_failed: int
    n_canceled: int  # in a job not canceled: tasks that can never run
    runtime_sum: float
    runtime_n: int
    engine: str | None
    capacity: int
    limits: tuple[str, ...]
    after: tuple[int, ...]
    after_frames: tuple[int, ...]
    errors_to_avoid: int | None
    forgive_s: float | None
    owner: str
    priority: int
    kind: str
    paused: bool
    filters: str
    max_running: int | None
    max_running_per_host: int | None
    preempt: bool
    created_at: float
    job_after: tuple[int, ...]
    min_runtime_s: float | None = None  # a success shorter is a failure

    @property
    def runnable(self) -> int:
        """Tasks still to dispatch: those that wait or are queued, by the counters. On SQLite
        they are the requeued ones and those under the cursor without a row; on PostgreSQL
        also positions below the cursor that a controller reserved and has not handed out
        (`store.ranges`), which the cursor alone would leave out."""
        unstarted = self.task_count - (
            self.n_running + self.n_done + self.n_failed + self.n_canceled
        )
        return max(0, unstarted)

    @property
    def done(self) -> bool:
        return self.n_done >= self.task_count


@dataclass(frozen=True)
class SnapWorker:
    """A worker as dispatch reads it: its facts, lanes, NIMBY and whether it takes work."""

    id: int
    name: str
    hostname: str
    os: str
    cores: int
    ram_bytes: int
    gpus: int
    site: str
    pools: tuple[str, ...]
    labels: Mapping[str, str]
    lanes: int
    capacity: int | None
    lane_engines: Mapping[int, tuple[str, ...] | None]
    lane_overrides: Mapping[int, tuple[str, ...] | None]
    nimby: str | None
    local_nimby: str | None
    enabled: bool
    online: bool
    sick_cleared_at: float | None
    lane_gpus: Mapping[int, tuple[int, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class HeldAttempt:
    """A running attempt (started, or claimed ahead) of a worker."""

    id: int
    job_id: int
    worker_id: int
    lane: int | None
    capacity: int | None
    created_at: float
    cancel_reason: str | None
    owner: str
    job_priority: int


@dataclass(frozen=True)
class DispatchSnapshot:
    """Everything the dispatch index is built from, read at `taken_at`."""

    taken_at: float
    blocks: tuple[SnapBlock, ...]
    job_waiting: Mapping[int, str]  # jobs held back by `after` (for now or for good), and why
    workers: Mapping[int, SnapWorker]
    running: Mapping[tuple[int, str], int]  # (job id, owner) -> running attempts
    users: Mapping[str, UserRecord]
    limits: Mapping[str, LimitRecord]
    errors: tuple[HostError, ...] = field(default=())
    error_owners: Mapping[int, str] = field(default_factory=dict)  # job id -> owner ("": gone)
    # (block id, worker id) of recent errors whose block succeeded on another worker
    succeeded_elsewhere: frozenset[tuple[int, int]] = frozenset()


# Statements built once (building one costs more than running it).
#: Every running attempt with its job's owner and priority (also read by `workers.held_by_worker`).
HELD_ATTEMPTS = (
    sa.select(
        attempts.c.id,
        attempts.c.job_id,
        attempts.c.worker_id,
        attempts.c.lane,
        attempts.c.capacity,
        attempts.c.created_at,
        attempts.c.cancel_reason,
        jobs.c.owner,
        jobs.c.priority,
    )
    .select_from(attempts.join(jobs, jobs.c.id == attempts.c.job_id))
    .where(attempts.c.status == AttemptStatus.RUNNING.value)
)
_RUNNING = (
    sa.select(attempts.c.job_id, jobs.c.owner, sa.func.count().label("n"))
    .select_from(attempts.join(jobs, jobs.c.id == attempts.c.job_id))
    .where(attempts.c.status == AttemptStatus.RUNNING.value)
    .group_by(attempts.c.job_id, jobs.c.owner)
)
_HELD_BY = Prepared(  # every poll reads it: on the cursor
    HELD_ATTEMPTS.where(attempts.c.worker_id == sa.bindparam("worker_id")).order_by(attempts.c.id)
)
_LEFT = blocks.c.task_count - (
    blocks.c.n_succeeded + blocks.c.n_skipped + blocks.c.n_failed + blocks.c.n_canceled
)
_UNSETTLED = (
    sa.select(blocks.c.id)
    .select_from(blocks.join(jobs, jobs.c.id == blocks.c.job_id))
    .where(
        blocks.c.job_id == sa.bindparam("job_id"),
        jobs.c.canceled.is_(False),
        sa.or_(blocks.c.n_running > 0, _LEFT > 0),
    )
    .limit(1)
)
_STANDING = sa.select(jobs.c.owner, _UNSETTLED.correlate(None).exists().label("unsettled")).where(
    jobs.c.id == sa.bindparam("job_id")
)

# The blocks of the jobs not canceled nor finished, with their jobs' fields that dispatch
# decides on, in job and block order.
_ACTIVE_BLOCKS = (
    sa.select(
        blocks,
        jobs.c.owner,
        jobs.c.priority.label("job_priority"),
        jobs.c.kind,
        jobs.c.paused,
        jobs.c.filters,
        jobs.c.max_running.label("job_max_running"),
        jobs.c.max_running_per_host,
        jobs.c.preempt,
        jobs.c.created_at,
        jobs.c.after.label("job_after"),
    )
    .select_from(blocks.join(jobs, jobs.c.id == blocks.c.job_id))
    .where(jobs.c.canceled.is_(False), jobs.c.finished_at.is_(None))
    .order_by(blocks.c.job_id, blocks.c.idx)
)
_JOBS_BLOCKS = _ACTIVE_BLOCKS.where(blocks.c.job_id.in_(sa.bindparam("job_ids", expanding=True)))


def _job_waiting(
    db: Database, conn: sa.Connection, snap_blocks: tuple[SnapBlock, ...]
) -> dict[int, str]:
    """The jobs of these blocks held back by `after` (for now or for good), and why."""
    waiting: dict[int, str] = {}
    for job_id, after in {b.job_id: b.job_after for b in snap_blocks if b.job_after}.items():
        deps = dependency_state(db, conn, after)
        reason = deps.broken or deps.waiting
        if reason is not None:
            waiting[job_id] = reason
    return waiting


# Host errors with their job's owner (None once the job is deleted), oldest first.
_ERRORS = (
    sa.select(host_errors, jobs.c.owner)
    .select_from(host_errors.outerjoin(jobs, jobs.c.id == host_errors.c.job_id))
    .order_by(host_errors.c.at, host_errors.c.id)
)


def _recently_failed(since: float) -> sa.Select[Any]:
    """The blocks with an error after `since`: all their errors are read, old ones too, since a
    block that failed on another host long ago is still no evidence against this one."""
    return sa.select(host_errors.c.block_id).where(host_errors.c.at > sa.literal(since))


# (block, worker) of each error after `since` whose block succeeded on another worker. EXISTS
# stops at the first such success, so a block that runs elsewhere costs one index probe.
_OTHER = attempts.alias("other")
_SUCCEEDED_ELSEWHERE = (
    sa.select(host_errors.c.block_id, host_errors.c.worker_id)
    .where(
        host_errors.c.at > sa.bindparam("since"),
        sa.exists()
        .where(
            tasks.c.block_id == host_errors.c.block_id,
            _OTHER.c.task_id == tasks.c.id,
            _OTHER.c.status == AttemptStatus.SUCCEEDED.value,
            _OTHER.c.worker_id != host_errors.c.worker_id,
        )
        .correlate(host_errors),
    )
    .distinct()
)


def held_attempt(r: Any) -> HeldAttempt:
    """A running attempt from a row of `HELD_ATTEMPTS`."""
    return HeldAttempt(
        r.id,
        r.job_id,
        r.worker_id,
        r.lane,
        r.capacity,
        r.created_at,
        r.cancel_reason,
        r.owner,
        r.priority,
    )


_HELD_KEY = "thresher_poll_held"


def remember_held(conn: sa.Connection, held: Mapping[int, Sequence[Any]]) -> None:
    """What a report's finishes read of their workers' running attempts once the finishes
    are written (rows of `HELD_ATTEMPTS`' columns, oldest first, by worker id), for the
    reconciliations that follow in the same transaction (`Snapshots.held_after_reports`).
    Each worker's is taken once; all are kept until then or until a change to running
    attempts in between (`forget_held`)."""
    conn.info[_HELD_KEY] = (
        conn.get_transaction(),
        {w: [held_attempt(r) for r in rows] for w, rows in held.items()},
    )


def forget_held(conn: sa.Connection) -> None:
    """A change to running attempts (a stop asked): what a finish read of them is stale."""
    conn.info.pop(_HELD_KEY, None)


_JSON_TEXT = ("pools", "attributes", "lane_engines", "lane_overrides", "lane_gpus")
# Workers as the snapshot reads them: the JSON columns as their text, decoded only when a row
# changed since the last snapshot (a thousand workers' JSON would dominate the rebuild).
_WORKER_COLUMNS = [
    *(c for c in workers.c if c.name not in _JSON_TEXT),
    *(sa.cast(workers.c[n], sa.Text).label(n) for n in _JSON_TEXT),
]


class Snapshots(Repository):
    """The dispatch snapshot and the reads of the poll path."""

    def __init__(self, db: Database) -> None:
        super().__init__(db)
        engine = db.engine
        self._snap_workers: dict[int, tuple[tuple[Any, ...], SnapWorker]] = {}
        # Reads of the dispatch path without a transaction: on PostgreSQL a plain connection
        # would cost a BEGIN and a ROLLBACK round trip around every SELECT.
        # (SQLite's driver begins a transaction only before a write: nothing to save there.)
        self._reads = (
            engine
            if engine.dialect.name == "sqlite"
            else engine.execution_options(isolation_level="AUTOCOMMIT")
        )

    # -- the dispatch snapshot --------------------------------------------------------------------

    def read(self, *, now: float, errors_since: float) -> DispatchSnapshot:
        """Everything dispatch decides from, read in one connection. Host errors are those of
        active blocks, and any since `errors_since` (for sickness)."""
        tally.fold_now(self.db.engine)  # the counters as the claims and finishes left them
        with self.db.connect() as conn:
            snap_blocks = tuple(self._snap_block(r) for r in conn.execute(_ACTIVE_BLOCKS))
            waiting = _job_waiting(self.db, conn, snap_blocks)
            worker_rows = conn.execute(sa.select(*_WORKER_COLUMNS)).all()
            running = {(r.job_id, r.owner): int(r.n) for r in conn.execute(_RUNNING).all()}
            users = {
                r.name: UserRecord(r.name, r.priority, r.max_running)
                for r in conn.execute(sa.select(user_settings)).all()
            }
            limit_rows = conn.execute(sa.select(limits)).all()
            usage = limit_usage(conn, [r.name for r in limit_rows])
            block_ids = [b.block_id for b in snap_blocks]
            error_rows = conn.execute(
                _ERRORS.where(
                    sa.or_(
                        host_errors.c.block_id.in_(block_ids),
                        host_errors.c.block_id.in_(_recently_failed(errors_since)),
                    )
                )
            ).all()
            elsewhere = conn.execute(_SUCCEEDED_ELSEWHERE, {"since": errors_since}).all()
        return DispatchSnapshot(
            taken_at=now,
            blocks=snap_blocks,
            job_waiting=waiting,
            workers={r.id: self._snap_worker(r) for r in worker_rows},
            running=running,
            users=users,
            limits={
                r.name: LimitRecord(
                    r.name, r.max_total, r.max_per_host, r.max_hosts, usage.get(r.name, {})
                )
                for r in limit_rows
            },
            errors=tuple(HostError(r.worker_id, r.job_id, r.block_id, r.at) for r in error_rows),
            error_owners={r.job_id: r.owner or "" for r in error_rows},
            succeeded_elsewhere=frozenset((r.block_id, r.worker_id) for r in elsewhere),
        )

    def job_blocks(self, job_ids: Sequence[int]) -> tuple[tuple[SnapBlock, ...], dict[int, str]]:
        """The blocks of these jobs as `read` has them (none of a job canceled or finished),
        and which of the jobs their `after` holds back, and why: what dispatch adds to its
        index for jobs just submitted."""
        with self.db.connect(self._reads) as conn:
            rows = conn.execute(_JOBS_BLOCKS, {"job_ids": list(job_ids)}).all()
            snap_blocks = tuple(self._snap_block(r) for r in rows)
            return snap_blocks, _job_waiting(self.db, conn, snap_blocks)

    @staticmethod
    def _snap_block(r: Any) -> SnapBlock:
        return SnapBlock(
            block_id=r.id,
            job_id=r.job_id,
            index=r.idx,
            name=r.name,
            frames=r.frames,
            chunk=r.chunk,
            priority_frames=r.priority_frames,
            preview_every=r.preview_every,
            task_count=r.task_count,
            cursor=r.cursor,
            n_queued=r.n_queued,
            n_running=r.n_running,
            n_done=r.n_succeeded + r.n_skipped,
            n_failed=r.n_failed,
            n_canceled=r.n_canceled,
            runtime_sum=r.runtime_sum,
            runtime_n=r.runtime_n,
            engine=r.engine,
            capacity=r.capacity,
            limits=tuple(r.limits or ()),
            after=tuple(r.after or ()),
            after_frames=tuple(r.after_frames or ()),
            errors_to_avoid=r.errors_to_avoid,
            forgive_s=r.forgive_s,
            owner=r.owner,
            priority=r.job_priority,
            kind=r.kind,
            paused=r.paused,
            # A block's own filters (an OpenJD step's hostRequirements) add to its job's.
            filters=",".join(f for f in (r.filters, r.host_filters) if f),
            max_running=r.job_max_running,
            max_running_per_host=r.max_running_per_host,
            preempt=r.preempt,
            created_at=r.created_at,
            job_after=tuple(r.job_after or ()),
            min_runtime_s=r.min_runtime_s,
        )

    def _snap_worker(self, r: Any) -> SnapWorker:
        """The worker of a row; the same object as last time when the row is unchanged."""
        signature = tuple(r)
        cached = self._snap_workers.get(r.id)
        if cached is not None and cached[0] == signature:
            return cached[1]
        snap = self._decode_worker(r)
        self._snap_workers[r.id] = (signature, snap)
        return snap

    @staticmethod
    def _decode_worker(r: Any) -> SnapWorker:
        pools, labels, declared, overrides, gpus = (
            json.loads(getattr(r, n)) if getattr(r, n) else None for n in _JSON_TEXT
        )
        return SnapWorker(
            id=r.id,
            name=r.name,
            hostname=r.hostname,
            os=r.os,
            cores=r.cores,
            ram_bytes=r.ram_bytes,
            gpus=r.gpus,
            site=r.site,
            pools=tuple(pools or ()),
            labels=dict(labels or {}),
            lanes=r.lanes,
            capacity=r.capacity,
            lane_engines=lane_keys(declared),
            lane_overrides=lane_keys(overrides),
            nimby=r.nimby,
            local_nimby=r.local_nimby,
            enabled=r.enabled,
            online=r.status == "online",
            sick_cleared_at=r.sick_cleared_at,
            lane_gpus=gpu_lanes(gpus),
        )

    def job_standing(self, job_id: int) -> tuple[str, bool]:
        """A job's owner, and whether, not canceled, it still has tasks running or waiting to
        run: then it is certainly not final, and its full record need not be read (a wait
        for its end). NotFound when there is no such job."""
        with self.db.connect(self._reads) as conn:
            row = conn.execute(_STANDING, {"job_id": job_id}).first()
        if row is None:
            raise NotFound(f"job {job_id} does not exist", field="job_id")
        return str(row.owner), bool(row.unsettled)

    def held_after_reports(self, worker_id: int) -> list[HeldAttempt]:
        """`worker_held` for a poll's reconciliation, right after its reports: what its
        finish read with it (`remember_held`) when that is the same worker's in the same
        transaction, else read."""
        with self.db.connect(self._reads) as conn:
            kept = conn.info.get(_HELD_KEY)
            if kept is not None:
                if kept[0] is not conn.get_transaction():
                    del conn.info[_HELD_KEY]
                else:
                    # Taken once: a second poll of the worker in the transaction (its first
                    # one's claim came after the read) reads.
                    found: list[HeldAttempt] | None = kept[1].pop(worker_id, None)
                    if found is not None:
                        return found
            rows = _HELD_BY.all(conn, {"worker_id": worker_id})
        return [held_attempt(r) for r in rows]

    def worker_held(self, worker_id: int) -> list[HeldAttempt]:
        """The worker's running attempts (started or held ahead), oldest first."""
        with self.db.connect(self._reads) as conn:
            rows = _HELD_BY.all(conn, {"worker_id": worker_id})
        return [held_attempt(r) for r in rows]
