"""The domain's error tree.

ThresherDomainError
 ├── InvalidInput        bad input from a user (maps to 422); names the field
 │    └── Problems       several bad inputs of one request, reported together
 ├── NotFound            no such object (404)
 ├── Conflict            the object's state forbids the change (409)
 │    └── StaleAttempt   an event or finish carried a fencing token that is no longer current
 ├── Forbidden           the caller may not do this (403)
 └── Unavailable         the database cannot be reached or written now (503): try again
      └── Contended      a deadlock or serialisation failure: the transaction may run again
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence


class ThresherDomainError(Exception):
    code = "error"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class InvalidInput(ThresherDomainError):
    code = "invalid"


class Problems(InvalidInput):
    """Every problem found in one request, so a user mends them all in one go; `problems`
    lists each with its field. Its message and field are the first problem's when alone."""

    def __init__(self, problems: Sequence[InvalidInput]) -> None:
        self.problems = list(problems)
        if len(self.problems) == 1:
            message = self.problems[0].message
        else:
            listed = "; ".join(f"{p.field or 'request'}: {p.message}" for p in self.problems)
            message = f"{len(self.problems)} problems: {listed}"
        super().__init__(message, field=self.problems[0].field if self.problems else None)


class ProblemCollector:
    """Runs independent checks and keeps what each refuses, to raise them together."""

    def __init__(self) -> None:
        self.found: list[InvalidInput] = []

    @contextlib.contextmanager
    def check(self) -> Iterator[None]:
        """A check whose InvalidInput is kept instead of raised (a `Problems` is unpacked)."""
        try:
            yield
        except Problems as exc:
            self.found.extend(exc.problems)
        except InvalidInput as exc:
            self.found.append(exc)

    def raise_found(self) -> None:
        """Raise what the checks found: a lone error as it was, several as `Problems`."""
        if len(self.found) == 1:
            raise self.found[0]
        if self.found:
            raise Problems(self.found)


class NotFound(ThresherDomainError):
    code = "not_found"


class Conflict(ThresherDomainError):
    code = "conflict"


class StaleAttempt(Conflict):
    code = "stale_attempt"


class Forbidden(ThresherDomainError):
    code = "forbidden"


class Unavailable(ThresherDomainError):
    """The database cannot be reached or written right now (down, restarting, disk full)."""

    code = "unavailable"


class Contended(Unavailable):
    """The database rolled the transaction back for a conflict with another one (a deadlock,
    a serialisation failure): running the same use case again may well succeed."""
