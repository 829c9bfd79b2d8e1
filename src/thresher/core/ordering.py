"""Which eligible block a lane gets first, and the counted checks that make a block eligible.

Dispatch order (DESIGN section 5), most important first:

1. dedicated pool: a job that names one of the worker's pools with `pool:@` goes first;
2. job priority (0-100), higher first; then the owner's user priority, higher first;
3. fair share: the owner with fewer running tasks first;
4. age: earlier submission first; then job id and block index, so the order is total.

The checks (`limits_allow`, `capacity_allows`, `caps_allow`) answer "may one more task start here?".
Everywhere a maximum is None it means unlimited.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType


@dataclass(frozen=True)
class Candidate:
    """An eligible block of a job, as dispatch ordering sees it."""

    job_id: str
    block_id: str
    owner: str
    job_priority: int
    submitted_at: float
    user_priority: int = 0
    dedicated_rank: int = 1
    block_index: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.job_priority <= 100:
            raise ValueError(f"job priority must be 0-100, got {self.job_priority}")


DispatchKey = tuple[int, int, int, int, float, str, int]


def dispatch_key(candidate: Candidate, running_by_user: Mapping[str, int]) -> DispatchKey:
    """The sort key of `candidate`: smaller goes first."""
    return (
        candidate.dedicated_rank,
        -candidate.job_priority,
        -candidate.user_priority,
        running_by_user.get(candidate.owner, 0),
        candidate.submitted_at,
        candidate.job_id,
        candidate.block_index,
    )


@dataclass(frozen=True)
class LimitState:
    """A named limit (a license) and how many of it each host holds now."""

    name: str
    max_total: int | None = None
    max_per_host: int | None = None
    max_hosts: int | None = None
    in_use_by_host: Mapping[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # A read-only copy: the caller's dict may change after the snapshot is taken.
        object.__setattr__(self, "in_use_by_host", MappingProxyType(dict(self.in_use_by_host)))

    @property
    def in_use(self) -> int:
        """Units held farm-wide."""
        return sum(self.in_use_by_host.values())

    @property
    def hosts_in_use(self) -> int:
        """Hosts holding at least one unit."""
        return sum(1 for count in self.in_use_by_host.values() if count > 0)


def _below(count: int, maximum: int | None) -> bool:
    return maximum is None or count < maximum


def limits_allow(limit: LimitState, host: str) -> bool:
    """Whether `host` may take one more unit of `limit` (farm total, per host, and host count)."""
    on_host = limit.in_use_by_host.get(host, 0)
    new_host = on_host <= 0
    return (
        _below(limit.in_use, limit.max_total)
        and _below(on_host, limit.max_per_host)
        and (not new_host or _below(limit.hosts_in_use, limit.max_hosts))
    )


def capacity_allows(free_capacity: int, needed: int) -> bool:
    """Whether a worker with `free_capacity` units left can start a task needing `needed`."""
    if needed < 0:
        raise ValueError(f"a task cannot need negative capacity ({needed})")
    return needed <= free_capacity


def caps_allow(
    *,
    job_running: int,
    job_max: int | None,
    user_running: int,
    user_max: int | None,
    job_running_on_host: int,
    job_max_per_host: int | None,
) -> bool:
    """Whether one more task may start: running tasks of the job, of its owner, of the job here."""
    return (
        _below(job_running, job_max)
        and _below(user_running, user_max)
        and _below(job_running_on_host, job_max_per_host)
    )
