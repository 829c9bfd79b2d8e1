"""Where a worker's long-poll stands between its rounds on the farm thread (`Agents.poll`), the
held polls waiting for work (`IdlePolls`), and a first round's reconciliation."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from thresher.controller.dispatch import Dispatch, DispatchIndex
from thresher.controller.dispatch.views import changed
from thresher.schemas import api
from thresher.store.snapshot import HeldAttempt
from thresher.store.store import Store


@dataclass(frozen=True)
class FirstRound:
    """A poll's first round done in its transaction, not yet committed."""

    poll: HeldPoll
    got: Dispatch
    body: api.PollIn


@dataclass(frozen=True)
class HeldPoll:
    """Where a held poll stands between two rounds."""

    worker_id: int
    lanes: tuple[int, ...]
    ahead_lanes: tuple[int, ...]
    deadline: float
    touched: float  # when the worker's lease was last refreshed by this poll
    held: list[HeldAttempt]
    stale: list[int]
    wait_s: float = 0.0
    answer: api.PollOut | None = None

    def but(self, **changes: Any) -> HeldPoll:
        """This poll with `changes` (as `dataclasses.replace`, a few times cheaper: a poll
        is copied once or twice per round)."""
        return changed(self, **changes)


class IdleSlot:
    """A held poll waiting on the loop for a change (see `IdlePolls`). A submission that took
    it hands it the poll as its claim left it (`hand`), or None when its transaction did not
    commit (the poll then runs its own round)."""

    __slots__ = ("future", "poll")

    def __init__(self, poll: HeldPoll, future: asyncio.Future[HeldPoll | None]) -> None:
        self.poll, self.future = poll, future

    def hand(self, poll: HeldPoll | None) -> None:
        """Any thread: the poll's outcome, to the loop it waits on."""
        loop = self.future.get_loop()
        if not loop.is_closed():
            loop.call_soon_threadsafe(_resolve, self.future, poll)


def _resolve(future: asyncio.Future[HeldPoll | None], poll: HeldPoll | None) -> None:
    if not future.done():  # its request may have gone meanwhile
        future.set_result(poll)


class IdlePolls:
    """The held polls that wait for work now, for a submission to claim for in its own
    transaction (`Agents.hand_out`). A poll is in here only while it waits on the loop: it
    leaves when it wakes (`leave`), and whichever of it and a submission takes it out first
    (one `dict.pop` each, atomic under the GIL) owns its next round."""

    def __init__(self) -> None:
        self._slots: dict[IdleSlot, None] = {}

    def __len__(self) -> int:
        return len(self._slots)

    def add(self, poll: HeldPoll) -> IdleSlot:
        """On the loop, before the poll waits."""
        slot = IdleSlot(poll, asyncio.get_running_loop().create_future())
        self._slots[slot] = None
        return slot

    def leave(self, slot: IdleSlot) -> bool:
        """On the loop, once the poll woke: False if a submission took it meanwhile (its
        outcome comes in `slot.future`)."""
        return self._slots.pop(slot, _GONE) is not _GONE

    def take(self, most: int) -> list[IdleSlot]:
        """On the farm thread: up to `most` waiting polls that have a free lane, taken out."""
        taken: list[IdleSlot] = []
        for slot in self._slots.copy():
            if len(taken) == most:
                break
            if (slot.poll.lanes or slot.poll.ahead_lanes) and self.leave(slot):
                taken.append(slot)
        return taken


_GONE = object()


def reconcile(
    store: Store,
    index: DispatchIndex,
    worker_id: int,
    body: api.PollIn,
    stale: list[int],
    started: float,
) -> tuple[list[HeldAttempt], list[int]]:
    """A poll's first round, in its transaction: what the store holds for the worker after
    losing what it no longer reports (a reply lost in transit, an answer handed to a poll
    whose request had gone), and the attempts it runs that must die (deleted, lost, ended)."""
    reported = {r.attempt_id for r in body.running} | {f.attempt_id for f in body.finished}
    held = store.snapshot.held_after_reports(worker_id)
    running = {r.attempt_id for r in body.running} - {f.attempt_id for f in body.finished}
    if running - {h.id for h in held} and store.workers.reattach(
        worker_id, running - {h.id for h in held}, now=started
    ):
        index.invalidate()  # their tasks left the queue again
        held = store.snapshot.worker_held(worker_id)
    if any(h.created_at < started and h.id not in reported for h in held):
        store.workers.lose_unreported(worker_id, reported, before=started, now=started)
        index.invalidate()  # their tasks are back in the queue
        held = store.snapshot.worker_held(worker_id)
    return held, sorted(set(stale) | (running - {h.id for h in held}))
