"""Error hosts (after CGRU Afanasy): hosts a block avoids, and hosts too sick to take any work.

Two rules, both pure functions of recorded failures and an explicit `now`:

- A block avoids a host once the host has failed it `errors_to_avoid` times, until `forgive_s`
  after the host's last error on that block. Forgiveness wipes the slate: errors before a gap of
  `forgive_s` or more no longer count, so after being forgiven a host needs the full count again.
- A host is sick only on evidence that the host, not the work, is at fault:

  1. A failure of a block on a host *counts against the host* when the same block succeeded on
     another host (the work runs elsewhere), or when it failed on no other host (it fails there
     and not elsewhere). A block that failed on another host too and succeeded on none is broken
     (a typo, a missing file, an executable missing everywhere): its failures count against no
     host, whatever their number.
  2. The host is sick once its counting failures, within `sick_window_s` (first to last,
     inclusive), are of at least `sick_jobs` different jobs owned by at least `sick_owners`
     different users. One user's broken jobs therefore never make a host sick: a user's mistakes
     never take the farm away from the others.

  The evidence is weighed anew each time: a failure that counted while its block had run
  nowhere else stops counting once the block fails on another host too, and the host is no
  longer sick if what remains is below the thresholds. Otherwise sickness does not wear off: the
  host takes no work until someone clears it, and failures at or before `cleared_at` no longer
  count (the evidence other hosts give stays).

Failure times later than `now` are ignored (they have not happened yet as far as the caller knows).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class ErrorPolicy:
    """Thresholds for both rules; `forgive_s` may be `math.inf` (never forgive)."""

    errors_to_avoid: int = 3
    forgive_s: float = 5 * 3600
    sick_jobs: int = 3
    sick_window_s: float = 3600
    sick_owners: int = 2

    def __post_init__(self) -> None:
        if self.errors_to_avoid < 1 or self.sick_jobs < 1 or self.sick_owners < 1:
            raise ValueError("errors_to_avoid, sick_jobs and sick_owners must be at least 1")
        # Written as `not x > 0` so that NaN is refused too.
        if not self.forgive_s > 0 or not self.sick_window_s >= 0:
            raise ValueError("forgive_s must be positive and sick_window_s not negative")


@dataclass(frozen=True)
class HostFailure:
    """A failed attempt as sickness weighs it: on which host, of which block of which job of
    which owner, when, and whether that block succeeded on a host other than this one."""

    host: Hashable
    job: Hashable
    owner: str
    block: Hashable
    at: float
    succeeded_elsewhere: bool = False


def _errors_since_forgiven(errors: Sequence[float], now: float, policy: ErrorPolicy) -> list[float]:
    """The host's errors on the block that still count, oldest first (empty once forgiven)."""
    streak: list[float] = []
    for time in sorted(t for t in errors if t <= now):
        if streak and time - streak[-1] >= policy.forgive_s:
            streak = []
        streak.append(time)
    if streak and now - streak[-1] >= policy.forgive_s:
        return []
    return streak


def block_error_count(errors: Sequence[float], now: float, policy: ErrorPolicy) -> int:
    """How many of the host's errors on the block count now (0 once the host is forgiven)."""
    return len(_errors_since_forgiven(errors, now, policy))


def avoided_until(errors: Sequence[float], now: float, policy: ErrorPolicy) -> float | None:
    """When the host will be forgiven by the block, or None if the block does not avoid it now."""
    streak = _errors_since_forgiven(errors, now, policy)
    if len(streak) < policy.errors_to_avoid:
        return None
    return streak[-1] + policy.forgive_s


def counting_failures(
    failures: Iterable[HostFailure], now: float
) -> dict[Hashable, list[HostFailure]]:
    """The failures that count against their hosts (rule 1), by host, oldest first."""
    known = sorted((f for f in failures if f.at <= now), key=lambda f: f.at)
    failed_on: dict[Hashable, set[Hashable]] = {}
    for f in known:
        failed_on.setdefault(f.block, set()).add(f.host)
    out: dict[Hashable, list[HostFailure]] = {}
    for f in known:
        if f.succeeded_elsewhere or failed_on[f.block] == {f.host}:
            out.setdefault(f.host, []).append(f)
    return out


def sick_since(
    failures: Sequence[HostFailure],
    now: float,
    policy: ErrorPolicy,
    cleared_at: float | None = None,
) -> float | None:
    """When the host became sick (rule 2), from its failures that count against it (see
    `counting_failures`), or None if it is not sick."""
    since = -math.inf if cleared_at is None else cleared_at
    counted = sorted((f for f in failures if since < f.at <= now), key=lambda f: f.at)
    jobs: Counter[Hashable] = Counter()
    owners: Counter[Hashable] = Counter()
    start = 0
    for f in counted:
        jobs[f.job] += 1
        owners[f.owner] += 1
        while f.at - counted[start].at > policy.sick_window_s:
            _forget(jobs, counted[start].job)
            _forget(owners, counted[start].owner)
            start += 1
        if len(jobs) >= policy.sick_jobs and len(owners) >= policy.sick_owners:
            return f.at
    return None


def _forget(counter: Counter[Hashable], key: Hashable) -> None:
    counter[key] -= 1
    if counter[key] == 0:
        del counter[key]


def too_short(duration_s: float | None, min_runtime_s: float | None) -> str | None:
    """Why a success counts as an error: it ran under the block's minimum run time (or None).

    A render that "succeeds" in a fraction of its usual time usually found no scene, no license
    or no output; treating it as an error retries it and counts it against the host."""
    if min_runtime_s is None or duration_s is None or duration_s >= min_runtime_s:
        return None
    return (
        f"succeeded after {duration_s:.2f}s, under the block's minimum run time of "
        f"{min_runtime_s:g}s: counted as an error"
    )
