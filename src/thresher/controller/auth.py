"""Who is calling: roles, the caller of a bearer token, tokens issued (stored as SHA-256
hashes, shown once).

Roles (docs/security.md): people are `admin` (everything), `wrangler` (any job, workers,
pools, limits, preemption and dedicated pools), `artist` (own jobs) and `viewer` (read only);
machines hold `worker` tokens (one per enrolled worker: the agent routes, its own tasks) and
`enrol` tokens (enrolment only). The old role `user` is `artist` (migration 0003)."""

from __future__ import annotations

import hashlib
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from thresher.core.clock import Clock
from thresher.core.errors import Forbidden, InvalidInput
from thresher.store.store import Store, TokenRecord

ADMIN, WRANGLER, ARTIST, VIEWER = "admin", "wrangler", "artist", "viewer"
WORKER, ENROL = "worker", "enrol"
#: People's roles, least to most powerful: a person may give a token at most their own role.
PEOPLE = (VIEWER, ARTIST, WRANGLER, ADMIN)
ROLES = (*PEOPLE, ENROL, WORKER)
#: Older names still accepted when a token is asked for.
ALIASES = {"user": ARTIST}
#: Who may see and act on any job (the others: their own, and see their groups').
ANY_JOB = frozenset({ADMIN, WRANGLER})


def role_named(role: str, *, field_name: str = "role") -> str:
    """`role` as stored (aliases resolved); InvalidInput naming the field if unknown."""
    role = ALIASES.get(role, role)
    if role not in ROLES:
        raise InvalidInput(f"unknown role {role!r}; one of {', '.join(ROLES)}", field=field_name)
    return role


def hash_secret(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


hash_token = hash_secret


def enrol_code_hash(code: str) -> str:
    """The stored hash of a one-time enrolment code, however it was typed (case, dashes)."""
    return hash_secret(code.strip().upper().replace("-", "").replace(" ", ""))


def new_token(prefix: str) -> str:
    return f"thr_{prefix}_{secrets.token_urlsafe(24)}"


@dataclass(frozen=True)
class Caller:
    token_id: int
    name: str
    role: str
    groups: frozenset[str] = field(default_factory=frozenset)
    #: The hash of the bearer token it came from ("" for an access key's), so the farm can
    #: confirm it is still good (`Access.confirm`).
    token_hash: str = field(default="", repr=False, compare=False)

    @property
    def is_admin(self) -> bool:
        return self.role == ADMIN

    @property
    def sees_every_job(self) -> bool:
        return self.role in ANY_JOB

    def require(self, *roles: str) -> None:
        if self.role not in roles:
            raise Forbidden(f"this needs a token with role {' or '.join(roles)}, not {self.role}")

    def may_give(self, role: str) -> bool:
        """Whether this caller may issue a token of `role` for itself: at most its own."""
        if self.role not in PEOPLE or role not in PEOPLE:
            return self.is_admin
        return PEOPLE.index(role) <= PEOPLE.index(self.role)


def issue_token(
    store: Store,
    clock: Clock,
    *,
    name: str,
    role: str,
    label: str | None = None,
    created_by: str | None = None,
    expires_at: float | None = None,
) -> tuple[int, str]:
    """A new token (in the caller's transaction): (id, the secret, which is never stored)."""
    token = new_token(role)
    token_id = store.tokens.add(
        name=name,
        role=role,
        token_hash=hash_secret(token),
        now=clock.now(),
        label=label,
        created_by=created_by,
        expires_at=expires_at,
    )
    return token_id, token


def private_dir(path: Path) -> None:
    """Create the data directory (and parents) readable by its owner only (0700); an existing
    one is made so: it holds the database, the admin token and the sealing key."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path, 0o700)


def write_private(path: Path, text: str) -> None:
    """Write `text` to a file only its owner may read (0600 from the start, no window)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.chmod(path, 0o600)


def ensure_admin_token(store: Store, clock: Clock, data_dir: Path) -> str | None:
    """On first start (no working admin token yet) create one and write it to
    <data-dir>/admin-token with mode 600. Returns the file's path as text when it was created."""
    if store.tokens.count(ADMIN):
        return None
    _, token = issue_token(store, clock, name="admin", role=ADMIN, label="first admin token")
    path = data_dir / "admin-token"
    write_private(path, token + "\n")
    return str(path)


def caller_for(store: Store, token: str, now: float) -> Caller | None:
    """The caller a bearer token names, looked up now: None when it is unknown, revoked,
    expired, or its user is disabled."""
    return caller_of_hash(store, hash_secret(token), now)


def caller_of_hash(store: Store, token_hash: str, now: float) -> Caller | None:
    return caller_of_record(store.tokens.find(token_hash, now=now), token_hash)


def caller_of_record(record: TokenRecord | None, token_hash: str) -> Caller | None:
    """The caller of a token's record as found (None: the token does not work now)."""
    if record is None:
        return None
    return Caller(
        record.id, record.name, record.role, frozenset(record.groups), token_hash=token_hash
    )
