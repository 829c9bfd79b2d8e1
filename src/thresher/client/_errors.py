"""The client's one error tree. Transport errors (httpx's, the lean transports') are translated
here and nowhere else.

ThresherError
 ├── TransportError          the controller could not be reached (connection refused, timeout)
 └── APIError                the controller answered with an error body
      ├── Unauthorized       401: no token, or an unknown one
      ├── Forbidden          403: the token may not do this
      ├── NotFound           404
      ├── Conflict           409
      │    └── StaleAttempt  409 on an attempt report: the fencing token is no longer current
      └── InvalidRequest     422: names the field and the problem
"""

from __future__ import annotations

import json
from typing import Any, Protocol


class ThresherError(Exception):
    """Base of every error the client raises."""


class TransportError(ThresherError):
    pass


class APIError(ThresherError):
    def __init__(self, status: int, code: str, message: str, field: str | None) -> None:
        super().__init__(f"{message} (field: {field})" if field else message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.errors: list[dict[str, Any]] = []
        """Every issue, when the answer lists several (a refused OpenJD template's, each with
        its `location` and `message`)."""


class Unauthorized(APIError):
    pass


class Forbidden(APIError):
    pass


class NotFound(APIError):
    pass


class Conflict(APIError):
    pass


class StaleAttempt(Conflict):
    pass


class InvalidRequest(APIError):
    pass


_BY_STATUS: dict[int, type[APIError]] = {
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    422: InvalidRequest,
}


class Answered(Protocol):
    """An HTTP answer as the client reads it (httpx's, or the lean transports' `Reply`)."""

    @property
    def status_code(self) -> int: ...
    @property
    def content(self) -> bytes: ...
    @property
    def reason_phrase(self) -> str: ...
    @property
    def is_success(self) -> bool: ...


def raise_for(response: Answered) -> None:
    """Raise the matching APIError for an error response; return on success."""
    if response.is_success:
        return
    raise error_for(response.status_code, response.content, response.reason_phrase)


def error_for(status: int, content: bytes, reason: str) -> APIError:
    """The APIError for an error answer: its status, body and reason phrase."""
    try:
        body = json.loads(content)
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    text = content.decode("utf-8", "replace")
    code = str(body.get("error", "http_error"))
    message = str(body.get("message") or body.get("detail") or text or reason)
    field = body.get("field")
    cls = _BY_STATUS.get(status, APIError)
    if cls is Conflict and code == "stale_attempt":
        cls = StaleAttempt
    error = cls(status, code, message, field if isinstance(field, str) else None)
    issues = body.get("errors")
    if isinstance(issues, list):
        error.errors = [dict(issue) for issue in issues if isinstance(issue, dict)]
    return error


def translate(exc: Exception) -> TransportError:
    return TransportError(f"cannot reach the controller: {exc.__class__.__name__}: {exc}")
