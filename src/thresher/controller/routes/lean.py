"""A lean route for the workers' hottest calls (poll, report): fewer layers per request.

FastAPI's request handler solves the dependencies, validates the body through its own field
machinery and then validates the returned model again and runs it through `jsonable_encoder`;
for a poll that answers in well under a millisecond those layers cost about as much as the work.
`LeanRoute` keeps FastAPI for what it documents (the OpenAPI operation is built from the
endpoint's signature as usual: its `body` model, `response_model`) and serves requests itself:

- the caller and the farm are found as `deps` finds them, on the event loop;
- the body is validated straight from its bytes by the endpoint's `body` model; a bad one is
  raised as FastAPI's `RequestValidationError`, so it is answered 422 {error, message, field}
  like on every other route;
- the endpoint gets `body`, `request`, `farm` and `caller` as keywords and returns a pydantic
  model, sent as JSON without being validated a second time.
"""

from __future__ import annotations

import typing
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import Response

from thresher.controller.routes.deps import get_caller, get_farm


def body_errors(exc: ValidationError) -> list[Any]:
    """pydantic's errors located as FastAPI locates a body's (under "body")."""
    return [
        {**e, "loc": ("body", *e.get("loc", ()))}
        for e in exc.errors(include_url=False, include_context=False)
    ]


class LeanRoute(APIRoute):
    """An APIRoute whose requests skip FastAPI's dependency solving and response validation
    (see the module's docstring for the endpoint's contract)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        endpoint = self.endpoint
        model: type[BaseModel] = typing.get_type_hints(endpoint)["body"]

        async def handle(request: Request) -> Response:
            caller = await get_caller(request)
            farm = await get_farm(request)
            try:
                body = model.model_validate_json(await request.body())
            except ValidationError as exc:
                raise RequestValidationError(body_errors(exc)) from None
            out: BaseModel = await endpoint(body=body, request=request, farm=farm, caller=caller)
            return Response(out.model_dump_json(), media_type="application/json")

        return handle
