"""Workers: registration, heartbeats, leases."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa

from thresher.core.errors import NotFound
from thresher.core.gpu_lanes import gpu_lanes
from thresher.core.lanes import effective_engines, lane_keys, lane_loads, worker_capacity
from thresher.core.model import (
    WorkerRecord,
)
from thresher.core.states import AttemptStatus, TaskStatus, WorkerStatus, check_attempt_move
from thresher.store.attempts import Attempts
from thresher.store.base import Database, Repository
from thresher.store.records import (
    WorkerRegistration,
)
from thresher.store.snapshot import HELD_ATTEMPTS, HeldAttempt, held_attempt
from thresher.store.tables import attempts, tasks, workers


class Workers(Repository):
    """Workers: enrolment, leases, what they hold, and losing what they stop reporting."""

    def __init__(self, db: Database, attempts: Attempts) -> None:
        super().__init__(db)
        self.attempts = attempts

    def register(self, facts: WorkerRegistration, *, token_id: int | None, now: float) -> int:
        """Create or refresh a worker by name. A re-registering worker is a new process: what
        the old one ran is lost and goes back to the queue."""
        values = {
            "hostname": facts.hostname,
            "os": facts.os,
            "cores": facts.cores,
            "ram_bytes": facts.ram_bytes,
            "site": facts.site,
            "pools": list(facts.pools),
            "attributes": dict(facts.attributes),
            "lanes": facts.lanes,
            "gpus": facts.gpus,
            "capacity": facts.capacity,
            "lane_engines": {str(k): list(v) for k, v in (facts.lane_engines or {}).items()},
            "lane_gpus": {str(k): list(v) for k, v in (facts.lane_gpus or {}).items()} or None,
            "status": WorkerStatus.ONLINE.value,
            "last_seen": now,
        }
        with self.db.begin() as conn:
            row = conn.execute(
                sa.select(workers.c.id, workers.c.pools_declared).where(
                    workers.c.name == facts.name
                )
            ).first()
            if row is None:
                result = conn.execute(
                    workers.insert().values(
                        name=facts.name,
                        token_id=token_id,
                        enabled=True,
                        registered_at=now,
                        **values,
                    )
                )
                return int(result.inserted_primary_key[0])  # type: ignore[index]
            if row.pools_declared is not None:  # an admin's choice of pools outlives restarts
                values["pools_declared"] = values.pop("pools")
            conn.execute(
                workers.update().where(workers.c.id == row.id).values(token_id=token_id, **values)
            )
            self._lose_attempts(conn, row.id, now, "the worker restarted")
            return int(row.id)

    def set_pools(self, worker_id: int, pools: Sequence[str] | None) -> None:
        """Set a worker's pools from the controller, or (None) go back to the ones it declared.
        The choice outlives the worker's restarts; what it declares meanwhile is kept aside."""
        with self.db.begin() as conn:
            row = conn.execute(
                sa.select(workers.c.pools, workers.c.pools_declared).where(
                    workers.c.id == worker_id
                )
            ).first()
            if row is None:
                raise NotFound(f"worker {worker_id} does not exist", field="worker")
            declared = row.pools if row.pools_declared is None else row.pools_declared
            if pools is None:
                values = {"pools": declared, "pools_declared": None}
            else:
                values = {"pools": list(pools), "pools_declared": declared}
            conn.execute(workers.update().where(workers.c.id == worker_id).values(**values))

    def for_token(self, token_id: int) -> int | None:
        with self.db.connect() as conn:
            return conn.scalar(sa.select(workers.c.id).where(workers.c.token_id == token_id))

    def touch_many(self, seen: Mapping[int, float]) -> None:
        """Refresh the leases of many workers in one transaction (worker id -> last seen); a
        lease is never set back (a heartbeat heard before a fresher lease was given)."""
        with self.db.begin() as conn:
            conn.execute(
                workers.update()
                .where(
                    workers.c.id == sa.bindparam("wid"), workers.c.last_seen < sa.bindparam("seen")
                )
                .values(last_seen=sa.bindparam("seen"), status=WorkerStatus.ONLINE.value),
                [{"wid": w, "seen": t} for w, t in seen.items()],
            )

    def refresh_all(self, now: float) -> None:
        """After a controller restart, every online worker gets a fresh lease to re-attach."""
        with self.db.begin() as conn:
            conn.execute(
                workers.update()
                .where(workers.c.status == WorkerStatus.ONLINE.value)
                .values(last_seen=now)
            )

    def set_enabled(self, worker_id: int, enabled: bool) -> None:
        with self.db.begin() as conn:
            result = conn.execute(
                workers.update().where(workers.c.id == worker_id).values(enabled=enabled)
            )
            if result.rowcount != 1:
                raise NotFound(f"worker {worker_id} does not exist", field="worker")

    def all(self) -> list[WorkerRecord]:
        return self._workers(None)

    def get(self, worker_id: int) -> WorkerRecord:
        found = self._workers(worker_id)
        if not found:
            raise NotFound(f"worker {worker_id} does not exist", field="worker")
        return found[0]

    def _workers(self, worker_id: int | None, *, name: str | None = None) -> list[WorkerRecord]:
        """All workers, or the one with `worker_id` (or `name`), with their running attempt
        counts."""
        running_q = sa.select(
            attempts.c.worker_id, attempts.c.lane, attempts.c.capacity, attempts.c.id
        ).where(attempts.c.status == AttemptStatus.RUNNING.value)
        rows_q = sa.select(workers).order_by(workers.c.name)
        if worker_id is not None:
            running_q = running_q.where(attempts.c.worker_id == worker_id)
            rows_q = rows_q.where(workers.c.id == worker_id)
        elif name is not None:
            one = sa.select(workers.c.id).where(workers.c.name == name).scalar_subquery()
            running_q = running_q.where(attempts.c.worker_id == one)
            rows_q = rows_q.where(workers.c.name == name)
        with self.db.connect() as conn:
            held: dict[int, list[tuple[int | None, int | None, int]]] = {}
            for row in conn.execute(running_q).all():
                held.setdefault(row.worker_id, []).append((row.lane, row.capacity, row.id))
            rows = conn.execute(rows_q).all()
        return [self._worker_record(r, held.get(r.id, [])) for r in rows]

    def find(self, name_or_id: str) -> WorkerRecord:
        """The worker of that name, else of that id. Reads one worker, not all: enrolment
        looks its name up, and a farm of thousands enrols them one by one."""
        found = self._workers(None, name=name_or_id)
        if not found and name_or_id.isdigit() and int(name_or_id) < 2**63:
            found = self._workers(int(name_or_id))
        if not found:
            raise NotFound(f"worker {name_or_id!r} does not exist", field="worker")
        return found[0]

    @staticmethod
    def _worker_record(r: Any, held: list[tuple[int | None, int | None, int]]) -> WorkerRecord:
        loads = lane_loads(held)
        return WorkerRecord(
            id=r.id,
            name=r.name,
            hostname=r.hostname,
            os=r.os,
            cores=r.cores,
            ram_bytes=r.ram_bytes,
            site=r.site,
            pools=tuple(r.pools),
            attributes=r.attributes,
            lanes=r.lanes,
            enabled=r.enabled,
            status=WorkerStatus(r.status),
            last_seen=r.last_seen,
            running=len(held),
            gpus=r.gpus,
            capacity=worker_capacity(r.capacity, r.lanes),
            capacity_used=sum(loads.values()),
            lane_engines={
                lane: None if engines is None else tuple(sorted(engines))
                for lane, engines in effective_engines(
                    r.lanes, lane_keys(r.lane_engines), lane_keys(r.lane_overrides)
                ).items()
            },
            lane_overrides=lane_keys(r.lane_overrides),
            pools_declared=None if r.pools_declared is None else tuple(r.pools_declared),
            nimby=r.nimby,
            local_nimby=r.local_nimby,
            lane_gpus=gpu_lanes(r.lane_gpus),
        )

    def expire(self, *, now: float, lease_s: float, keep: Collection[int] = ()) -> list[int]:
        """Workers silent past their lease go offline; their attempts are lost and requeued.
        `keep`: workers heard from meanwhile whose lease could not be written."""
        query = sa.select(workers.c.id).where(
            workers.c.status == WorkerStatus.ONLINE.value,
            workers.c.last_seen < now - lease_s,
        )
        kept = set(keep)  # left out here, not in the statement: a farm's every worker at times
        with self.db.begin() as conn:
            ids = [i for i in conn.scalars(query) if i not in kept]
            for worker_id in ids:
                conn.execute(
                    workers.update()
                    .where(workers.c.id == worker_id)
                    .values(status=WorkerStatus.OFFLINE.value)
                )
                self._lose_attempts(conn, worker_id, now, "the worker stopped answering")
        return list(ids)

    def held_by_worker(self) -> dict[int, list[HeldAttempt]]:
        """Every running attempt (started or held ahead), by worker: which lanes are busy."""
        with self.db.connect() as conn:
            rows = conn.execute(HELD_ATTEMPTS.order_by(attempts.c.id)).all()
        out: dict[int, list[HeldAttempt]] = {}
        for row in rows:
            out.setdefault(row.worker_id, []).append(held_attempt(row))
        return out

    def go_offline(self, worker_id: int, *, now: float) -> int:
        """A worker said goodbye: offline now, its running attempts lost (their tasks
        requeued). Returns how many attempts it lost."""
        with self.db.begin() as conn:
            moved = conn.execute(
                workers.update()
                .where(workers.c.id == worker_id)
                .values(status=WorkerStatus.OFFLINE.value, last_seen=now)
            ).rowcount
            if moved != 1:
                raise NotFound(f"worker {worker_id} does not exist", field="worker")
            return self._lose_attempts(conn, worker_id, now, "the worker stopped")

    def _lose_attempts(
        self, conn: sa.Connection, worker_id: int, now: float, why: str, keep: Iterable[int] = ()
    ) -> int:
        query = sa.select(attempts.c.id).where(
            attempts.c.worker_id == worker_id, attempts.c.status == AttemptStatus.RUNNING.value
        )
        kept = list(keep)
        if kept:
            query = query.where(attempts.c.id.not_in(kept))
        lost = conn.scalars(query).all()
        for attempt_id in lost:
            self.attempts.end_attempt(conn, attempt_id, AttemptStatus.LOST, now, message=why)
        return len(lost)

    def reattach(self, worker_id: int, attempt_ids: Iterable[int], *, now: float) -> list[int]:
        """Attempts of this worker given up as lost (it went silent past its lease) that it
        reports running again, back to running when nobody took their tasks meanwhile (still
        queued): the worker came back and its work goes on. Returns the attempts re-attached."""
        wanted = list(attempt_ids)
        if not wanted:
            return []
        back = []
        with self.db.begin() as conn:
            rows = conn.execute(
                sa.select(attempts.c.id, attempts.c.task_id, tasks.c.block_id)
                .select_from(attempts.join(tasks, tasks.c.id == attempts.c.task_id))
                .where(
                    attempts.c.id.in_(wanted),
                    attempts.c.worker_id == worker_id,
                    attempts.c.status == AttemptStatus.LOST.value,
                    tasks.c.status == TaskStatus.QUEUED.value,
                )
            ).all()
            for row in rows:
                check_attempt_move(AttemptStatus.LOST, AttemptStatus.RUNNING)
                conn.execute(
                    attempts.update()
                    .where(attempts.c.id == row.id)
                    .values(status=AttemptStatus.RUNNING.value, ended_at=None, message=None)
                )
                self.db.move_task(
                    conn,
                    row.task_id,
                    row.block_id,
                    TaskStatus.QUEUED,
                    TaskStatus.RUNNING,
                    now,
                    last_worker_id=worker_id,
                )
                back.append(int(row.id))
        return back

    def lose_unreported(
        self, worker_id: int, reported: Iterable[int], *, before: float, now: float
    ) -> int:
        """Attempts the controller thinks run on the worker, that the worker does not report
        (and that were handed out before this poll began), are lost."""
        with self.db.begin() as conn:
            query = sa.select(attempts.c.id).where(
                attempts.c.worker_id == worker_id,
                attempts.c.status == AttemptStatus.RUNNING.value,
                attempts.c.created_at < before,
            )
            held = set(conn.scalars(query).all())
            missing = held - set(reported)
            for attempt_id in sorted(missing):
                self.attempts.end_attempt(
                    conn,
                    attempt_id,
                    AttemptStatus.LOST,
                    now,
                    message="the worker no longer runs it",
                )
        return len(missing)
