"""Who is calling: bearer tokens and Deadline-style access keys, issued by admins."""

from __future__ import annotations

import secrets
import string
from datetime import UTC, datetime

from thresher.controller.auth import Caller, KnownCallers, caller_for, issue_token
from thresher.controller.sigv4 import Authorization, SignatureError, SignedRequest, verify
from thresher.controller.unit import UnitOfWork
from thresher.core.clock import Clock
from thresher.store.store import Store


class Access:
    """Tokens and access keys: issue them, and find the caller a credential names."""

    def __init__(self, store: Store, clock: Clock, unit: UnitOfWork) -> None:
        self.store, self.clock, self.unit = store, clock, unit
        self.known_callers = KnownCallers(store)  # bearer tokens recently found valid

    def known(self, token: str) -> Caller | None:
        """The caller of a token found valid a moment ago, without asking the store."""
        return self.known_callers.cached(token)

    def caller(self, token: str) -> Caller | None:
        """The caller a bearer token names (kept a while), or None."""
        return self.known_callers.caller(token)

    def caller_uncached(self, token: str) -> Caller | None:
        """The caller a token names, looked up now (for tokens that arrive outside headers)."""
        return caller_for(self.store, token)

    def create_token(self, caller: Caller, name: str, role: str) -> tuple[int, str]:
        """Admins: a new token; its secret is returned once and stored hashed."""
        caller.require("admin")
        with self.unit.transaction():
            return issue_token(self.store, self.clock, name=name, role=role)

    def create_access_key(self, caller: Caller, name: str, role: str) -> tuple[str, str]:
        """Admins: an AWS-style key pair acting as a new token of `role`; (key id, secret)."""
        caller.require("admin")
        alphabet = string.ascii_uppercase + string.digits
        key_id = "THR" + "".join(secrets.choice(alphabet) for _ in range(17))
        secret = secrets.token_urlsafe(30)
        with self.unit.transaction():
            token_id, _ = issue_token(self.store, self.clock, name=name, role=role)
            self.store.access_keys.add(
                access_key_id=key_id, secret=secret, token_id=token_id, now=self.clock.now()
            )
        return key_id, secret

    def signed_caller(self, signed: SignedRequest, auth: Authorization) -> Caller:
        """The caller whose access key signed the request (SigV4); SignatureError if none."""
        found = self.store.access_keys.find(auth.access_key_id)
        if found is None:
            raise SignatureError(
                "UnrecognizedClientException",
                "The security token included in the request is invalid.",
            )
        secret, token = found
        verify(signed, auth, secret, now=datetime.fromtimestamp(self.clock.now(), UTC))
        return Caller(token.id, token.name, token.role)
