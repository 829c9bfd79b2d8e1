"""Bearer tokens: stored as SHA-256 hashes, shown once when created."""

from __future__ import annotations

import hashlib
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from thresher.core.clock import Clock
from thresher.core.errors import Forbidden
from thresher.store.store import Store, TokenRecord

ROLES = ("admin", "user", "enrol", "worker")


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token(prefix: str) -> str:
    return f"thr_{prefix}_{secrets.token_urlsafe(24)}"


@dataclass(frozen=True)
class Caller:
    token_id: int
    name: str
    role: str

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    def require(self, *roles: str) -> None:
        if self.role not in roles:
            raise Forbidden(f"this needs a token with role {' or '.join(roles)}, not {self.role}")


def issue_token(store: Store, clock: Clock, *, name: str, role: str) -> tuple[int, str]:
    token = new_token(role)
    token_id = store.tokens.add(name=name, role=role, token_hash=hash_token(token), now=clock.now())
    return token_id, token


def ensure_admin_token(store: Store, clock: Clock, data_dir: Path) -> str | None:
    """On first start (no admin token yet) create one and write it to <data-dir>/admin-token
    with mode 600. Returns the file's path as text when it was created."""
    if store.tokens.count("admin"):
        return None
    _, token = issue_token(store, clock, name="admin", role="admin")
    path = data_dir / "admin-token"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(token + "\n")
    os.chmod(path, 0o600)
    return str(path)


class KnownCallers:
    """Tokens recently found valid, so that a worker's every poll does not look its token up
    again (a round trip to the database each). Only known tokens are kept, for `ttl_s`
    seconds; an unknown one is always looked up.

    The time to live is longer than a held poll (20 s): an idle worker polls about that
    often, and with a shorter one each of its polls looked its token up (a thousand workers
    polling every few seconds missed the 5 s it used to be on every poll). Tokens are only
    revoked in the database so far; a token revoked there works here for up to `ttl_s`."""

    def __init__(self, store: Store, *, ttl_s: float = 60.0, size: int = 20_000) -> None:
        self.store, self.ttl_s, self.size = store, ttl_s, size
        self._known: dict[str, tuple[Caller, float]] = {}

    def cached(self, token: str) -> Caller | None:
        """The caller of a token found valid less than `ttl_s` ago; None otherwise."""
        found = self._known.get(token)
        if found is not None and found[1] > time.monotonic():
            return found[0]
        return None

    def caller(self, token: str) -> Caller | None:
        found = self.cached(token)
        if found is not None:
            return found
        now = time.monotonic()
        caller = caller_for(self.store, token)
        if caller is not None:
            if len(self._known) >= self.size:
                self._known.clear()
            self._known[token] = (caller, now + self.ttl_s)
        return caller


def caller_for(store: Store, token: str) -> Caller | None:
    record: TokenRecord | None = store.tokens.find(hash_token(token))
    return Caller(record.id, record.name, record.role) if record else None
