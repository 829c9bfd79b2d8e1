"""Tasks held ahead: how many short tasks a lane gets beyond the one it runs.

A lane that finishes a 1 ms task and then waits a round trip for the next one spends most of
its time waiting, so the controller hands out short tasks ahead (still leased and fenced) in the
same claim as the lane's task. How many is sized by the block's measured mean run time: enough
to cover `AHEAD_COVER_S` of work, at most `AHEAD_CAP`, never fewer than the worker asked for.

The trade-off: tasks held by a worker that dies wait for its lease to run out before they are
requeued, and a job's last tasks may sit on one lane while another is idle. Both are bounded by
the cover time (a quarter second of work per lane), not by the count.
"""

from __future__ import annotations

import math

SHORT_TASK_S = 2.0
"""A block whose tasks take less than this on average may have tasks handed out ahead."""

AHEAD_COVER_S = 0.25
"""Work, in the block's mean run time, that a lane asking for tasks ahead may hold."""

AHEAD_CAP = 64
"""The most tasks held ahead on one lane from one claim, however short they are."""


def is_short(mean_runtime_s: float | None) -> bool:
    """Whether a block's tasks are short enough to be held ahead (unknown: not yet)."""
    return mean_runtime_s is not None and mean_runtime_s < SHORT_TASK_S


def tasks_ahead(
    asked: int,
    mean_runtime_s: float | None,
    *,
    holding: int = 0,
    cover_s: float = AHEAD_COVER_S,
    cap: int = AHEAD_CAP,
) -> int:
    """How many of a block's tasks to hand a lane ahead when its worker asks for `asked` and
    the lane already holds `holding` ahead: none unless it asks and the tasks are short; else
    what tops the lane up to `cover_s` of work (at most `cap` held), and at least `asked`."""
    if asked <= 0 or not is_short(mean_runtime_s):
        return 0
    assert mean_runtime_s is not None
    covering = cap if mean_runtime_s <= 0 else min(cap, math.floor(cover_s / mean_runtime_s))
    return max(asked, covering - max(0, holding))
