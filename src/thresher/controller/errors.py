"""Every error leaves the controller as JSON: {"error": code, "message": text, "field": name};
a request refused for several problems at once also lists them: "errors": [{field, message}]."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from thresher.core.errors import (
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    Problems,
    ThresherDomainError,
    Unavailable,
)
from thresher.schemas.base import ErrorOut

log = logging.getLogger("thresher.controller")

#: Documented on every route (OpenAPI): each status a route may answer with an error, and its
#: body. A route documents its own when it answers another shape (the Deadline routes).
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorOut, "description": text}
    for status, text in (
        (400, "the request cannot be served as sent"),
        (401, "no token, or one that is not known, expired or revoked"),
        (403, "the token's role or owner may not do this"),
        (404, "no such object"),
        (409, "the object's state does not allow this now"),
        (413, "the request body is too large"),
        (422, "a field is invalid: `field` names it, `errors` lists every problem"),
        (503, "the database cannot be reached now: retry after Retry-After seconds"),
    )
}

_STATUS: list[tuple[type[ThresherDomainError], int]] = [
    (InvalidInput, 422),
    (NotFound, 404),
    (Conflict, 409),
    (Forbidden, 403),
    (Unavailable, 503),
]


class Unauthorized(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def error_response(
    status: int, code: str, message: str, field: str | None = None, **extra: Any
) -> JSONResponse:
    return JSONResponse(
        {"error": code, "message": message, "field": field, **extra}, status_code=status
    )


def _field(loc: tuple[object, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path")]
    return ".".join(parts) or "body"


def install(app: FastAPI) -> None:
    @app.exception_handler(ThresherDomainError)
    async def domain_error(_: Request, exc: ThresherDomainError) -> JSONResponse:
        status = next((s for cls, s in _STATUS if isinstance(exc, cls)), 400)
        if isinstance(exc, Problems):  # every problem of the request, each with its field
            listed = [{"field": p.field, "message": p.message} for p in exc.problems]
            return error_response(status, exc.code, exc.message, exc.field, errors=listed)
        response = error_response(status, exc.code, exc.message, exc.field)
        if status == 503:
            log.warning("answered 503: %s", exc.message)
            response.headers["Retry-After"] = "1"
        return response

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        first = errors[0] if errors else {"loc": (), "msg": "invalid request"}
        field = _field(tuple(first.get("loc", ())))
        listed = [
            {"field": _field(tuple(e.get("loc", ()))), "message": e.get("msg")} for e in errors
        ]
        message = "; ".join(f"{p['field']}: {p['message']}" for p in listed)
        return error_response(422, "invalid", message, field, errors=listed)

    @app.exception_handler(Unauthorized)
    async def unauthorized(_: Request, exc: Unauthorized) -> JSONResponse:
        response = error_response(401, "unauthorized", exc.message, "Authorization")
        response.headers["WWW-Authenticate"] = "Bearer"
        return response

    @app.exception_handler(Exception)
    async def internal_error(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", exc_info=exc)
        return error_response(500, "internal", f"internal error: {exc.__class__.__name__}")

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, exc: HTTPException) -> JSONResponse:
        code = "not_found" if exc.status_code == 404 else "http_error"
        return error_response(exc.status_code, code, str(exc.detail))
