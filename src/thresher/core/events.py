"""Events and notifications: what happened, who hears of it, and how a receiver trusts it.

Event kinds: `job.submitted`, `job.succeeded`, `job.failed`, `job.canceled`, `task.failed` (an
attempt failed; its `failures` count how often that task has), `worker.lost` (silent past its
lease), `worker.sick` and `worker.disk_low`. A subscription names the kinds it wants (or `*`),
is its owner's (their jobs' events; an admin may take every user's with `all_users`) or one
job's, and for `task.failed` the number of failures from which it wants to hear
(`min_failures`).

Webhooks are signed: header `Thresher-Signature: t=<unix time>,v1=<hex>` where the hex is
HMAC-SHA256 of ``f"{t}.{body}"`` with the subscription's secret (the scheme Stripe uses), so a
receiver checks who sent it and refuses a replay outside its tolerance (see :func:`verify`).
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from enum import StrEnum

__all__ = [
    "EventKind",
    "backoff_s",
    "matches",
    "sign",
    "signature_header",
    "verify",
]


class EventKind(StrEnum):
    JOB_SUBMITTED = "job.submitted"
    JOB_SUCCEEDED = "job.succeeded"
    JOB_FAILED = "job.failed"
    JOB_CANCELED = "job.canceled"
    TASK_FAILED = "task.failed"
    WORKER_LOST = "worker.lost"
    WORKER_SICK = "worker.sick"
    WORKER_DISK_LOW = "worker.disk_low"


WORKER_KINDS = frozenset({EventKind.WORKER_LOST, EventKind.WORKER_SICK, EventKind.WORKER_DISK_LOW})


@dataclass(frozen=True)
class EventFacts:
    """What matching looks at of an event."""

    kind: str
    job_id: int | None = None
    owner: str | None = None
    failures: int = 0


@dataclass(frozen=True)
class Wants:
    """What matching looks at of a subscription."""

    owner: str
    kinds: tuple[str, ...]
    job_id: int | None = None
    all_users: bool = False
    min_failures: int = 1


def matches(wants: Wants, event: EventFacts) -> bool:
    """Whether the subscription hears of the event: a kind it names, of its job (if it names
    one), of its owner's jobs (unless `all_users`); worker events only to `all_users` ones."""
    if "*" not in wants.kinds and event.kind not in wants.kinds:
        return False
    if event.kind == EventKind.TASK_FAILED and event.failures < wants.min_failures:
        return False
    if wants.job_id is not None:
        return event.job_id == wants.job_id
    if event.kind in WORKER_KINDS:
        return wants.all_users
    return wants.all_users or event.owner == wants.owner


def backoff_s(tries: int, *, base_s: float = 1.0, cap_s: float = 3600.0) -> float:
    """Wait before retry number `tries` (1 after the first failure): doubling, capped."""
    return float(min(cap_s, base_s * 2 ** max(0, tries - 1)))


MAX_TRIES = 12
"""A delivery failing this often is given up (about 35 minutes of retries at the defaults)."""


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """HMAC-SHA256 of ``"{timestamp}.{body}"``, hex."""
    message = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def signature_header(secret: str, timestamp: int, body: bytes) -> str:
    """The `Thresher-Signature` header's value."""
    return f"t={timestamp},v1={sign(secret, timestamp, body)}"


def verify(secret: str, header: str, body: bytes, *, now: float, tolerance_s: float = 300) -> bool:
    """Whether `header` signs `body` with `secret`, made within `tolerance_s` of `now`."""
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    try:
        timestamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs(now - timestamp) > tolerance_s:
        return False
    return hmac.compare_digest(sign(secret, timestamp, body), parts.get("v1", ""))
