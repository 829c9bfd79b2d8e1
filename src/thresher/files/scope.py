"""Tokens that open a file service for one job's files (or one submitter's uploads) only.

A file service has one token of its own, which its site's workers, the other sites' services
and the controller use: it opens everything. A submitter gets a *scoped* token instead,
made by the controller from the service's own token (an HMAC over the scope, so the service
checks it without asking anyone): ``scoped.<scope, base64url JSON>.<HMAC-SHA256, hex>``. A
scope names the manifests it may read and write (those whose names start with `names`: a
job's are ``job-<id>-...``), the folders of volumes it may check in or write into
(`folders`: volume and a path prefix), and when it ends (`until`, Unix time). With it, only
the chunks listed by those manifests can be read; a pull (a transfer between sites) needs the
service's own token.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from dataclasses import dataclass

PREFIX = "scoped."
#: How long a scoped token is good for unless said otherwise (seconds).
LIFETIME_S = 7 * 24 * 3600.0


@dataclass(frozen=True)
class Scope:
    names: str  # manifest names start with this
    folders: tuple[tuple[str, str], ...]  # (volume, path prefix) a checkin or checkout may use
    until: float

    def may_name(self, name: str) -> bool:
        return bool(self.names) and name.startswith(self.names)

    def may_folder(self, volume: str, path: str) -> bool:
        return any(v == volume and path.startswith(p) for v, p in self.folders if p)


def _mac(key: str, body: bytes) -> str:
    return hmac.new(key.encode(), body, hashlib.sha256).hexdigest()


def issue(
    key: str,
    *,
    names: str,
    folders: list[tuple[str, str]],
    lifetime_s: float = LIFETIME_S,
    now: float | None = None,
) -> str:
    """A token for `key`'s service, good for this scope only."""
    until = (time.time() if now is None else now) + lifetime_s
    value = {"names": names, "folders": [list(f) for f in folders], "until": round(until)}
    body = base64.urlsafe_b64encode(json.dumps(value, sort_keys=True).encode()).rstrip(b"=")
    return f"{PREFIX}{body.decode()}.{_mac(key, body)}"


def check(key: str, token: str, *, now: float | None = None) -> Scope | None:
    """The token's scope if `key`'s service made it and it has not ended; else None."""
    if not token.startswith(PREFIX):
        return None
    body, _, mac = token[len(PREFIX) :].rpartition(".")
    if not body or not hmac.compare_digest(mac, _mac(key, body.encode())):
        return None
    try:
        value = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
        scope = Scope(
            str(value["names"]),
            tuple((str(v), str(p)) for v, p in value["folders"]),
            float(value["until"]),
        )
    except (ValueError, KeyError, TypeError):
        return None
    return scope if scope.until > (time.time() if now is None else now) else None
