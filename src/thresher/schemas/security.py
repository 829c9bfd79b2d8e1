"""The HTTP contract of security: people's accounts, tokens, enrolment codes, the audit trail."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field, StringConstraints

from thresher.schemas.agent import RegisterIn
from thresher.schemas.base import Strict

PersonRole = Literal["admin", "wrangler", "artist", "viewer"]
GroupName = Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=r"^[\w.@-]+$")]
#: Ten years: the longest a token may be asked to live.
MAX_LIFE_S = 10 * 365 * 86400


class AccountIn(Strict):
    role: PersonRole = "artist"
    groups: list[GroupName] = Field(default_factory=list, max_length=100)


class AccountOut(BaseModel):
    name: str
    role: str
    groups: list[str]
    created_at: float
    disabled: bool


class AccountList(BaseModel):
    accounts: list[AccountOut]


class OwnTokenIn(Strict):
    label: str = Field(default="", max_length=200, description="what the token is for")
    role: PersonRole | None = Field(default=None, description="at most your own; none: yours")
    expires_in_s: float | None = Field(
        default=None, gt=0, le=MAX_LIFE_S, description="seconds it works; none: no expiry"
    )


class TokenInfoOut(BaseModel):
    id: int
    name: str
    role: str
    label: str | None
    created_by: str | None
    created_at: float
    expires_at: float | None
    revoked: bool


class TokenCreatedOut(TokenInfoOut):
    token: str = Field(description="shown once; only its hash is stored")


class TokenInfoList(BaseModel):
    tokens: list[TokenInfoOut]


class EnrolCodeIn(Strict):
    ttl_s: float | None = Field(
        default=None, gt=0, le=30 * 86400, description="seconds it may be used; none: a day"
    )


class EnrolCodeOut(BaseModel):
    id: int
    code: str = Field(description="shown once; used once; only its hash is stored")
    expires_at: float


class EnrolCodeInfo(BaseModel):
    id: int
    created_by: str
    created_at: float
    expires_at: float
    used_at: float | None
    used_by: str | None
    revoked: bool


class EnrolCodeList(BaseModel):
    codes: list[EnrolCodeInfo]


class EnrolIn(RegisterIn):
    """A worker's registration with the one-time code it was given."""

    code: str = Field(min_length=4, max_length=40)


class AuditOut(BaseModel):
    id: int
    at: float
    actor: str
    role: str
    action: str
    object: str
    status: int


class AuditList(BaseModel):
    entries: list[AuditOut]
