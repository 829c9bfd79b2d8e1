"""People's routes for events and their subscriptions (webhooks and e-mail)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from thresher.controller.routes.deps import MAX_ID, CallerDep, FarmDep
from thresher.schemas import cloud
from thresher.store.events import EventRecord, SubscriptionRecord

router = APIRouter(prefix="/api/v1", tags=["events"])

SubscriptionPath = Annotated[int, Path(ge=1, le=MAX_ID, description="subscription id")]


def subscription_out(s: SubscriptionRecord, *, secret: bool = False) -> cloud.SubscriptionOut:
    return cloud.SubscriptionOut(
        id=s.id,
        owner=s.owner,
        channel=s.channel,
        target=s.target,
        events=list(s.kinds),
        job_id=s.job_id,
        all_users=s.all_users,
        min_failures=s.min_failures,
        created_at=s.created_at,
        secret=s.secret if secret else None,
    )


def event_out(e: EventRecord) -> cloud.EventOut:
    return cloud.EventOut(
        id=e.id,
        kind=e.kind,
        job_id=e.job_id,
        owner=e.owner,
        worker=e.worker,
        data=dict(e.data),
        created_at=e.created_at,
    )


@router.post("/subscriptions", response_model=cloud.SubscriptionOut, status_code=201)
async def subscribe(
    body: cloud.SubscriptionIn, farm: FarmDep, caller: CallerDep
) -> cloud.SubscriptionOut:
    """Subscribe a webhook or an e-mail address to events: the caller's jobs', one job's, or
    (admins, `all_users`) every user's and the workers'. The answer holds the secret that signs
    its webhooks, this once."""
    made = await farm.call(farm.subscriptions.subscribe, caller, body)
    return subscription_out(made, secret=True)


@router.get("/subscriptions", response_model=cloud.SubscriptionList)
async def list_subscriptions(farm: FarmDep, caller: CallerDep) -> cloud.SubscriptionList:
    """The caller's subscriptions (an admin's: everyone's)."""
    subs = await farm.call(farm.subscriptions.all, caller)
    return cloud.SubscriptionList(subscriptions=[subscription_out(s) for s in subs])


@router.get("/subscriptions/{sub_id}", response_model=cloud.SubscriptionDetail)
async def show_subscription(
    sub_id: SubscriptionPath, farm: FarmDep, caller: CallerDep
) -> cloud.SubscriptionDetail:
    """A subscription with its deliveries (pending, delivered, failed) and their last errors."""
    sub = await farm.call(farm.subscriptions.get, caller, sub_id)
    rows = await farm.call(farm.subscriptions.deliveries, caller, sub_id)
    return cloud.SubscriptionDetail(
        **subscription_out(sub).model_dump(),
        deliveries=[
            cloud.DeliveryOut(event_id=e, status=st, tries=t, last_error=err)
            for e, st, t, err in rows
        ],
    )


@router.delete("/subscriptions/{sub_id}", status_code=204)
async def unsubscribe(sub_id: SubscriptionPath, farm: FarmDep, caller: CallerDep) -> None:
    await farm.call(farm.subscriptions.unsubscribe, caller, sub_id)


@router.get("/events", response_model=cloud.EventList)
async def list_events(
    farm: FarmDep,
    caller: CallerDep,
    after: Annotated[int, Query(ge=0, le=MAX_ID, description="events after this id")] = 0,
    job: Annotated[int | None, Query(ge=1, le=MAX_ID, description="one job's")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> cloud.EventList:
    """Events after id `after`, oldest first: the caller's jobs' (an admin's: all)."""
    found = await farm.call(farm.subscriptions.recent, caller, after=after, job_id=job, limit=limit)
    return cloud.EventList(events=[event_out(e) for e in found])
