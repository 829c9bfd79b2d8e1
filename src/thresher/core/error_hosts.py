"""Error hosts (after CGRU Afanasy): hosts a block avoids, and hosts too sick to take any work.

Two rules, both pure functions of recorded failure times and an explicit `now`:

- A block avoids a host once the host has failed it `errors_to_avoid` times, until `forgive_s`
  after the host's last error on that block. Forgiveness wipes the slate: errors before a gap of
  `forgive_s` or more no longer count, so after being forgiven a host needs the full count again.
- A host is sick once it has failed `sick_jobs` different jobs within `sick_window_s` (first to last
  failure, inclusive). Sickness does not wear off: the host takes no work until someone clears it,
  and failures at or before `cleared_at` no longer count.

Failure times later than `now` are ignored (they have not happened yet as far as the caller knows).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Hashable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class ErrorPolicy:
    """Thresholds for both rules; `forgive_s` may be `math.inf` (never forgive)."""

    errors_to_avoid: int = 3
    forgive_s: float = 5 * 3600
    sick_jobs: int = 3
    sick_window_s: float = 3600

    def __post_init__(self) -> None:
        if self.errors_to_avoid < 1 or self.sick_jobs < 1:
            raise ValueError("errors_to_avoid and sick_jobs must be at least 1")
        # Written as `not x > 0` so that NaN is refused too.
        if not self.forgive_s > 0 or not self.sick_window_s >= 0:
            raise ValueError("forgive_s must be positive and sick_window_s not negative")


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


def sick_since(
    failures: Sequence[tuple[Hashable, float]],
    now: float,
    policy: ErrorPolicy,
    cleared_at: float | None = None,
) -> float | None:
    """When the host became sick (its failures are `(job_id, time)` pairs), or None if it is not."""
    since = -math.inf if cleared_at is None else cleared_at
    counted = sorted(
        ((time, job) for job, time in failures if since < time <= now), key=lambda pair: pair[0]
    )
    in_window: Counter[Hashable] = Counter()
    start = 0
    for time, job in counted:
        in_window[job] += 1
        while time - counted[start][0] > policy.sick_window_s:
            _forget(in_window, counted[start][1])
            start += 1
        if len(in_window) >= policy.sick_jobs:
            return time
    return None


def _forget(counter: Counter[Hashable], job: Hashable) -> None:
    counter[job] -= 1
    if counter[job] == 0:
        del counter[job]


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
