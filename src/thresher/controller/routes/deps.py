"""Request dependencies: the farm and the authenticated caller."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Path, Request, Response
from pydantic import BaseModel

from thresher.controller import policy
from thresher.controller.auth import Caller
from thresher.controller.errors import Unauthorized
from thresher.controller.farm import UNCONFIRMED, Farm, Unconfirmed


# Both are coroutines so FastAPI calls them on the event loop: a plain function would be run
# in a thread pool, a hand-off that costs more than the work on every request.
async def get_farm(request: Request) -> Farm:
    farm: Farm = request.app.state.farm
    return farm


#: Why a request's token is refused: none sent, or not one the controller accepts.
NO_BEARER = "this needs 'Authorization: Bearer <token>'"
NOT_KNOWN = "the token is not known, expired or was revoked"


def bearer(request: Request) -> str:
    """The bearer token of the request; Unauthorized without one."""
    return bearer_of(request.headers.get("authorization", ""))


def bearer_of(header: str) -> str:
    """The bearer token of an Authorization header; Unauthorized without one."""
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized(NO_BEARER)
    return token.strip()


async def authorize(request: Request, token: str) -> Caller:
    """The caller `token` names, allowed by the route's policy entry (`controller/policy.py`).
    Looked up in the database on every request (a token seen before: in the hand-off of the
    route's use case, see `Farm.call`), so a revoked or expired token fails at once, on every
    controller. The caller is kept on the request for the audit trail."""
    farm = await get_farm(request)
    # The URL only where no route matched: building `request.url` costs a urlunsplit.
    route = getattr(request.scope.get("route"), "path", None) or request.url.path
    caller = farm.access.known(token)
    # a known token is looked up again in the hand-off of the route's use case
    UNCONFIRMED.set(None if caller is None else Unconfirmed(caller, request.method, route))
    if caller is None:
        caller = await farm.call(farm.access.caller, token)
    if caller is None:
        raise Unauthorized(NOT_KNOWN)
    request.state.caller = caller
    policy.check(caller, request.method, route)
    return caller


async def get_caller(request: Request) -> Caller:
    return await authorize(request, bearer(request))


async def json_answer(
    build: Callable[[], BaseModel], status_code: int = 200, *, small: bool = False
) -> Response:
    """The JSON of the model `build` makes, built and serialised in a worker thread: a big
    answer (a job of 1,000 blocks is 400 KB) never holds the event loop, so `/healthz` and
    held polls go on answering. A `small` one (a job of a few blocks: tens of microseconds)
    is built on the loop, sparing the hand-off to the thread and back. The route keeps its
    `response_model` for the documentation."""
    if small:
        body = build().model_dump_json()
    else:
        body = await asyncio.to_thread(lambda: build().model_dump_json())
    return Response(body, status_code=status_code, media_type="application/json")


FarmDep = Annotated[Farm, Depends(get_farm)]
CallerDep = Annotated[Caller, Depends(get_caller)]


#: Ids are 64-bit in the store; counts and indices 32-bit. A path or query number past them is
#: a 422 naming it, never an overflow deep in the database driver.
MAX_ID = 2**63 - 1
MAX_INDEX = 2**31 - 1
JobIdPath = Annotated[int, Path(ge=0, le=MAX_ID, description="job id", examples=[1])]
BlockPath = Annotated[
    int, Path(ge=0, le=MAX_INDEX, description="block index in its job", examples=[0])
]
TaskIndexPath = Annotated[
    int, Path(ge=0, le=MAX_INDEX, description="task index in its block", examples=[0])
]
