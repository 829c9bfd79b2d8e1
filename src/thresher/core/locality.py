"""Site-aware dispatch, decided purely: whether a worker at a site that lacks a job's data
should take one of its tasks now, or leave it to a lane where the data already is.

The bytes a site still lacks are the cost of running there: its download sync must move them
first. A worker at such a site is held back from the job while a lane at a site holding the
data is free and has not yet been offered the job (it will be, on its next poll or the wake-up
the job's submission sends), and, once every such lane is busy, for as long as waiting for
them is expected to be shorter than moving the data: the expected wait is the time those
lanes need to work through the job's remaining tasks (mean run time x remaining / lanes); the
transfer time is the missing bytes over the site's bandwidth. A lane that was offered the job
and did not take it (filters, engines, limits) does not hold anyone back, and nothing is held
back for longer than `max_hold_s`, so no job starves.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

#: Bandwidth assumed for a site that declares none (bytes per second).
DEFAULT_BPS = 50 * 1024 * 1024
#: Bytes assumed for a job's data before any sync measured it.
DEFAULT_DATA_BYTES = 100 * 1024 * 1024
#: Seconds a site lacking the data is held back at most, whatever the estimates say.
MAX_HOLD_S = 120.0


@dataclass(frozen=True)
class SiteLanes:
    """Free lanes a site's workers reported, and when the oldest of those reports was made."""

    free: int = 0
    lanes: int = 0  # lanes of its online workers
    reported_at: float = 0.0  # the latest poll of a worker there that left lanes free


@dataclass(frozen=True)
class JobData:
    """Where a job's data is: the sites holding it, and its size (None: not measured yet)."""

    sites: frozenset[str]
    bytes_total: int | None = None
    first_seen: float = 0.0  # when dispatch first saw the job


def transfer_s(job: JobData, *, bps: int | None) -> float:
    return (job.bytes_total or DEFAULT_DATA_BYTES) / (bps or DEFAULT_BPS)


def expected_wait_s(*, mean_runtime_s: float | None, remaining: int, lanes_with_data: int) -> float:
    """How long the lanes where the data is need for the job's remaining tasks (0 when the
    run time is not known yet: the first tasks tell)."""
    if not mean_runtime_s or lanes_with_data <= 0:
        return 0.0 if lanes_with_data > 0 else float("inf")
    return mean_runtime_s * remaining / lanes_with_data


def may_take(
    site: str,
    job: JobData,
    *,
    sites: Mapping[str, SiteLanes],
    mean_runtime_s: float | None,
    remaining: int,
    bps: int | None,
    now: float,
    max_hold_s: float = MAX_HOLD_S,
) -> bool:
    """Whether a worker at `site` takes a task of the job now."""
    if not job.sites or site in job.sites:
        return True
    if now - job.first_seen > max_hold_s:
        return True
    with_data = [sites.get(s, SiteLanes()) for s in job.sites]
    # A free lane where the data is that has not been offered the job since it appeared.
    if any(s.free > 0 and s.reported_at <= job.first_seen for s in with_data):
        return False
    lanes = sum(s.lanes for s in with_data)
    wait = expected_wait_s(
        mean_runtime_s=mean_runtime_s, remaining=remaining, lanes_with_data=lanes
    )
    return wait > transfer_s(job, bps=bps)
