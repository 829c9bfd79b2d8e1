"""`Client`'s events and subscriptions (webhooks and e-mail on job and worker events)."""

from __future__ import annotations

from collections.abc import Sequence

from thresher.client._session import Session
from thresher.schemas import cloud


class EventsMixin(Session):
    def subscribe(
        self,
        channel: str,
        target: str,
        *,
        events: Sequence[str] = ("*",),
        job_id: int | None = None,
        all_users: bool = False,
        min_failures: int = 1,
    ) -> cloud.SubscriptionOut:
        """Subscribe a webhook URL or an e-mail address; the answer's `secret` (shown this
        once) is the key of its `Thresher-Signature` headers."""
        body = {
            "channel": channel,
            "target": target,
            "events": list(events),
            "job_id": job_id,
            "all_users": all_users,
            "min_failures": min_failures,
        }
        answer = self._call("POST", "/api/v1/subscriptions", json=body)
        return cloud.SubscriptionOut.model_validate(answer.json())

    def subscriptions(self) -> list[cloud.SubscriptionOut]:
        answer = self._call("GET", "/api/v1/subscriptions")
        return cloud.SubscriptionList.model_validate(answer.json()).subscriptions

    def subscription(self, sub_id: int) -> cloud.SubscriptionDetail:
        answer = self._call("GET", f"/api/v1/subscriptions/{sub_id}")
        return cloud.SubscriptionDetail.model_validate(answer.json())

    def unsubscribe(self, sub_id: int) -> None:
        self._call("DELETE", f"/api/v1/subscriptions/{sub_id}")

    def events(
        self, *, after: int = 0, job_id: int | None = None, limit: int = 100
    ) -> list[cloud.EventOut]:
        params: dict[str, int] = {"after": after, "limit": limit}
        if job_id is not None:
            params["job"] = job_id
        answer = self._call("GET", "/api/v1/events", params=params)
        return cloud.EventList.model_validate(answer.json()).events
