"""SearchJobs' filter and sort expressions, over the jobs as GetJob shows them (pure)."""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from thresher.controller.routes.deadline.common import validation

#: SearchJobs field names and the GetJob field each reads.
FIELDS = {
    "NAME": "name",
    "JOB_ID": "jobId",
    "TASK_RUN_STATUS": "taskRunStatus",
    "CREATED_BY": "createdBy",
    "CREATED_AT": "createdAt",
    "STARTED_AT": "startedAt",
    "ENDED_AT": "endedAt",
    "PRIORITY": "priority",
}
_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "EQUAL": operator.eq,
    "NOT_EQUAL": operator.ne,
    "GREATER_THAN_EQUAL_TO": operator.ge,
    "GREATER_THAN": operator.gt,
    "LESS_THAN_EQUAL_TO": operator.le,
    "LESS_THAN": operator.lt,
}
Job = Mapping[str, Any]


def _field(name: Any, where: str) -> str:
    if name not in FIELDS:
        known = ", ".join(FIELDS)
        raise validation(f"Thresher cannot search on {name!r}; it searches on {known}", where)
    return FIELDS[name]


def _compare(value: Any, op: Any, wanted: Any, where: str) -> bool:
    if op not in _COMPARE:
        raise validation(f"operator {op!r} is not one of {', '.join(_COMPARE)}", where)
    if value is None:
        return bool(op == "NOT_EQUAL")
    if isinstance(value, int) and not isinstance(wanted, int):
        try:
            wanted = int(wanted)
        except (TypeError, ValueError):
            raise validation(f"{wanted!r} is not a number", where) from None
    return bool(_COMPARE[op](value, wanted))


def _one(expression: Any, job: Job) -> bool:
    if not isinstance(expression, dict) or len(expression) != 1:
        raise validation("each filter has exactly one kind", "filterExpressions")
    kind, body = next(iter(expression.items()))
    if not isinstance(body, dict):
        raise validation(f"{kind} must be an object", "filterExpressions")
    if kind == "searchTermFilter":
        return str(body.get("searchTerm", "")).lower() in str(job.get("name", "")).lower()
    if kind in ("stringFilter", "dateTimeFilter"):
        where = f"filterExpressions.{kind}"
        wanted = body.get("value", body.get("dateTime"))
        return _compare(
            job.get(_field(body.get("name"), where)), body.get("operator"), wanted, where
        )
    if kind == "groupFilter":
        return matches(body, job)
    raise validation(f"Thresher does not search with {kind}", "filterExpressions")


def matches(group: Any, job: Job) -> bool:
    """Whether `job` passes a SearchGroupedFilterExpressions."""
    if not isinstance(group, dict) or not isinstance(group.get("filters"), list):
        raise validation("filterExpressions needs its filters (a list)", "filterExpressions")
    results = [_one(e, job) for e in group["filters"]]
    if group.get("operator", "AND") == "OR":
        return any(results)
    return all(results)


def sort(jobs: list[Job], expressions: Sequence[Any]) -> list[Job]:
    """`jobs` in the order of the sort expressions (field sorts; the first one counts most)."""
    for expression in reversed(list(expressions)):
        field_sort = expression.get("fieldSort") if isinstance(expression, dict) else None
        if not isinstance(field_sort, dict):
            raise validation("Thresher sorts by fieldSort only", "sortExpressions")
        name = _field(field_sort.get("name"), "sortExpressions")
        descending = field_sort.get("sortOrder") == "DESCENDING"
        present = [j for j in jobs if j.get(name) is not None]
        absent = [j for j in jobs if j.get(name) is None]
        jobs = sorted(present, key=lambda j: j[name], reverse=descending) + absent
    return jobs
