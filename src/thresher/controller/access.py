"""Who is calling and what they hold: bearer tokens (issued, listed, revoked, expiring),
people's accounts (role and groups), one-time worker enrolment codes, Deadline-style access
keys (secrets sealed at rest) and the audit trail."""

from __future__ import annotations

import hmac
import secrets
import string
import threading
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime

from thresher.controller import queue_keys
from thresher.controller.auth import (
    ADMIN,
    ANY_JOB,
    PEOPLE,
    Caller,
    caller_for,
    caller_of_hash,
    caller_of_record,
    enrol_code_hash,
    hash_secret,
    issue_token,
    role_named,
)
from thresher.controller.errors import Unauthorized
from thresher.controller.sealing import SecretBox
from thresher.controller.sigv4 import Authorization, SignatureError, SignedRequest, verify
from thresher.controller.unit import UnitOfWork
from thresher.core.clock import Clock
from thresher.core.errors import Forbidden, InvalidInput, NotFound
from thresher.store.records import AuditEntry, TokenInfo, UserAccount
from thresher.store.store import Store

#: One-time codes: short enough to type from a screen, 8 characters of 32 (40 bits), used
#: once and expiring; stored hashed.
CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
CODE_LENGTH = 8
#: Tokens remembered (then forgotten all at once): a farm's workers and people.
KNOWN_MAX = 20_000


def new_enrol_code() -> str:
    code = "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))
    return f"{code[:4]}-{code[4:]}"


class Access:
    """Tokens, accounts, enrolment codes, access keys, the audit trail."""

    def __init__(
        self, store: Store, clock: Clock, unit: UnitOfWork, box: SecretBox, *, max_life_s: float
    ) -> None:
        self.store, self.clock, self.unit, self.box = store, clock, unit, box
        self.max_life_s = max_life_s
        self._known: dict[str, Caller] = {}  # token hash -> caller, confirmed on each use
        # Audit rows' answers not yet written (`answered`, `settle_answers`).
        self._answers: list[tuple[int, str, int]] = []
        self._answers_due = False
        self._answers_lock = threading.Lock()

    # -- who calls --------------------------------------------------------------------------------
    #
    # Every request's token is looked up in the database, so that a token revoked (or expired,
    # or whose user was removed or changed role) is refused from the next request on, on every
    # controller, even when it was changed by hand there. A token seen before is taken from
    # `_known` on the event loop, and its lookup runs on the farm thread as the first step of
    # the request's use case (`Farm.call`, `confirm`): one query, no extra hand-off.

    def known(self, token: str) -> Caller | None:
        """The caller of a token seen before (event loop, no store call): still to confirm."""
        return self._known.get(hash_secret(token))

    def caller(self, token: str) -> Caller | None:
        """The caller a bearer token names now, or None (unknown, expired, revoked)."""
        found = caller_for(self.store, token, self.clock.now())
        if found is not None:
            self._remember(found)
        return found

    def confirm(self, caller: Caller) -> Caller:
        """`caller` as the database says now (a changed role, groups); Unauthorized when its
        token no longer works."""
        return self._as_found(
            caller, caller_of_hash(self.store, caller.token_hash, self.clock.now())
        )

    def confirm_many(self, callers: Sequence[Caller]) -> list[Caller | Unauthorized]:
        """`confirm` for several callers (polls queued together) with one read of their
        tokens: for each, the caller as the database says now, or its Unauthorized."""
        records = self.store.tokens.find_many([c.token_hash for c in callers], now=self.clock.now())
        out: list[Caller | Unauthorized] = []
        for caller in callers:
            found = caller_of_record(records.get(caller.token_hash), caller.token_hash)
            try:
                out.append(self._as_found(caller, found))
            except Unauthorized as exc:
                out.append(exc)
        return out

    def _as_found(self, caller: Caller, fresh: Caller | None) -> Caller:
        """`caller` confirmed by what its token's look-up found (`fresh`)."""
        if fresh is None:
            self._known.pop(caller.token_hash, None)
            raise Unauthorized("the token is not known, expired or was revoked")
        if fresh != caller:
            self._remember(fresh)
            return fresh
        return caller

    def _remember(self, caller: Caller) -> None:
        if len(self._known) >= KNOWN_MAX:
            self._known.clear()
        self._known[caller.token_hash] = caller

    # -- tokens -----------------------------------------------------------------------------------

    def _expiry(self, expires_in_s: float | None) -> float | None:
        if expires_in_s is None:
            if self.max_life_s:
                return self.clock.now() + self.max_life_s
            return None
        if self.max_life_s and expires_in_s > self.max_life_s:
            raise InvalidInput(
                f"a token may live {self.max_life_s:.0f} s at most on this farm",
                field="expires_in_s",
            )
        return self.clock.now() + expires_in_s

    def create_token(
        self,
        caller: Caller,
        name: str,
        role: str,
        *,
        label: str | None = None,
        expires_in_s: float | None = None,
    ) -> tuple[int, str]:
        """Admins: a token for anyone; its secret is returned once and stored hashed."""
        caller.require(ADMIN)
        role = role_named(role)
        with self.unit.transaction():
            return issue_token(
                self.store,
                self.clock,
                name=name,
                role=role,
                label=label,
                created_by=caller.name,
                expires_at=self._expiry(expires_in_s),
            )

    def create_own_token(
        self, caller: Caller, *, label: str, role: str | None, expires_in_s: float | None
    ) -> tuple[TokenInfo, str]:
        """A person: a token for themselves with at most their own role; (it, its secret)."""
        caller.require(*PEOPLE)
        wanted = role_named(role) if role else caller.role
        if not caller.may_give(wanted):
            raise Forbidden(f"a {caller.role} cannot make a {wanted} token", field="role")
        with self.unit.transaction():
            token_id, token = issue_token(
                self.store,
                self.clock,
                name=caller.name,
                role=wanted,
                label=label,
                created_by=caller.name,
                expires_at=self._expiry(expires_in_s),
            )
            info = self.store.tokens.get(token_id)
        assert info is not None
        return info, token

    def tokens(self, caller: Caller, *, everyone: bool, revoked: bool) -> list[TokenInfo]:
        """The caller's tokens; an admin's `everyone`: all tokens."""
        caller.require(*PEOPLE)
        if everyone:
            caller.require(ADMIN)
        return self.store.tokens.listed(name=None if everyone else caller.name, revoked=revoked)

    def revoke_token(self, caller: Caller, token_id: int) -> TokenInfo:
        """Revoke one of the caller's tokens (an admin: anyone's). It fails from the next
        request on, on every controller (tokens are looked up on each request)."""
        found = self.store.tokens.get(token_id)
        if found is None or (found.name != caller.name and not caller.is_admin):
            raise NotFound(f"no token {token_id} of yours", field="token_id")
        with self.unit.transaction():
            self.store.tokens.revoke(token_id)
        return found

    # -- people -----------------------------------------------------------------------------------

    def put_account(
        self, caller: Caller, name: str, *, role: str, groups: list[str]
    ) -> UserAccount:
        """Admins: create a user or change its role and groups. From the next request on, the
        user's tokens of its old role take the new one, and none keeps a role above it (a
        viewer token made for a dashboard stays a viewer token)."""
        caller.require(ADMIN)
        role = role_named(role)
        if role not in PEOPLE:
            raise InvalidInput(f"a user's role is one of {', '.join(PEOPLE)}", field="role")
        above = PEOPLE[PEOPLE.index(role) + 1 :]
        with self.unit.transaction():
            before = self.store.users.get(name)
            self.store.users.put(name, role=role, groups=sorted(set(groups)), now=self.clock.now())
            followers = (before.role,) if before is not None else ()
            self.store.tokens.set_role_of(name, role, roles=(*followers, *above))
            found = self.store.users.get(name)
        assert found is not None
        return found

    def remove_account(self, caller: Caller, name: str) -> int:
        """Admins: disable a user and revoke every token of theirs; how many were revoked."""
        caller.require(ADMIN)
        if name == caller.name:
            raise InvalidInput("you cannot remove yourself", field="name")
        with self.unit.transaction():
            self.store.users.disable(name)
            return self.store.tokens.revoke_named(name)

    def accounts(self) -> list[UserAccount]:
        return self.store.users.all()

    def me(self, caller: Caller) -> UserAccount:
        """The caller's account, with the role of the token it called with."""
        found = self.store.users.get(caller.name)
        if found is None:  # a token issued without an account: its role, no groups
            return UserAccount(caller.name, caller.role, (), 0.0, False)
        return replace(found, role=caller.role)

    # -- enrolment codes --------------------------------------------------------------------------

    def create_enrol_code(self, caller: Caller, ttl_s: float) -> tuple[int, str, float]:
        """Wranglers: a one-time code a worker exchanges for its own token; (id, code, expiry)."""
        caller.require(*ANY_JOB)
        code = new_enrol_code()
        expires_at = self.clock.now() + ttl_s
        with self.unit.transaction():
            code_id = self.store.enrol_codes.add(
                code_hash=enrol_code_hash(code),
                created_by=caller.name,
                now=self.clock.now(),
                expires_at=expires_at,
            )
        return code_id, code, expires_at

    def revoke_enrol_code(self, caller: Caller, code_id: int) -> None:
        caller.require(*ANY_JOB)
        with self.unit.transaction():
            self.store.enrol_codes.revoke(code_id)

    def enrol_codes(self, caller: Caller) -> list[dict[str, object]]:
        caller.require(*ANY_JOB)
        return self.store.enrol_codes.listed()

    # -- access keys ------------------------------------------------------------------------------

    def create_access_key(self, caller: Caller, name: str, role: str) -> tuple[str, str]:
        """Admins: an AWS-style key pair acting as a new token of `role`; (key id, secret)."""
        caller.require(ADMIN)
        role = role_named(role)
        alphabet = string.ascii_uppercase + string.digits
        key_id = "THR" + "".join(secrets.choice(alphabet) for _ in range(17))
        secret = secrets.token_urlsafe(30)
        with self.unit.transaction():
            token_id, _ = issue_token(
                self.store, self.clock, name=name, role=role, label=f"access key {key_id}"
            )
            self.store.access_keys.add(
                access_key_id=key_id,
                sealed_secret=self.box.seal(secret),
                token_id=token_id,
                now=self.clock.now(),
            )
        return key_id, secret

    def seal_stored_secrets(self) -> int:
        """At start: seal the access-key secrets stored before sealing existed."""
        found = self.store.access_keys.unsealed()
        with self.unit.transaction():
            for key_id, secret in found:
                self.store.access_keys.seal(key_id, self.box.seal(secret))
        return len(found)

    def signed_caller(self, signed: SignedRequest, auth: Authorization) -> Caller:
        """The caller whose access key signed the request (SigV4); SignatureError if none."""
        caller, secret = self._access_key(auth.access_key_id)
        verify(signed, auth, secret, now=datetime.fromtimestamp(self.clock.now(), UTC))
        return caller

    def _access_key(self, key_id: str) -> tuple[Caller, str]:
        found = self.store.access_keys.find(key_id, now=self.clock.now())
        if found is None:
            raise SignatureError(
                "UnrecognizedClientException",
                "The security token included in the request is invalid.",
            )
        sealed, token = found
        caller = Caller(token.id, token.name, token.role, frozenset(token.groups))
        return caller, self.box.open(sealed)

    def queue_credentials(self, auth: Authorization) -> dict[str, object]:
        """AssumeQueueRoleForUser: credentials made from the access key that signed the
        (already verified) request, reading job attachments only (controller/queue_keys.py)."""
        _, secret = self._access_key(auth.access_key_id)
        key = queue_keys.make(auth.access_key_id, now=self.clock.now())
        return {
            "accessKeyId": key.key_id,
            "secretAccessKey": queue_keys.secret_of(secret, key),
            "sessionToken": queue_keys.session_token_of(secret, key),
            "expiration": key.expiry,
        }

    def queue_caller(self, signed: SignedRequest, auth: Authorization) -> Caller:
        """The person whose queue credentials signed the request (the job attachments
        endpoint); SignatureError for any other key, an expired one or a bad signature."""
        key = queue_keys.parse(auth.access_key_id)
        if key is None:
            raise SignatureError(
                "InvalidAccessKeyId",
                "only the credentials AssumeQueueRoleForUser gives may read job attachments",
            )
        if key.expiry < self.clock.now():
            raise SignatureError("ExpiredToken", "the queue credentials have expired")
        caller, secret = self._access_key(key.access_key_id)
        token = signed.headers.get("x-amz-security-token", "")
        if not hmac.compare_digest(token, queue_keys.session_token_of(secret, key)):
            raise SignatureError("InvalidToken", "the session token is not this key's")
        now = datetime.fromtimestamp(self.clock.now(), UTC)
        verify(signed, auth, queue_keys.secret_of(secret, key), now=now)
        return caller

    # -- audit ------------------------------------------------------------------------------------

    def record(self, caller: Caller | None, *, action: str, obj: str, status: int) -> None:
        """One audit row: who (the caller, or `-` when unauthenticated) did what to what."""
        self.store.audit.record(
            at=self.clock.now(),
            actor=caller.name if caller else "-",
            role=caller.role if caller else "-",
            action=action,
            obj=obj,
            status=status,
        )

    def answered(self, row_id: int, *, obj: str, status: int) -> bool:
        """Any thread: the answer of a call whose row its change wrote (its status, what it
        created), to be written by `settle_answers`. True for the first answer since the last
        `settle_answers` took them: the caller arranges the next one."""
        with self._answers_lock:
            self._answers.append((row_id, obj, status))
            first, self._answers_due = not self._answers_due, True
        return first

    def settle_answers(self) -> None:
        """On the farm thread: the answers noted (`answered`) written together; kept for the
        next try when the write fails."""
        with self._answers_lock:
            answers, self._answers, self._answers_due = self._answers, [], False
        try:
            self.store.audit.settle(answers)
        except Exception:
            with self._answers_lock:
                self._answers[:0] = answers
            raise

    def audit(
        self,
        caller: Caller,
        *,
        actor: str | None,
        since: float | None,
        contains: str | None,
        limit: int,
        before_id: int | None,
    ) -> list[AuditEntry]:
        caller.require(*ANY_JOB)
        self.settle_answers()  # the answers already given are in the trail it reads
        return self.store.audit.query(
            actor=actor, since=since, contains=contains, limit=limit, before_id=before_id
        )
