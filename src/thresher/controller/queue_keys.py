"""Queue credentials: what Deadline Cloud's AssumeQueueRoleForUser hands a person, made from
their own access key so that nothing new is stored.

A queue key id is ``TQR`` + its expiry (10 decimal digits, Unix seconds) + the access key id it
was made from; its secret and session token are HMACs of that id under the access key's secret.
The controller derives both again when the key is used, so revoking the access key (or its
token) revokes every queue key made from it, and a queue key past its expiry is refused. A queue
key acts only on the job attachments endpoint (read the outputs of the jobs its person may see);
the Deadline and Thresher routes do not know it. Pure: the caller passes the secret and `now`.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass

PREFIX = "TQR"
#: How long queue credentials last (the CLI asks again when they near their end).
LIFETIME_S = 3600
_KEY = re.compile(rf"^{PREFIX}(?P<expiry>[0-9]{{10}})(?P<access_key>THR[A-Z0-9]{{17}})$")


@dataclass(frozen=True)
class QueueKey:
    key_id: str
    access_key_id: str
    """The person's access key it was made from."""
    expiry: int


def make(access_key_id: str, *, now: float) -> QueueKey:
    expiry = int(now) + LIFETIME_S
    return QueueKey(f"{PREFIX}{expiry:010d}{access_key_id}", access_key_id, expiry)


def parse(key_id: str) -> QueueKey | None:
    """The queue key `key_id` names, or None when it is not one."""
    match = _KEY.match(key_id)
    if match is None:
        return None
    return QueueKey(key_id, match["access_key"], int(match["expiry"]))


def _mac(secret: str, purpose: str, key: QueueKey) -> str:
    message = f"thresher queue key\n{purpose}\n{key.key_id}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def secret_of(access_secret: str, key: QueueKey) -> str:
    return _mac(access_secret, "secret", key)


def session_token_of(access_secret: str, key: QueueKey) -> str:
    return "tq1." + _mac(access_secret, "token", key)
