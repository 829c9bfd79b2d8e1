"""Security routes: people's accounts, their own tokens, one-time worker enrolment codes (and
the enrolment that spends one), the audit trail. Who may call each: `controller/policy.py`."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from thresher.controller.routes.deps import MAX_ID, CallerDep, FarmDep
from thresher.schemas import api
from thresher.schemas import security as schema
from thresher.store.records import TokenInfo, UserAccount

router = APIRouter(prefix="/api/v1", tags=["security"])
enrol_router = APIRouter(prefix="/api/v1/agent", tags=["agent"])

UserName = Annotated[
    str, Path(min_length=1, max_length=200, pattern=r"^[\w.@-]+$", description="user name")
]
IdPath = Annotated[int, Path(ge=0, le=MAX_ID)]


def _account(a: UserAccount) -> schema.AccountOut:
    return schema.AccountOut(
        name=a.name,
        role=a.role,
        groups=list(a.groups),
        created_at=a.created_at,
        disabled=a.disabled,
    )


def _token(t: TokenInfo) -> schema.TokenInfoOut:
    return schema.TokenInfoOut(
        id=t.id,
        name=t.name,
        role=t.role,
        label=t.label,
        created_by=t.created_by,
        created_at=t.created_at,
        expires_at=t.expires_at,
        revoked=t.revoked,
    )


# -- accounts -------------------------------------------------------------------------------


@router.get("/accounts", response_model=schema.AccountList)
async def list_accounts(farm: FarmDep, caller: CallerDep) -> schema.AccountList:
    """People with their role and groups (wranglers, admins)."""
    found = await farm.call(farm.access.accounts)
    return schema.AccountList(accounts=[_account(a) for a in found])


@router.get("/accounts/me", response_model=schema.AccountOut)
async def me(farm: FarmDep, caller: CallerDep) -> schema.AccountOut:
    """Who the token names: user, role, groups."""
    return _account(await farm.call(farm.access.me, caller))


@router.put("/accounts/{name}", response_model=schema.AccountOut)
async def put_account(
    name: UserName, body: schema.AccountIn, farm: FarmDep, caller: CallerDep
) -> schema.AccountOut:
    """Create a user or set its role and groups (admins); its tokens follow the new role."""
    found = await farm.call(
        farm.access.put_account, caller, name, role=body.role, groups=body.groups
    )
    return _account(found)


@router.delete("/accounts/{name}", status_code=204)
async def remove_account(name: UserName, farm: FarmDep, caller: CallerDep) -> None:
    """Disable a user and revoke all its tokens (admins); its jobs stay."""
    await farm.call(farm.access.remove_account, caller, name)


# -- tokens ---------------------------------------------------------------------------------


@router.post("/tokens", status_code=201, response_model=schema.TokenCreatedOut)
async def create_own_token(
    body: schema.OwnTokenIn, farm: FarmDep, caller: CallerDep
) -> schema.TokenCreatedOut:
    """A token for yourself, with at most your role; shown this once."""
    info, token = await farm.call(
        farm.access.create_own_token,
        caller,
        label=body.label,
        role=body.role,
        expires_in_s=body.expires_in_s,
    )
    return schema.TokenCreatedOut(**_token(info).model_dump(), token=token)


@router.get("/tokens", response_model=schema.TokenInfoList)
async def list_tokens(
    farm: FarmDep,
    caller: CallerDep,
    everyone: Annotated[bool, Query(alias="all", description="every token (admins)")] = False,
    revoked: Annotated[bool, Query(description="revoked ones too")] = False,
) -> schema.TokenInfoList:
    """Your tokens (never their secrets); an admin's `all=true`: everyone's."""
    found = await farm.call(farm.access.tokens, caller, everyone=everyone, revoked=revoked)
    return schema.TokenInfoList(tokens=[_token(t) for t in found])


@router.delete("/tokens/{token_id}", status_code=204)
async def revoke_token(token_id: IdPath, farm: FarmDep, caller: CallerDep) -> None:
    """Revoke one of your tokens (admins: anyone's); it fails from the next request on."""
    await farm.call(farm.access.revoke_token, caller, token_id)


# -- enrolment codes ------------------------------------------------------------------------


@router.post("/enrol-codes", status_code=201, response_model=schema.EnrolCodeOut)
async def create_enrol_code(
    body: schema.EnrolCodeIn, farm: FarmDep, caller: CallerDep
) -> schema.EnrolCodeOut:
    """A one-time code a worker exchanges for its own token (`thresher worker --code`)."""
    ttl_s = body.ttl_s or farm.settings.enrol_code_ttl_s
    code_id, code, expires_at = await farm.call(farm.access.create_enrol_code, caller, ttl_s)
    return schema.EnrolCodeOut(id=code_id, code=code, expires_at=expires_at)


@router.get("/enrol-codes", response_model=schema.EnrolCodeList)
async def list_enrol_codes(farm: FarmDep, caller: CallerDep) -> schema.EnrolCodeList:
    found = await farm.call(farm.access.enrol_codes, caller)
    return schema.EnrolCodeList(codes=[schema.EnrolCodeInfo.model_validate(c) for c in found])


@router.delete("/enrol-codes/{code_id}", status_code=204)
async def revoke_enrol_code(code_id: IdPath, farm: FarmDep, caller: CallerDep) -> None:
    await farm.call(farm.access.revoke_enrol_code, caller, code_id)


@enrol_router.post("/enrol", response_model=api.RegisterOut)
async def enrol(body: schema.EnrolIn, farm: FarmDep) -> api.RegisterOut:
    """Enrol a worker with a one-time code instead of a token: the code is the credential,
    spent by this call (a second use is refused, 409)."""
    registration = api.RegisterIn.model_validate(body.model_dump(exclude={"code"}))
    return await farm.call(farm.agents.enrol_with_code, body.code, registration)


# -- audit ----------------------------------------------------------------------------------


@router.get("/audit", response_model=schema.AuditList)
async def audit(
    farm: FarmDep,
    caller: CallerDep,
    actor: Annotated[str | None, Query(max_length=200)] = None,
    since: Annotated[float | None, Query(ge=0, description="unix time")] = None,
    contains: Annotated[
        str | None, Query(max_length=200, description="in action or object")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    before: Annotated[int | None, Query(ge=0, le=MAX_ID, description="entries before id")] = None,
) -> schema.AuditList:
    """Who did what to which object and when, newest first (wranglers, admins)."""
    found = await farm.call(
        farm.access.audit,
        caller,
        actor=actor,
        since=since,
        contains=contains,
        limit=limit,
        before_id=before,
    )
    return schema.AuditList(entries=[schema.AuditOut(**vars(e)) for e in found])
