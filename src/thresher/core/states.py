"""Statuses of tasks, attempts, blocks and jobs, and the allowed task transitions.

A task is `waiting` until it first leaves that state; only then does it get a row in the store.
Block and job statuses are never stored: they are derived from task counts and job flags.
"""

from __future__ import annotations

from enum import StrEnum

from thresher.core.errors import Conflict


class TaskStatus(StrEnum):
    WAITING = "waiting"  # never dispatched (no row)
    QUEUED = "queued"  # has a row and is ready again (requeued after lost/failed/retry)
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # retries exhausted
    SKIPPED = "skipped"
    CANCELED = "canceled"  # the job was canceled, or the task can never run (see below)


class AttemptStatus(StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    CANCELED = "canceled"
    LOST = "lost"
    PREEMPTED = "preempted"


class JobStatus(StrEnum):
    WAITING = "waiting"  # held by dependencies
    QUEUED = "queued"
    RUNNING = "running"
    PAUSED = "paused"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"


class WorkerStatus(StrEnum):
    ONLINE = "online"
    OFFLINE = "offline"


#: Statuses that count as finished for a task (nothing more will run unless someone retries).
TASK_DONE = frozenset({TaskStatus.SUCCEEDED, TaskStatus.SKIPPED})
TASK_FINAL = frozenset(
    {TaskStatus.SUCCEEDED, TaskStatus.SKIPPED, TaskStatus.FAILED, TaskStatus.CANCELED}
)

#: Allowed task transitions; anything else is a bug or a stale report. A task that waits, or
#: is queued, goes to CANCELED when it can never run (a task it waits on failed for good: see
#: `core.deps.never_run`), and back to QUEUED when a retry or a skip lets it run again.
TASK_TRANSITIONS: dict[TaskStatus, frozenset[TaskStatus]] = {
    TaskStatus.WAITING: frozenset(
        {TaskStatus.RUNNING, TaskStatus.SKIPPED, TaskStatus.QUEUED, TaskStatus.CANCELED}
    ),
    # QUEUED -> SUCCEEDED: the late success of an attempt lost while its task waited again.
    TaskStatus.QUEUED: frozenset(
        {TaskStatus.RUNNING, TaskStatus.SKIPPED, TaskStatus.CANCELED, TaskStatus.SUCCEEDED}
    ),
    TaskStatus.RUNNING: frozenset(
        {
            TaskStatus.SUCCEEDED,
            TaskStatus.FAILED,
            TaskStatus.QUEUED,
            TaskStatus.CANCELED,
            TaskStatus.SKIPPED,
        }
    ),
    TaskStatus.SUCCEEDED: frozenset({TaskStatus.QUEUED}),
    TaskStatus.FAILED: frozenset({TaskStatus.QUEUED, TaskStatus.SKIPPED}),
    TaskStatus.SKIPPED: frozenset({TaskStatus.QUEUED}),
    TaskStatus.CANCELED: frozenset({TaskStatus.QUEUED, TaskStatus.SKIPPED}),
}


#: Allowed attempt transitions: an attempt runs, then ends once with one outcome.
ATTEMPT_TRANSITIONS: dict[AttemptStatus, frozenset[AttemptStatus]] = {
    AttemptStatus.RUNNING: frozenset(set(AttemptStatus) - {AttemptStatus.RUNNING}),
    **{status: frozenset() for status in AttemptStatus if status is not AttemptStatus.RUNNING},
    # A worker given up as silent comes back, and nobody took the task meanwhile: the attempt
    # goes on where it runs still, or its success stands (store.workers.reattach, store.attempts).
    AttemptStatus.LOST: frozenset({AttemptStatus.RUNNING, AttemptStatus.SUCCEEDED}),
}


class IllegalTransition(Conflict):
    """A status write that the transition table forbids: a bug, or a report gone stale."""

    code = "illegal_transition"


def can_move(old: TaskStatus, new: TaskStatus) -> bool:
    """Whether a task may go from `old` to `new`."""
    return new in TASK_TRANSITIONS[old]


def check_move(old: TaskStatus, new: TaskStatus, *, what: str = "task") -> None:
    """Raise `IllegalTransition` unless a task may go from `old` to `new`."""
    if not can_move(old, new):
        raise IllegalTransition(f"{what} cannot go from {old} to {new}", field="status")


def check_attempt_move(old: AttemptStatus, new: AttemptStatus) -> None:
    """Raise `IllegalTransition` unless an attempt may go from `old` to `new`."""
    if new not in ATTEMPT_TRANSITIONS[old]:
        raise IllegalTransition(f"attempt cannot go from {old} to {new}", field="status")


def task_after_attempt(
    outcome: AttemptStatus,
    *,
    failures: int,
    retries: int,
    job_canceled: bool,
    cancel_reason: str | None,
) -> tuple[TaskStatus, bool]:
    """What a task does after its running attempt ended with `outcome`, and whether the end
    counts as a failure of the task: a failure does (and requeues the task while retries are
    left); a loss, a preemption or a pause does not; a canceled job cancels it."""
    if outcome is AttemptStatus.SUCCEEDED:
        return TaskStatus.SUCCEEDED, False
    if outcome in (AttemptStatus.FAILED, AttemptStatus.TIMED_OUT):
        if failures + 1 > retries:
            return TaskStatus.FAILED, True
        return (TaskStatus.CANCELED if job_canceled else TaskStatus.QUEUED), True
    if job_canceled or cancel_reason == "canceled":
        return TaskStatus.CANCELED, False
    if cancel_reason == "skipped":
        return TaskStatus.SKIPPED, False
    return TaskStatus.QUEUED, False
