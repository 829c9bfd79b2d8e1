"""Events of the farm, written in the transaction of the change they tell of (the outbox), and
the use cases people call to subscribe to them (see `core.events` and docs/cloud.md).

The use cases that change state call :func:`job_event` and :func:`workers_lost` inside their
own transaction; `notify.Sender` delivers the events afterwards, off the farm thread.
"""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import Mapping, Sequence
from typing import Any

from thresher.controller.auth import PEOPLE, Caller
from thresher.controller.sealing import SecretBox
from thresher.controller.visibility import check_visible, visible_owners
from thresher.core.clock import Clock
from thresher.core.errors import Forbidden, InvalidInput
from thresher.core.events import EventKind
from thresher.core.model import JobRecord
from thresher.core.states import JobStatus
from thresher.schemas import cloud
from thresher.store.events import EventRecord, SubscriptionRecord, event_row
from thresher.store.store import Store

__all__ = ["Subscriptions", "final_kind", "job_event", "job_event_row", "workers_lost"]

_FINAL = {
    JobStatus.SUCCEEDED: EventKind.JOB_SUCCEEDED,
    JobStatus.FAILED: EventKind.JOB_FAILED,
    JobStatus.CANCELED: EventKind.JOB_CANCELED,
}


def final_kind(status: JobStatus) -> EventKind:
    return _FINAL[status]


def job_event(store: Store, job: JobRecord, kind: EventKind, *, now: float) -> None:
    """Record `kind` for `job` (in the caller's transaction)."""
    store.events.emit(kind, now=now, job_id=job.id, owner=job.spec.owner, data=_job_data(job))


def job_event_row(job: JobRecord, kind: EventKind, *, now: float) -> dict[str, Any]:
    """The row of `kind` for `job` (`store.events.event_row`), for a statement that writes it
    with another change (`Jobs.mark_finished`)."""
    return event_row(kind, now=now, job_id=job.id, owner=job.spec.owner, data=_job_data(job))


def _job_data(job: JobRecord) -> dict[str, Any]:
    counts = job.counts
    tasks = {"succeeded": counts.succeeded, "failed": counts.failed, "total": counts.total}
    return {"job": job.spec.name, "status": job.status.value, "tasks": tasks}


def workers_lost(store: Store, worker_ids: Sequence[int], *, now: float) -> None:
    """`worker.lost` for each worker gone silent (in the caller's transaction)."""
    for worker_id in worker_ids:
        worker = store.workers.get(worker_id)
        store.events.emit(
            EventKind.WORKER_LOST,
            now=now,
            worker=worker.name,
            data={"worker": worker.name, "hostname": worker.hostname, "site": worker.site},
        )


def workers_sick(store: Store, found: Sequence[tuple[str, float]], *, now: float) -> None:
    """`worker.sick` for each worker found sick (once per time it became sick, also across
    controller restarts; in the caller's transaction)."""
    for name, since in found:
        if store.events.has_worker_event(EventKind.WORKER_SICK, name, after=since):
            continue
        store.events.emit(
            EventKind.WORKER_SICK, now=now, worker=name, data={"worker": name, "since": since}
        )


class DiskWatch:
    """`worker.disk_low` once when a worker's free space falls under the threshold, again only
    after it rose above 1.2 x the threshold (remembered per controller process)."""

    def __init__(self, store: Store, threshold_bytes: int) -> None:
        self.store = store
        self.threshold = threshold_bytes
        self._low: set[int] = set()

    def seen(self, worker_id: int, sample: Mapping[str, float] | None, *, now: float) -> None:
        """A poll's resource sample (in the poll's transaction): its work directory's disk."""
        if not sample or "disk_total" not in sample or "disk_used" not in sample:
            return
        free = int(sample["disk_total"] - sample["disk_used"])
        if free >= self.threshold * 1.2:
            self._low.discard(worker_id)
        elif free < self.threshold and worker_id not in self._low:
            self._low.add(worker_id)
            worker = self.store.workers.get(worker_id)
            self.store.events.emit(
                EventKind.WORKER_DISK_LOW,
                now=now,
                worker=worker.name,
                data={"worker": worker.name, "free_bytes": free, "threshold": self.threshold},
            )


class Subscriptions:
    """People's subscriptions (their own; admins' may cover every user) and recent events."""

    def __init__(self, store: Store, clock: Clock, box: SecretBox) -> None:
        self.store = store
        self.clock = clock
        self.box = box  # subscriptions' secrets are sealed at rest (the sender opens them)

    def subscribe(self, caller: Caller, body: cloud.SubscriptionIn) -> SubscriptionRecord:
        """A new subscription; its secret is in the answer this once (stored sealed)."""
        _person(caller)
        if body.all_users and not caller.sees_every_job:
            raise Forbidden(
                "only wranglers and admins may subscribe to every user's events (all_users)",
                field="all_users",
            )
        if body.job_id is not None:  # a job the caller sees (its own, its groups', any)
            job = self.store.jobs.get(body.job_id)
            check_visible(self.store, caller, body.job_id, job.spec.owner)
        unknown = sorted(set(body.events) - {k.value for k in EventKind} - {"*"})
        if unknown:
            raise InvalidInput(f"unknown event kind {unknown[0]!r}", field="events")
        secret = "whsec_" + secrets.token_urlsafe(32)
        with self.store.transaction():
            made = self.store.events.subscribe(
                owner=caller.name,
                channel=body.channel,
                target=body.target,
                kinds=tuple(dict.fromkeys(body.events)),
                job_id=body.job_id,
                all_users=body.all_users,
                min_failures=body.min_failures,
                secret=self.box.seal(secret),
                now=self.clock.now(),
            )
        return dataclasses.replace(made, secret=secret)

    def all(self, caller: Caller) -> list[SubscriptionRecord]:
        _person(caller)
        owner = None if caller.sees_every_job else caller.name
        return self.store.events.subscriptions(owner=owner)

    def get(self, caller: Caller, sub_id: int) -> SubscriptionRecord:
        _person(caller)
        sub = self.store.events.subscription(sub_id)
        if sub.owner != caller.name and not caller.sees_every_job:
            raise Forbidden(f"subscription {sub_id} is not yours")
        return sub

    def deliveries(self, caller: Caller, sub_id: int) -> list[tuple[int, str, int, str | None]]:
        self.get(caller, sub_id)
        return self.store.events.deliveries_of(sub_id)

    def unsubscribe(self, caller: Caller, sub_id: int) -> None:
        self.get(caller, sub_id)
        self.store.events.unsubscribe(sub_id)

    def recent(
        self, caller: Caller, *, after: int, job_id: int | None, limit: int
    ) -> list[EventRecord]:
        """Events after id `after`: every one for wranglers and admins, else those of the jobs
        the caller sees (its own and its groups')."""
        _person(caller)
        owners = visible_owners(self.store, caller)
        return self.store.events.recent(after=after, owners=owners, job_id=job_id, limit=limit)


def _person(caller: Caller) -> None:
    """Events are people's: a worker's or an enrolment token has none."""
    if caller.role not in PEOPLE:
        raise Forbidden(f"a {caller.role} token has no events or subscriptions")
