"""Events (the outbox), subscriptions and their deliveries.

`emit` joins the caller's open transaction, so an event is committed with the change it tells
of, or not at all: nothing is lost on a crash. `fan_out` turns new events into one delivery per
matching subscription (unique per pair, so an event is never delivered twice to one receiver by
the farm itself); the sender takes `due` deliveries and records each try.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from thresher.core.errors import NotFound
from thresher.core.events import EventFacts, EventKind, Wants, matches
from thresher.store.base import Repository
from thresher.store.tables import (
    attempts,
    blocks,
    deliveries,
    events,
    jobs,
    subscriptions,
    tasks,
)

__all__ = ["Delivery", "EventRecord", "Events", "SubscriptionRecord", "event_row"]


@dataclass(frozen=True)
class EventRecord:
    id: int
    kind: str
    job_id: int | None
    owner: str | None
    worker: str | None
    data: Mapping[str, Any]
    created_at: float


@dataclass(frozen=True)
class SubscriptionRecord:
    id: int
    owner: str
    channel: str
    target: str
    kinds: tuple[str, ...]
    job_id: int | None
    all_users: bool
    min_failures: int
    created_at: float
    secret: str


@dataclass(frozen=True)
class Delivery:
    id: int
    tries: int
    event: EventRecord
    subscription: SubscriptionRecord


# Built once, values as parameters: building literal values costs more than the insert.
_EMIT = events.insert().returning(events.c.id)


def event_row(
    kind: EventKind,
    *,
    now: float,
    job_id: int | None = None,
    owner: str | None = None,
    worker: str | None = None,
    data: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The row of one event, as `Events.emit` writes it (and a statement that writes an event
    with another change, such as `Jobs.mark_finished`)."""
    return {
        "kind": kind.value,
        "job_id": job_id,
        "owner": owner,
        "worker": worker,
        "data": dict(data or {}),
        "created_at": now,
        "fanned_out": False,
    }


class Events(Repository):
    def emit(
        self,
        kind: EventKind,
        *,
        now: float,
        job_id: int | None = None,
        owner: str | None = None,
        worker: str | None = None,
        data: Mapping[str, Any] | None = None,
    ) -> int:
        """Record an event (in the caller's transaction, if one is open)."""
        row = event_row(kind, now=now, job_id=job_id, owner=owner, worker=worker, data=data)
        with self.db.begin() as conn:
            return int(conn.execute(_EMIT, row).scalar_one())

    def emit_task_failed(self, attempt_id: int, *, now: float) -> None:
        """`task.failed` for a failed attempt, with how often its task has failed so far."""
        with self.db.begin() as conn:
            row = conn.execute(
                sa.select(
                    attempts.c.exit_code,
                    attempts.c.message,
                    tasks.c.job_id,
                    tasks.c.idx,
                    tasks.c.failures,
                    blocks.c.idx.label("block"),
                    jobs.c.owner,
                    jobs.c.name,
                )
                .select_from(attempts.join(tasks, tasks.c.id == attempts.c.task_id))
                .join(blocks, blocks.c.id == tasks.c.block_id)
                .join(jobs, jobs.c.id == tasks.c.job_id)
                .where(attempts.c.id == attempt_id)
            ).first()
        if row is None:
            return
        self.emit(
            EventKind.TASK_FAILED,
            now=now,
            job_id=row.job_id,
            owner=row.owner,
            data={
                "job": row.name,
                "block": row.block,
                "task": row.idx,
                "attempt_id": attempt_id,
                "failures": row.failures,
                "exit_code": row.exit_code,
                "message": row.message,
            },
        )

    def has_worker_event(self, kind: EventKind, worker: str, *, after: float) -> bool:
        """Whether `kind` was recorded for `worker` at or after `after`."""
        with self.db.begin() as conn:
            return (
                conn.scalar(
                    sa.select(events.c.id)
                    .where(
                        events.c.kind == kind.value,
                        events.c.worker == worker,
                        events.c.created_at >= after,
                    )
                    .limit(1)
                )
                is not None
            )

    # -- subscriptions --------------------------------------------------------------------------

    def subscribe(
        self,
        *,
        owner: str,
        channel: str,
        target: str,
        kinds: tuple[str, ...],
        job_id: int | None,
        all_users: bool,
        min_failures: int,
        secret: str,
        now: float,
    ) -> SubscriptionRecord:
        with self.db.begin() as conn:
            new_id = conn.execute(
                subscriptions.insert()
                .values(
                    owner=owner,
                    channel=channel,
                    target=target,
                    kinds=list(kinds),
                    job_id=job_id,
                    all_users=all_users,
                    min_failures=min_failures,
                    secret=secret,
                    created_at=now,
                )
                .returning(subscriptions.c.id)
            ).scalar_one()
        return self.subscription(int(new_id))

    def subscription(self, sub_id: int) -> SubscriptionRecord:
        with self.db.connect() as conn:
            row = conn.execute(subscriptions.select().where(subscriptions.c.id == sub_id)).first()
        if row is None:
            raise NotFound(f"no subscription {sub_id}")
        return _subscription(row)

    def subscriptions(self, *, owner: str | None = None) -> list[SubscriptionRecord]:
        """Every subscription, or `owner`'s."""
        query = subscriptions.select().order_by(subscriptions.c.id)
        if owner is not None:
            query = query.where(subscriptions.c.owner == owner)
        with self.db.connect() as conn:
            return [_subscription(r) for r in conn.execute(query)]

    def unsubscribe(self, sub_id: int) -> None:
        with self.db.begin() as conn:
            conn.execute(deliveries.delete().where(deliveries.c.subscription_id == sub_id))
            gone = conn.execute(subscriptions.delete().where(subscriptions.c.id == sub_id))
        if gone.rowcount == 0:
            raise NotFound(f"no subscription {sub_id}")

    # -- the sender's side ----------------------------------------------------------------------

    def fan_out(self, *, now: float, limit: int = 500) -> int:
        """New events become deliveries to the subscriptions that match them; returns how many
        events were fanned out. Each event is claimed first (a conditional update), so two
        controllers on one database never fan one out twice."""
        with self.db.begin() as conn:
            ids = conn.scalars(
                sa.select(events.c.id)
                .where(events.c.fanned_out.is_(False))
                .order_by(events.c.id)
                .limit(limit)
            ).all()
            if not ids:
                return 0
            claimed = conn.scalars(
                events.update()
                .where(events.c.id.in_(ids), events.c.fanned_out.is_(False))
                .values(fanned_out=True)
                .returning(events.c.id)
            ).all()
            rows = conn.execute(events.select().where(events.c.id.in_(claimed))).all()
            subs = [_subscription(r) for r in conn.execute(subscriptions.select())]
            new = [
                {"event_id": e.id, "subscription_id": s.id, "status": "pending", "next_at": now}
                for e in rows
                for s in subs
                if matches(_wants(s), _facts(e))
            ]
            if new:
                conn.execute(deliveries.insert(), new)
        return len(rows)

    def due(self, *, now: float, limit: int = 100, lease_s: float = 120.0) -> list[Delivery]:
        """Pending deliveries whose time has come, oldest event first, each claimed for
        `lease_s` (its next try is put off by that much until `delivered`, `retry` or `give_up`
        records the outcome): two senders never send one delivery at once, and one a crashed
        sender held is tried again after the lease."""
        query = (
            sa.select(deliveries.c.id, deliveries.c.tries, *events.c, *subscriptions.c)
            .select_from(
                deliveries.join(events, events.c.id == deliveries.c.event_id).join(
                    subscriptions, subscriptions.c.id == deliveries.c.subscription_id
                )
            )
            .where(deliveries.c.status == "pending", deliveries.c.next_at <= now)
            .order_by(deliveries.c.event_id, deliveries.c.id)
            .limit(limit)
        )
        with self.db.begin() as conn:
            rows = conn.execute(query).all()
            if not rows:
                return []
            claimed = set(
                conn.scalars(
                    deliveries.update()
                    .where(
                        deliveries.c.id.in_([r._mapping[deliveries.c.id] for r in rows]),
                        deliveries.c.status == "pending",
                        deliveries.c.next_at <= now,
                    )
                    .values(next_at=now + lease_s)
                    .returning(deliveries.c.id)
                ).all()
            )
        out = []
        for r in rows:
            values = r._mapping
            if values[deliveries.c.id] not in claimed:
                continue
            out.append(
                Delivery(
                    id=values[deliveries.c.id],
                    tries=values[deliveries.c.tries],
                    event=_event_of(values, events),
                    subscription=_subscription_of(values),
                )
            )
        return out

    def delivered(self, delivery_id: int, *, now: float) -> None:
        self._set(delivery_id, status="delivered", delivered_at=now, tries=_plus_one)

    def retry(self, delivery_id: int, *, next_at: float, error: str) -> None:
        self._set(delivery_id, next_at=next_at, last_error=error[:2000], tries=_plus_one)

    def give_up(self, delivery_id: int, *, error: str) -> None:
        self._set(delivery_id, status="failed", last_error=error[:2000], tries=_plus_one)

    def _set(self, delivery_id: int, **values: Any) -> None:
        if values.get("tries") is _plus_one:
            values["tries"] = deliveries.c.tries + 1
        with self.db.begin() as conn:
            conn.execute(deliveries.update().where(deliveries.c.id == delivery_id).values(**values))

    def deliveries_of(self, sub_id: int) -> list[tuple[int, str, int, str | None]]:
        """(event id, status, tries, last error) of a subscription's deliveries."""
        with self.db.connect() as conn:
            rows = conn.execute(
                sa.select(
                    deliveries.c.event_id,
                    deliveries.c.status,
                    deliveries.c.tries,
                    deliveries.c.last_error,
                )
                .where(deliveries.c.subscription_id == sub_id)
                .order_by(deliveries.c.id)
            ).all()
        return [(r.event_id, r.status, r.tries, r.last_error) for r in rows]

    def recent(
        self,
        *,
        after: int = 0,
        owners: Collection[str] | None = None,
        job_id: int | None = None,
        limit: int = 100,
    ) -> list[EventRecord]:
        """Events after id `after`, oldest first: every event, or those of `owners`' jobs."""
        query = events.select().where(events.c.id > after).order_by(events.c.id).limit(limit)
        if owners is not None:
            query = query.where(events.c.owner.in_(sorted(owners)))
        if job_id is not None:
            query = query.where(events.c.job_id == job_id)
        with self.db.connect() as conn:
            return [_event(r) for r in conn.execute(query)]


_plus_one = object()


def _event(r: Any) -> EventRecord:
    return EventRecord(
        id=r.id,
        kind=r.kind,
        job_id=r.job_id,
        owner=r.owner,
        worker=r.worker,
        data=dict(r.data or {}),
        created_at=r.created_at,
    )


def _event_of(values: Any, table: sa.Table) -> EventRecord:
    return EventRecord(
        id=values[table.c.id],
        kind=values[table.c.kind],
        job_id=values[table.c.job_id],
        owner=values[table.c.owner],
        worker=values[table.c.worker],
        data=dict(values[table.c.data] or {}),
        created_at=values[table.c.created_at],
    )


def _subscription_of(values: Any) -> SubscriptionRecord:
    c = subscriptions.c
    return SubscriptionRecord(
        id=values[c.id],
        owner=values[c.owner],
        channel=values[c.channel],
        target=values[c.target],
        kinds=tuple(values[c.kinds] or ()),
        job_id=values[c.job_id],
        all_users=bool(values[c.all_users]),
        min_failures=values[c.min_failures],
        created_at=values[c.created_at],
        secret=values[c.secret],
    )


def _subscription(r: Any) -> SubscriptionRecord:
    return _subscription_of(r._mapping)


def _wants(s: SubscriptionRecord) -> Wants:
    return Wants(
        owner=s.owner,
        kinds=s.kinds,
        job_id=s.job_id,
        all_users=s.all_users,
        min_failures=s.min_failures,
    )


def _facts(e: Any) -> EventFacts:
    data = e.data or {}
    return EventFacts(
        kind=e.kind, job_id=e.job_id, owner=e.owner, failures=int(data.get("failures") or 0)
    )
