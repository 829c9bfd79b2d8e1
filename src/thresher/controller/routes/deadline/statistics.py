"""Sessions statistics: StartSessionsStatisticsAggregation and GetSessionsStatisticsAggregation,
the run times of the attempts started in a window, by queue, fleet, job or user.

Stateless: the aggregation id holds the request (the window, the grouping, the statistics and a
check), so any controller answers it and nothing is kept. One bucket covers the whole window
(`period` is not split); `costInUsd` is 0 (Thresher has no prices)."""

from __future__ import annotations

import hashlib
from collections import defaultdict
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request

from thresher.controller.routes.deadline.common import (
    API,
    AWS_ERRORS,
    FLEET_ID,
    QUEUE_ID,
    SignedCaller,
    compact,
    iso,
    job_id_out,
    json_body,
    page_of,
    validation,
)
from thresher.controller.routes.deps import FarmDep

router = APIRouter(
    prefix=API + "/farms/{farmId}/sessions-statistics-aggregation",
    tags=["deadline"],
    responses=AWS_ERRORS,
)
GROUPS = ("QUEUE_ID", "FLEET_ID", "JOB_ID", "USER_ID", "USAGE_TYPE")
STATISTICS = ("SUM", "MIN", "MAX", "AVG")
_MAX_TIME = 2**40 - 1  # seconds: 40 bits of the id


def _time(value: Any, name: str) -> int:
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str):
        try:
            seconds = datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        except ValueError:
            raise validation(f"{name} is not a time", name) from None
    else:
        raise validation(f"{name} is required (a time)", name)
    if not 0 <= seconds <= _MAX_TIME:
        raise validation(f"{name} is out of range", name)
    return int(seconds)


def _mask(values: Any, known: tuple[str, ...], name: str) -> int:
    if not isinstance(values, list) or not values:
        raise validation(f"{name} lists at least one of {', '.join(known)}", name)
    mask = 0
    for value in values:
        if value not in known:
            raise validation(f"Thresher does not aggregate by {value!r}: {', '.join(known)}", name)
        mask |= 1 << known.index(value)
    return mask


def _check(text: str) -> str:
    return hashlib.sha256(b"thresher-stats:" + text.encode()).hexdigest()[:8]


def aggregation_id(start: int, end: int, groups: int, stats: int) -> str:
    head = f"{start:010x}{end:010x}{groups:02x}{stats:02x}"
    return head + _check(head)


def aggregation_of(text: str) -> tuple[int, int, list[str], list[str]]:
    """(start, end, groups, statistics) an aggregation id holds; a ValidationException if it
    is not one Thresher gave."""
    head = text[:24]
    if len(text) != 32 or _check(head) != text[24:]:
        raise validation("aggregationId was not given by this farm", "aggregationId")
    groups, stats = int(head[20:22], 16), int(head[22:24], 16)
    return (
        int(head[:10], 16),
        int(head[10:20], 16),
        [g for i, g in enumerate(GROUPS) if groups >> i & 1],
        [s for i, s in enumerate(STATISTICS) if stats >> i & 1],
    )


@router.post("")
async def start_aggregation(farmId: str, request: Request, caller: SignedCaller) -> Any:
    body = await json_body(request)
    start, end = _time(body.get("startTime"), "startTime"), _time(body.get("endTime"), "endTime")
    if end <= start:
        raise validation("endTime must come after startTime", "endTime")
    groups = _mask(body.get("groupBy"), GROUPS, "groupBy")
    stats = _mask(body.get("statistics"), STATISTICS, "statistics")
    return {"aggregationId": aggregation_id(start, end, groups, stats)}


def _stats(rows: list[tuple[int, float, float, float]], wanted: list[str]) -> dict[str, float]:
    count = sum(r[0] for r in rows)
    total = sum(r[3] for r in rows)
    all_of = {
        "min": min(r[1] for r in rows),
        "max": max(r[2] for r in rows),
        "avg": total / count if count else 0.0,
        "sum": total,
    }
    return {k: v for k, v in all_of.items() if k.upper() in wanted}


def statistics_out(
    found: list[tuple[int, str, str, int, float, float, float]],
    *,
    groups: list[str],
    wanted: list[str],
    window: tuple[int, int],
) -> list[dict[str, Any]]:
    buckets: dict[tuple[Any, ...], list[tuple[int, str, str, int, float, float, float]]]
    buckets = defaultdict(list)
    for row in found:
        key = (row[0] if "JOB_ID" in groups else None, row[2] if "USER_ID" in groups else None)
        buckets[key].append(row)
    out = []
    for (job, user), rows in sorted(buckets.items(), key=lambda kv: str(kv[0])):
        runtime = _stats([(r[3], r[4], r[5], r[6]) for r in rows], wanted)
        out.append(
            compact(
                {
                    "queueId": QUEUE_ID if "QUEUE_ID" in groups else None,
                    "fleetId": FLEET_ID if "FLEET_ID" in groups else None,
                    "jobId": job_id_out(job) if job is not None else None,
                    "jobName": rows[0][1] if job is not None else None,
                    "userId": user,
                    "usageType": "COMPUTE" if "USAGE_TYPE" in groups else None,
                    "count": sum(r[3] for r in rows),
                    "costInUsd": {k: 0.0 for k in runtime},
                    "runtimeInSeconds": runtime,
                    "aggregationStartTime": iso(window[0]),
                    "aggregationEndTime": iso(window[1]),
                }
            )
        )
    return out


@router.get("")
async def get_aggregation(
    farmId: str,
    aggregationId: str,
    farm: FarmDep,
    caller: SignedCaller,
    nextToken: str | None = None,
    maxResults: int | None = None,
) -> Any:
    start, end, groups, wanted = aggregation_of(aggregationId)
    offset, limit = page_of(nextToken, maxResults)
    found = await farm.call(farm.submitters.runtimes, caller, float(start), float(end))
    stats = statistics_out(found, groups=groups, wanted=wanted, window=(start, end))
    page = stats[offset : offset + limit]
    more = offset + limit < len(stats)
    return compact(
        {
            "statistics": page,
            "status": "COMPLETED",
            "nextToken": str(offset + limit) if more else None,
        }
    )
