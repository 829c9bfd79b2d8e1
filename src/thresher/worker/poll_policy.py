"""When the worker polls and what it asks for: the agent's polling decisions, pure.

A poll is the worker's heartbeat and its claim. It names the lanes that are free (each may get a
task now) and the lanes that may hold more short tasks ahead of the one they run. A poll costs the
worker and the controller far more than a 1 ms task, so with short tasks held ahead one poll must
bring many tasks and carry many finishes; yet a free lane polls at once, and finishes never wait
longer than `flush_every_s` for a poll.

Everything here is a function of its inputs, `now` included: the agent keeps each lane's
`LaneLoad`, asks these functions, and does the I/O (requests, timers, lanes' threads).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

__all__ = [
    "FIRST_RETRY_S",
    "MAX_RETRY_S",
    "Ask",
    "LaneLoad",
    "PollPolicy",
    "closed",
    "closing",
    "ended",
    "given",
    "ran_low",
    "retry_after",
    "topped_up",
]

FIRST_RETRY_S = 0.2
"""The longest wait after a loop's first failure in a row (an unreachable controller, an error
answer, or a fault of the worker's own); it doubles with each failure in a row..."""
MAX_RETRY_S = 5.0
"""... up to this (well inside a lease, so a worker that retries keeps its tasks)."""


def ran_low(left: int, held: int) -> bool:
    """A lane that held `held` tasks and has `left` of them has used a third: time to ask for
    more. Not half: on PostgreSQL, on two shared cores, a poll that finishes and claims a
    third of a 64-task batch per lane took 35-50 ms, about what the half left lasted, and the
    lanes ran dry waiting for it (0.25 s of 2.4 s in `bench/throughput.py`)."""
    return left * 3 <= held * 2


@dataclass(frozen=True)
class LaneLoad:
    """What one lane holds.

    ``load`` counts the attempts given to it that have not ended (the one it runs and those held
    ahead in its thread's queue); ``topped`` is its load right after the last answer that handed
    it tasks (0 once it emptied); ``closing`` is set while it closes an idle OpenJD session, when
    it is not free although it holds no attempt.
    """

    load: int = 0
    topped: int = 0
    closing: bool = False

    @property
    def free(self) -> bool:
        return self.load == 0 and not self.closing


def given(lane: LaneLoad) -> LaneLoad:
    """The lane was given one more attempt (to run now, or after what it holds)."""
    return LaneLoad(lane.load + 1, lane.topped, lane.closing)


def ended(lane: LaneLoad) -> LaneLoad:
    """One of the lane's attempts ended (or was taken back before it started)."""
    load = max(0, lane.load - 1)
    return LaneLoad(load, lane.topped if load else 0, lane.closing)


def topped_up(lane: LaneLoad) -> LaneLoad:
    """An answer handed the lane tasks: what it holds now is the batch it uses up."""
    return LaneLoad(lane.load, lane.load, lane.closing)


def closing(lane: LaneLoad) -> LaneLoad:
    """The lane closes its idle OpenJD session: ask no task for it until that is done."""
    return replace(lane, closing=True)


def closed(lane: LaneLoad) -> LaneLoad:
    return replace(lane, closing=False)


def retry_after(failures: int, *, jitter: float) -> float:
    """The wait before a loop's next round after `failures` failed rounds in a row (1: the
    first): capped exponential, `FIRST_RETRY_S` doubling up to `MAX_RETRY_S`, spread over the
    upper half of that by `jitter` (in [0, 1], drawn by the caller), so workers that lost the
    controller at the same moment do not all come back at once."""
    ceiling = min(FIRST_RETRY_S * 2.0 ** min(max(failures, 1) - 1, 32), MAX_RETRY_S)
    return ceiling * (0.5 + 0.5 * min(max(jitter, 0.0), 1.0))


@dataclass(frozen=True)
class Ask:
    """What a poll asks for: ``lanes`` are free (each may get a task now); ``ahead_lanes`` may
    each hold one more short task ahead of what they run (a lane repeated for each)."""

    lanes: tuple[int, ...] = ()
    ahead_lanes: tuple[int, ...] = ()


@dataclass(frozen=True)
class PollPolicy:
    """The worker's polling rules.

    ``ahead_per_lane``: short tasks a lane asks to hold ahead of the one it runs (the controller
    may hand more, sized by their run time: a batch). ``hold_s``: how long a poll for a free lane
    is held open at the controller waiting for work. ``flush_every_s``: the longest a finish waits
    for a poll. ``report_after_s``: while polls come back with work, a finish waits for the answer
    to a poll younger than this rather than go in a report of its own.
    """

    ahead_per_lane: int = 1
    hold_s: float = 20.0
    flush_every_s: float = 0.25
    report_after_s: float = 0.05

    def ask(self, lanes: Sequence[LaneLoad], *, nimby: bool) -> Ask:
        """The free lanes, and the lanes that may hold more short tasks ahead; nothing while
        NIMBY holds the machine."""
        if nimby:
            return Ask()
        return Ask(
            lanes=tuple(n for n, lane in enumerate(lanes) if lane.free),
            ahead_lanes=tuple(
                n for n, lane in enumerate(lanes) for _ in range(self._missing(lane))
            ),
        )

    def refill_due(self, lanes: Sequence[LaneLoad], *, nimby: bool) -> bool:
        """A poll is worth sending now: a lane is free, or one has used up a third of the tasks
        it holds ahead (`ran_low`: so one poll carries many finishes and claims, yet the lanes
        never run dry). Never while NIMBY holds the machine."""
        if nimby:
            return False
        low = max(1, (self.ahead_per_lane + 1) // 2)
        return any(
            lane.free or self._ran_low(lane) or self.ahead_per_lane - max(0, lane.load - 1) >= low
            for lane in lanes
        )

    def hold(self, ask: Ask) -> float:
        """How long the controller may hold the poll open waiting for work: only a poll for a
        free lane waits (one only topping lanes up must come back at once)."""
        return self.hold_s if ask.lanes else 0.0

    def next_poll_in(
        self,
        lanes: Sequence[LaneLoad],
        *,
        nimby: bool,
        answer_had_work: bool,
        heartbeat_s: float,
        answer_was_short: bool = False,
    ) -> float:
        """After an answer: 0 to poll again at once (work came and more is due, or a lane is
        free), else `heartbeat_s`, the longest to wait for a wake-up (a lane running low, or
        finishes that waited `flush_every_s`). `answer_was_short`: it brought fewer tasks than
        it asked for, so the controller had no more for this worker then (a job's last task,
        or a new block's first before its run time is known): asking again at once for tasks
        ahead would find nothing, and cost both sides a request while the task starts."""
        if answer_had_work and not answer_was_short and self.refill_due(lanes, nimby=nimby):
            return 0.0
        if self.ask(lanes, nimby=nimby).lanes:
            return 0.0
        return heartbeat_s

    def finishes_due_in(self, lanes: Sequence[LaneLoad], *, nimby: bool) -> float:
        """Finishes are waiting: 0 when a poll is due now anyway (they ride on it), else the
        most they wait for one."""
        return 0.0 if self.refill_due(lanes, nimby=nimby) else self.flush_every_s

    def report_in(self, *, now: float, poll_sent_at: float, answer_had_work: bool) -> float:
        """While a poll is held, finishes go in a report: how long they first wait for the
        poll's answer. A poll sent a moment ago mostly comes back at once with work while polls
        bring work, and the next poll carries them (one request instead of two); otherwise the
        poll is held for want of work (a job's last tasks) and they go now."""
        if not answer_had_work:
            return 0.0
        return max(0.0, poll_sent_at + self.report_after_s - now)

    def _missing(self, lane: LaneLoad) -> int:
        """How many more short tasks the lane may hold ahead of the one it runs: up to
        `ahead_per_lane`, and one more ask once it has used some of a larger batch (the
        controller then tops it up to what covers a fraction of a second)."""
        missing = max(0, self.ahead_per_lane - max(0, lane.load - 1))
        if not missing and self._batched(lane) and lane.load < lane.topped:
            return 1
        return missing

    def _batched(self, lane: LaneLoad) -> bool:
        """The lane was handed more short tasks than it asked for (sized by their run time)."""
        return self.ahead_per_lane > 0 and lane.topped > self.ahead_per_lane + 1

    def _ran_low(self, lane: LaneLoad) -> bool:
        return self._batched(lane) and ran_low(lane.load, lane.topped)
