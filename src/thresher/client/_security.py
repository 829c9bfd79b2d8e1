"""The security calls of `Client`: accounts, own tokens, enrolment codes, the audit trail."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from thresher.client._session import Session
from thresher.schemas import security as sec


class SecurityCalls(Session):
    """People's accounts, tokens, one-time enrolment codes and the audit trail."""

    def _json(self, method: str, path: str, body: Any = None, **params: Any) -> Any:
        query = {k: v for k, v in params.items() if v is not None}
        return self._call(method, path, json=body, params=query).json()

    # -- accounts -------------------------------------------------------------------------------

    def me(self) -> sec.AccountOut:
        """Who this client's token names: user, role, groups."""
        return sec.AccountOut.model_validate(self._json("GET", "/api/v1/accounts/me"))

    def accounts(self) -> list[sec.AccountOut]:
        return sec.AccountList.model_validate(self._json("GET", "/api/v1/accounts")).accounts

    def put_account(
        self, name: str, *, role: str = "artist", groups: Sequence[str] = ()
    ) -> sec.AccountOut:
        """Admins: create a user or set its role and groups."""
        body = {"role": role, "groups": list(groups)}
        return sec.AccountOut.model_validate(self._json("PUT", f"/api/v1/accounts/{name}", body))

    def remove_account(self, name: str) -> None:
        """Admins: disable a user and revoke all its tokens."""
        self._call("DELETE", f"/api/v1/accounts/{name}")

    # -- tokens ---------------------------------------------------------------------------------

    def create_own_token(
        self, label: str = "", *, role: str | None = None, expires_in_s: float | None = None
    ) -> sec.TokenCreatedOut:
        """A token for yourself (at most your role); its secret is in the answer, once."""
        body = {"label": label, "role": role, "expires_in_s": expires_in_s}
        return sec.TokenCreatedOut.model_validate(self._json("POST", "/api/v1/tokens", body))

    def tokens(self, *, everyone: bool = False, revoked: bool = False) -> list[sec.TokenInfoOut]:
        """Your tokens (admins, `everyone`: all), never their secrets."""
        params = {"all": everyone or None, "revoked": revoked or None}
        return sec.TokenInfoList.model_validate(
            self._json("GET", "/api/v1/tokens", **params)
        ).tokens

    def revoke_token(self, token_id: int) -> None:
        self._call("DELETE", f"/api/v1/tokens/{token_id}")

    # -- enrolment codes ------------------------------------------------------------------------

    def create_enrol_code(self, *, ttl_s: float | None = None) -> sec.EnrolCodeOut:
        """Wranglers: a one-time code a worker exchanges for its own token."""
        return sec.EnrolCodeOut.model_validate(
            self._json("POST", "/api/v1/enrol-codes", {"ttl_s": ttl_s})
        )

    def enrol_codes(self) -> list[sec.EnrolCodeInfo]:
        return sec.EnrolCodeList.model_validate(self._json("GET", "/api/v1/enrol-codes")).codes

    def revoke_enrol_code(self, code_id: int) -> None:
        self._call("DELETE", f"/api/v1/enrol-codes/{code_id}")

    # -- audit ----------------------------------------------------------------------------------

    def audit(
        self,
        *,
        actor: str | None = None,
        since: float | None = None,
        contains: str | None = None,
        limit: int = 100,
        before: int | None = None,
    ) -> list[sec.AuditOut]:
        """The audit trail, newest first (wranglers, admins)."""
        params = {
            "actor": actor,
            "since": since,
            "contains": contains,
            "limit": limit,
            "before": before,
        }
        return sec.AuditList.model_validate(self._json("GET", "/api/v1/audit", **params)).entries
