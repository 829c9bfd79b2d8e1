"""The errors of the OpenJD layer, and the one place where openjd-model errors are translated.

InvalidInput (thresher.core.errors)
 └── TemplateError    a template, an environment template or the parameter values were refused;
                      carries every issue the library reported, each with its location
"""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from thresher.core.errors import InvalidInput

__all__ = ["TemplateError", "TemplateIssue"]


@dataclass(frozen=True)
class TemplateIssue:
    """One problem the library found.

    `location` uses the library's own notation (`steps[0] -> script -> actions`), prefixed with
    `environments[i]` for an environment template and `parameters` for parameter values; it is
    empty when the problem concerns the document as a whole.
    """

    location: str
    message: str

    def __str__(self) -> str:
        return f"{self.location}: {self.message}" if self.location else self.message


class TemplateError(InvalidInput):
    """The template (or its parameter values) cannot make a job. `errors` lists every issue."""

    code = "invalid_template"

    def __init__(self, errors: Sequence[TemplateIssue]) -> None:
        self.errors: list[TemplateIssue] = list(errors)
        count = len(self.errors)
        summary = "; ".join(str(issue) for issue in self.errors)
        noun = "error" if count == 1 else "errors"
        super().__init__(f"{count} template {noun}: {summary}", field="template")


_HEADER = re.compile(r"^\d+ validation errors? for (\w+)$")


def issues_from_decode_error(exc: Exception, *, prefix: str = "") -> list[TemplateIssue]:
    """Translate an openjd-model DecodeValidationError into issues.

    The library raises it while handling pydantic's ValidationError, so the structured errors are
    on `__context__`; its message is the rendering `openjd check` prints, used when the structured
    form is not there.
    """
    context = exc.__context__
    errors = getattr(context, "errors", None)
    if callable(errors) and type(context).__name__ == "ValidationError":
        issues = [_issue_from_details(details) for details in errors()]
    else:
        issues = _issues_from_text(str(exc))
    return [_prefixed(issue, prefix) for issue in issues]


def issues_from_lines(message: str, *, location: str) -> list[TemplateIssue]:
    """One issue per line of a message the library built by joining its errors with newlines."""
    lines = [line for line in message.splitlines() if line.strip()]
    return [TemplateIssue(location, line) for line in lines] or [TemplateIssue(location, message)]


def _prefixed(issue: TemplateIssue, prefix: str) -> TemplateIssue:
    if not prefix:
        return issue
    location = f"{prefix} -> {issue.location}" if issue.location else prefix
    return TemplateIssue(location, issue.message)


def _issue_from_details(details: Any) -> TemplateIssue:
    message = str(details.get("msg", ""))
    ctx = details.get("ctx") or {}
    if details.get("type") == "value_error" and "error" in ctx:
        # pydantic prefixes "Value error, "; the library shows the raised message itself.
        message = str(ctx["error"])
    return TemplateIssue(_location(tuple(details.get("loc", ()))), message)


def _location(loc: tuple[int | str, ...]) -> str:
    if loc and loc[-1] == "__root__":
        loc = loc[:-1]
    model_names = _model_names()
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int) and parts:
            parts[-1] = f"{parts[-1]}[{item}]"
        elif isinstance(item, str) and item in model_names:
            # pydantic names the member of a discriminated union it entered; the library's
            # rendering leaves those out, and so do we.
            continue
        else:
            parts.append(str(item))
    return " -> ".join(parts)


def _model_names() -> set[str]:
    from openjd.model.v2023_09 import JobTemplate

    return set(vars(sys.modules[JobTemplate.__module__]))


def _issues_from_text(text: str) -> list[TemplateIssue]:
    lines = text.split("\n")
    header = _HEADER.match(lines[0])
    if header is None:
        return [TemplateIssue("", text)]
    root = f"{header.group(1)}: "
    body = lines[1:]
    issues: list[TemplateIssue] = []
    i = 0
    while i < len(body):
        if _opens_located(body, i):
            location, message, i = body[i][:-1], [body[i + 1][1:]], i + 2
        elif body[i].startswith(root):
            location, message, i = "", [body[i][len(root) :]], i + 1
        else:
            location, message, i = "", [body[i]], i + 1
        while i < len(body) and not _opens_located(body, i) and not body[i].startswith(root):
            message.append(body[i])
            i += 1
        issues.append(TemplateIssue(location, "\n".join(message)))
    return issues


def _opens_located(body: Sequence[str], i: int) -> bool:
    return body[i].endswith(":") and i + 1 < len(body) and body[i + 1].startswith("\t")
