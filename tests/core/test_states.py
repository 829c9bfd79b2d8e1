"""The transition tables: every status has its row, and `check_move` follows them exactly."""

from __future__ import annotations

import itertools

import pytest

from thresher.core.errors import Conflict
from thresher.core.states import (
    ATTEMPT_TRANSITIONS,
    TASK_FINAL,
    TASK_TRANSITIONS,
    AttemptStatus,
    IllegalTransition,
    TaskStatus,
    check_attempt_move,
    check_move,
)


def test_every_status_has_a_row_and_nothing_moves_back_to_waiting() -> None:
    assert set(TASK_TRANSITIONS) == set(TaskStatus)
    assert set(ATTEMPT_TRANSITIONS) == set(AttemptStatus)
    assert all(TaskStatus.WAITING not in targets for targets in TASK_TRANSITIONS.values())
    assert all(old not in targets for old, targets in TASK_TRANSITIONS.items())


def test_a_finished_task_only_goes_back_to_the_queue_or_is_skipped() -> None:
    for old in TASK_FINAL:
        assert TASK_TRANSITIONS[old] <= {TaskStatus.QUEUED, TaskStatus.SKIPPED}


@pytest.mark.parametrize(("old", "new"), list(itertools.product(TaskStatus, TaskStatus)))
def test_check_move_allows_exactly_the_table(old: TaskStatus, new: TaskStatus) -> None:
    if new in TASK_TRANSITIONS[old]:
        check_move(old, new)
    else:
        with pytest.raises(IllegalTransition, match=f"from {old} to {new}") as refused:
            check_move(old, new)
        assert isinstance(refused.value, Conflict)  # answered 409


@pytest.mark.parametrize(("old", "new"), list(itertools.product(AttemptStatus, AttemptStatus)))
def test_an_attempt_ends_once(old: AttemptStatus, new: AttemptStatus) -> None:
    ends = old is AttemptStatus.RUNNING and new is not AttemptStatus.RUNNING
    came_back = old is AttemptStatus.LOST and new in (
        AttemptStatus.RUNNING,
        AttemptStatus.SUCCEEDED,
    )
    if ends or came_back:
        check_attempt_move(old, new)
    else:
        with pytest.raises(IllegalTransition):
            check_attempt_move(old, new)
