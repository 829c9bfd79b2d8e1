"""The events outbox (SQLite and PostgreSQL): fanned out once, deliveries claimed by one sender
at a time, retried after a crashed sender's lease, and an event written with its change or not
at all."""

from __future__ import annotations

import pytest

from thresher.core.events import EventKind
from thresher.store.store import Store

NOW = 1_000.0


def subscribe(store: Store, owner: str = "ann") -> int:
    return store.events.subscribe(
        owner=owner,
        channel="webhook",
        target="http://127.0.0.1:9/x",
        kinds=("*",),
        job_id=None,
        all_users=False,
        min_failures=1,
        secret="whsec_x",
        now=NOW,
    ).id


def test_an_event_is_fanned_out_once_and_claimed_by_one_sender(store: Store) -> None:
    sub = subscribe(store)
    subscribe(store, owner="bob")  # hears nothing of ann's
    store.events.emit(EventKind.JOB_SUBMITTED, now=NOW, job_id=1, owner="ann")
    assert store.events.fan_out(now=NOW) == 1
    assert store.events.fan_out(now=NOW) == 0  # a second sender finds nothing left
    (first,) = store.events.due(now=NOW, lease_s=60)
    assert first.subscription.id == sub
    assert store.events.due(now=NOW + 1, lease_s=60) == []  # claimed: not sent twice
    # The sender crashed before recording the outcome: tried again once the lease ends.
    (again,) = store.events.due(now=NOW + 61, lease_s=60)
    assert again.id == first.id
    store.events.delivered(again.id, now=NOW + 61)
    assert store.events.due(now=NOW + 1000) == []
    assert store.events.deliveries_of(sub) == [(first.event.id, "delivered", 1, None)]


def _change_that_fails(store: Store) -> None:
    with store.transaction():
        store.events.emit(EventKind.JOB_SUBMITTED, now=NOW, job_id=1, owner="ann")
        raise RuntimeError("the change failed after the event was written")


def test_an_event_is_written_with_its_change_or_not_at_all(store: Store) -> None:
    with pytest.raises(RuntimeError):
        _change_that_fails(store)
    assert store.events.recent() == []
