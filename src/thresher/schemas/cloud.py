"""The HTTP contract of events and subscriptions (webhooks and e-mail)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, StringConstraints, ValidationInfo, field_validator

from thresher.schemas.base import MAX_INT64, Strict

EventName = Annotated[str, StringConstraints(min_length=1, max_length=40)]


class SubscriptionIn(Strict):
    channel: Literal["webhook", "email"]
    target: str = Field(
        min_length=3, max_length=2000, description="an http(s) URL, or an e-mail address"
    )
    events: list[EventName] = Field(
        default_factory=lambda: ["*"],
        min_length=1,
        max_length=20,
        description="event kinds (job.succeeded, task.failed, ...) or *",
    )
    job_id: int | None = Field(default=None, ge=1, le=MAX_INT64, description="only this job's")
    all_users: bool = Field(default=False, description="every user's jobs and workers (admins)")
    min_failures: int = Field(
        default=1, ge=1, le=1000, description="task.failed: from this many failures of a task"
    )

    @field_validator("target")
    @classmethod
    def _target_fits_channel(cls, target: str, info: ValidationInfo) -> str:
        channel = info.data.get("channel")
        if channel == "webhook" and not target.startswith(("http://", "https://")):
            raise ValueError("a webhook's target is an http:// or https:// URL")
        if channel == "email" and ("@" not in target or any(c in target for c in " \r\n,;<>")):
            raise ValueError("an e-mail subscription's target is one address")
        return target


class SubscriptionOut(BaseModel):
    id: int
    owner: str
    channel: str
    target: str
    events: list[str]
    job_id: int | None
    all_users: bool
    min_failures: int
    created_at: float
    secret: str | None = Field(
        default=None, description="the HMAC key of its signatures: in the creation answer only"
    )


class SubscriptionList(BaseModel):
    subscriptions: list[SubscriptionOut]


class DeliveryOut(BaseModel):
    event_id: int
    status: str = Field(description="pending, delivered, or failed (given up)")
    tries: int
    last_error: str | None


class SubscriptionDetail(SubscriptionOut):
    deliveries: list[DeliveryOut]


class EventOut(BaseModel):
    id: int
    kind: str
    job_id: int | None
    owner: str | None
    worker: str | None
    data: dict[str, Any]
    created_at: float


class EventList(BaseModel):
    events: list[EventOut]
