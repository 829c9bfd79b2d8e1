"""The domain's error tree.

ThresherDomainError
 ├── InvalidInput        bad input from a user (maps to 422); names the field
 ├── NotFound            no such object (404)
 ├── Conflict            the object's state forbids the change (409)
 │    └── StaleAttempt   an event or finish carried a fencing token that is no longer current
 └── Forbidden           the caller may not do this (403)
"""

from __future__ import annotations


class ThresherDomainError(Exception):
    code = "error"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class InvalidInput(ThresherDomainError):
    code = "invalid"


class NotFound(ThresherDomainError):
    code = "not_found"


class Conflict(ThresherDomainError):
    code = "conflict"


class StaleAttempt(Conflict):
    code = "stale_attempt"


class Forbidden(ThresherDomainError):
    code = "forbidden"
