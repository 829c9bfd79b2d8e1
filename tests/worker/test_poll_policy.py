"""The worker's polling rules (`worker.poll_policy`), as tables: lanes' loads, NIMBY and `now`
in, the decision out.

A lane is written `L(load, topped)`: `load` attempts given to it that have not ended, `topped` its
load right after the last answer that handed it tasks. With `ahead_per_lane` 1 a lane asks for
the task it runs and one ahead (load 2); a batch is more than that (the controller sized it by the
tasks' run time).
"""

from __future__ import annotations

import pytest

from thresher.worker.poll_policy import (
    FIRST_RETRY_S,
    MAX_RETRY_S,
    Ask,
    LaneLoad,
    PollPolicy,
    closed,
    closing,
    ended,
    given,
    retry_after,
    topped_up,
)

POLICY = PollPolicy(ahead_per_lane=1, hold_s=20.0, flush_every_s=0.25, report_after_s=0.05)


def L(load: int = 0, topped: int = 0, *, shutting: bool = False) -> LaneLoad:
    return LaneLoad(load=load, topped=topped, closing=shutting)


@pytest.mark.parametrize(
    ("policy", "lanes", "nimby", "asked"),
    [
        pytest.param(POLICY, [L(), L()], False, Ask((0, 1), (0, 1)), id="idle lanes: each free"),
        pytest.param(POLICY, [L(), L()], True, Ask(), id="NIMBY: nothing asked"),
        pytest.param(POLICY, [L(2, 2), L(1, 1)], False, Ask((), (1,)), id="one ahead: lane 1"),
        pytest.param(POLICY, [L(2, 2), L(2, 2)], False, Ask(), id="one ahead each: nothing"),
        pytest.param(
            POLICY, [L(17, 33), L(23, 33)], False, Ask((), (0, 1)), id="batches: top up each"
        ),
        pytest.param(POLICY, [L(33, 33)], False, Ask(), id="a whole batch: nothing"),
        pytest.param(
            PollPolicy(ahead_per_lane=3), [L(2, 2)], False, Ask((), (0, 0)), id="ahead 3: 2 more"
        ),
        pytest.param(
            PollPolicy(ahead_per_lane=0), [L(2, 5), L()], False, Ask((1,), ()), id="ahead 0"
        ),
        pytest.param(
            POLICY, [L(shutting=True), L()], False, Ask((1,), (0, 1)), id="closing: not free"
        ),
    ],
)
def test_what_a_poll_asks_for(
    policy: PollPolicy, lanes: list[LaneLoad], nimby: bool, asked: Ask
) -> None:
    assert policy.ask(lanes, nimby=nimby) == asked


@pytest.mark.parametrize(
    ("policy", "lanes", "nimby", "due"),
    [
        pytest.param(POLICY, [L(), L(2, 2)], False, True, id="a free lane"),
        pytest.param(POLICY, [L(), L()], True, False, id="NIMBY"),
        pytest.param(POLICY, [L(2, 2), L(1, 1)], False, True, id="a lane's one ahead is missing"),
        pytest.param(POLICY, [L(2, 2), L(2, 2)], False, False, id="every lane holds its one"),
        pytest.param(POLICY, [L(23, 33), L(25, 33)], False, False, id="batches above 2/3"),
        pytest.param(POLICY, [L(21, 33), L(25, 33)], False, True, id="a batch below 2/3"),
        pytest.param(POLICY, [L(22, 33), L(33, 33)], False, True, id="a batch at 2/3 exactly"),
        pytest.param(POLICY, [L(23, 33), L(33, 33)], False, False, id="a batch one above 2/3"),
        pytest.param(
            PollPolicy(ahead_per_lane=4), [L(4, 4)], False, False, id="ahead 4: 1 of 4 missing"
        ),
        pytest.param(
            PollPolicy(ahead_per_lane=4), [L(3, 3)], False, True, id="ahead 4: half missing"
        ),
        pytest.param(PollPolicy(ahead_per_lane=0), [L(1, 5)], False, False, id="ahead 0: busy"),
    ],
)
def test_when_a_refill_is_due(
    policy: PollPolicy, lanes: list[LaneLoad], nimby: bool, due: bool
) -> None:
    assert policy.refill_due(lanes, nimby=nimby) is due


@pytest.mark.parametrize(
    ("ask", "hold_s"),
    [
        pytest.param(Ask((0,), ()), 20.0, id="a free lane: held for work"),
        pytest.param(Ask((), (0, 1)), 0.0, id="only topping up: at once"),
        pytest.param(Ask(), 0.0, id="nothing asked: a heartbeat"),
    ],
)
def test_how_long_a_poll_is_held(ask: Ask, hold_s: float) -> None:
    assert POLICY.hold(ask) == hold_s


@pytest.mark.parametrize(
    ("lanes", "nimby", "had_work", "wait_s"),
    [
        pytest.param([L(16, 33), L(33, 33)], False, True, 0.0, id="work came, more due: at once"),
        pytest.param([L(), L(2, 2)], False, False, 0.0, id="a lane free: a held poll at once"),
        pytest.param([L(16, 33)], False, False, 5.0, id="no work came: wait for a wake-up"),
        pytest.param([L(33, 33), L(2, 2)], False, True, 5.0, id="lanes full: wait"),
        pytest.param([L(), L()], True, True, 5.0, id="NIMBY: the heartbeat"),
    ],
)
def test_the_wait_before_the_next_poll(
    lanes: list[LaneLoad], nimby: bool, had_work: bool, wait_s: float
) -> None:
    got = POLICY.next_poll_in(lanes, nimby=nimby, answer_had_work=had_work, heartbeat_s=5.0)
    assert got == wait_s


@pytest.mark.parametrize(
    ("lanes", "wait_s"),
    [
        pytest.param([L(1, 1)], 5.0, id="a job's one task: no poll for tasks ahead"),
        pytest.param([L(1, 1), L()], 0.0, id="a lane still free: a held poll at once"),
    ],
)
def test_an_answer_short_of_what_was_asked_asks_no_more_at_once(
    lanes: list[LaneLoad], wait_s: float
) -> None:
    """The controller had no more for this worker: asking again at once for tasks ahead would
    find nothing, and cost a request while the task starts."""
    had_work = POLICY.next_poll_in(lanes, nimby=False, answer_had_work=True, heartbeat_s=5.0)
    assert had_work == 0.0
    got = POLICY.next_poll_in(
        lanes, nimby=False, answer_had_work=True, answer_was_short=True, heartbeat_s=5.0
    )
    assert got == wait_s


@pytest.mark.parametrize(
    ("lanes", "nimby", "due_in"),
    [
        pytest.param([L(22, 33)], False, 0.0, id="a poll is due anyway: they ride on it"),
        pytest.param([L(23, 33)], False, 0.25, id="lanes still full: flush_every_s"),
        pytest.param([L()], True, 0.25, id="NIMBY: flush_every_s"),
    ],
)
def test_how_long_finishes_wait_for_a_poll(
    lanes: list[LaneLoad], nimby: bool, due_in: float
) -> None:
    assert POLICY.finishes_due_in(lanes, nimby=nimby) == due_in


@pytest.mark.parametrize(
    ("now", "sent_at", "had_work", "wait_s"),
    [
        pytest.param(100.0, 100.0, True, 0.05, id="poll just sent, work coming: wait for it"),
        pytest.param(100.03, 100.0, True, 0.02, id="30 ms out: the rest of report_after_s"),
        pytest.param(100.2, 100.0, True, 0.0, id="poll held long: report now"),
        pytest.param(100.0, 100.0, False, 0.0, id="polls bring no work: report now"),
    ],
)
def test_how_long_finishes_wait_before_a_report(
    now: float, sent_at: float, had_work: bool, wait_s: float
) -> None:
    got = POLICY.report_in(now=now, poll_sent_at=sent_at, answer_had_work=had_work)
    assert got == pytest.approx(wait_s)


def test_retries_back_off_from_the_first_wait_to_the_longest() -> None:
    longest = [retry_after(n, jitter=1.0) for n in range(1, 8)]
    assert longest == pytest.approx([FIRST_RETRY_S, 0.4, 0.8, 1.6, 3.2, MAX_RETRY_S, MAX_RETRY_S])
    assert retry_after(10_000, jitter=1.0) == MAX_RETRY_S  # no overflow after a long outage


@pytest.mark.parametrize("failures", [1, 3, 50])
def test_a_retry_is_spread_over_the_upper_half_of_its_wait(failures: int) -> None:
    ceiling = retry_after(failures, jitter=1.0)
    assert retry_after(failures, jitter=0.0) == pytest.approx(ceiling / 2)
    assert retry_after(failures, jitter=0.5) == pytest.approx(ceiling * 0.75)
    waits = {retry_after(failures, jitter=j / 10) for j in range(11)}
    assert len(waits) == 11  # two workers that failed together rarely retry together


@pytest.mark.parametrize(
    ("before", "change", "after"),
    [
        pytest.param(L(), given, L(1, 0), id="given: one more"),
        pytest.param(L(3, 1), topped_up, L(3, 3), id="topped up: its load is the batch"),
        pytest.param(L(5, 33), ended, L(4, 33), id="ended: one less, the batch stays"),
        pytest.param(L(1, 33), ended, L(0, 0), id="emptied: the batch is forgotten"),
        pytest.param(L(), closing, L(shutting=True), id="closing a session"),
        pytest.param(L(shutting=True), closed, L(), id="closed"),
    ],
)
def test_a_lanes_load_changes(before: LaneLoad, change: object, after: LaneLoad) -> None:
    assert callable(change)
    assert change(before) == after


@pytest.mark.parametrize(
    ("lane", "free"),
    [(L(), True), (L(1, 1), False), (L(shutting=True), False), (L(1, 1, shutting=True), False)],
)
def test_a_lane_is_free_when_it_holds_nothing_and_closes_no_session(
    lane: LaneLoad, free: bool
) -> None:
    assert lane.free is free
