"""The sender: delivers events to their subscriptions (webhooks, e-mail), off the event loop.

Each round fans new events out into deliveries and sends the ones due, each in a worker thread
(the network never blocks the event loop or the farm thread), recording each try in the store:
a 2xx answer (or an accepted e-mail) marks it delivered; anything else retries it with a
doubling backoff, up to `core.events.MAX_TRIES`, then gives up (its error stays visible in
`GET /api/v1/subscriptions/{id}`). A crash between a send and its record sends it again, so
a receiver de-duplicates by `Thresher-Event-Id` if it must see each event once.
"""

from __future__ import annotations

import asyncio
import json
import logging
import smtplib
from email.message import EmailMessage
from typing import TYPE_CHECKING

import httpx

from thresher.controller.settings import SmtpSettings
from thresher.core.clock import Clock
from thresher.core.events import MAX_TRIES, backoff_s, signature_header
from thresher.store.events import Delivery

if TYPE_CHECKING:
    from thresher.controller.farm import Farm

__all__ = ["Sender", "event_body"]

log = logging.getLogger("thresher.controller")


def event_body(d: Delivery) -> bytes:
    """The JSON a webhook receives (and an e-mail carries): the event and its subscription."""
    e = d.event
    return json.dumps(
        {
            "id": e.id,
            "kind": e.kind,
            "created_at": e.created_at,
            "job_id": e.job_id,
            "owner": e.owner,
            "worker": e.worker,
            "data": dict(e.data),
            "subscription_id": d.subscription.id,
        },
        sort_keys=True,
        separators=(",", ":"),
    ).encode()


class Sender:
    """Delivers what `store.events` holds; :meth:`run` until cancelled."""

    def __init__(
        self,
        clock: Clock,
        *,
        smtp: SmtpSettings | None = None,
        every_s: float = 0.2,
        idle_every_s: float = 1.0,
        timeout_s: float = 10.0,
        backoff_base_s: float = 1.0,
    ) -> None:
        self.clock = clock
        self.smtp = smtp or SmtpSettings()
        self.every_s = every_s
        self.idle_every_s = idle_every_s
        # Set (from any thread) when a change was committed: the next round looks at once,
        # else every `idle_every_s` (retries fall due, other controllers' events).
        self._changed = True
        self.backoff_base_s = backoff_base_s
        self._http = httpx.Client(timeout=timeout_s, follow_redirects=False)

    def changed(self, soft: bool = False) -> None:
        """A notifier listener: something was committed (cheap; any thread)."""
        self._changed = True

    async def run(self, farm: Farm) -> None:
        last = -float("inf")
        try:
            while True:
                now = asyncio.get_running_loop().time()
                if self._changed or now - last >= self.idle_every_s:
                    self._changed, last = False, now
                    try:
                        await self.round(farm)
                    except Exception:  # the sender outlives a failed round (database away)
                        log.exception("event delivery round failed")
                await asyncio.sleep(self.every_s)
        finally:
            self._http.close()

    async def round(self, farm: Farm) -> int:
        """Fan out new events and send what is due; returns how many were sent."""
        events = farm.store.events
        await farm.call(events.fan_out, now=self.clock.now())
        due = await farm.call(events.due, now=self.clock.now())
        for delivery in due:
            secret = farm.access.box.open(delivery.subscription.secret)
            error = await asyncio.to_thread(self.send, delivery, secret)
            now = self.clock.now()
            if error is None:
                await farm.call(events.delivered, delivery.id, now=now)
            elif delivery.tries + 1 >= MAX_TRIES:
                log.warning("delivery %s given up: %s", delivery.id, error)
                await farm.call(events.give_up, delivery.id, error=error)
            else:
                wait = backoff_s(delivery.tries + 1, base_s=self.backoff_base_s)
                await farm.call(events.retry, delivery.id, next_at=now + wait, error=error)
        return len(due)

    def send(self, d: Delivery, secret: str) -> str | None:
        """In a thread: one try, signed with the subscription's `secret`; None when it was
        delivered, else why not."""
        body = event_body(d)
        signature = signature_header(secret, int(self.clock.now()), body)
        try:
            if d.subscription.channel == "webhook":
                return self._post(d, body, signature)
            return self._mail(d, body, signature)
        except (httpx.HTTPError, OSError, smtplib.SMTPException) as exc:
            return f"{type(exc).__name__}: {exc}"

    def _post(self, d: Delivery, body: bytes, signature: str) -> str | None:
        answer = self._http.post(
            d.subscription.target,
            content=body,
            headers={
                "Content-Type": "application/json",
                "User-Agent": "thresher-events",
                "Thresher-Event": d.event.kind,
                "Thresher-Event-Id": str(d.event.id),
                "Thresher-Delivery": str(d.id),
                "Thresher-Signature": signature,
            },
        )
        if 200 <= answer.status_code < 300:
            return None
        return f"HTTP {answer.status_code}"

    def _mail(self, d: Delivery, body: bytes, signature: str) -> str | None:
        smtp = self.smtp
        if smtp.host is None:
            return "no SMTP server is set (thresher controller --smtp-host)"
        e = d.event
        message = EmailMessage()
        what = e.data.get("job") or e.worker or ""
        message["Subject"] = f"[thresher] {e.kind}: {what}" + (
            f" (job {e.job_id})" if e.job_id else ""
        )
        message["From"] = smtp.sender
        message["To"] = d.subscription.target
        message["Thresher-Event-Id"] = str(e.id)
        message["Thresher-Signature"] = signature
        message.set_content(json.dumps(json.loads(body), indent=2, sort_keys=True) + "\n")
        # The signed bytes, exactly (base64 keeps them so), for a receiver that verifies.
        message.add_attachment(body, maintype="application", subtype="json", filename="event.json")
        with smtplib.SMTP(smtp.host, smtp.port, timeout=10) as client:
            if smtp.starttls:
                client.starttls()
            if smtp.user:
                client.login(smtp.user, smtp.password or "")
            client.send_message(message)
        return None
