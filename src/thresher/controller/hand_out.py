"""A submission hands its first tasks to the held polls in its own transaction.

An idle farm's workers wait in held polls (`Agents.poll`). Before, a submission committed,
woke them, and each woken poll ran a round of its own on the farm thread: a second transaction
with its own commit, and two hand-offs between the event loop and the farm thread, between the
submission's commit and the task's start. Now the change that submitted jobs (`UnitOfWork`
names them to `on_added`) takes the waiting polls with a free lane (`IdlePolls.take`), at most
`MOST`, adds the new jobs to the dispatch index and runs those polls' rounds (`Agents.round_in`:
the same claim a woken poll makes) in the submission's transaction, before its commit. One
commit makes the job and its first attempts; each poll gets its answer only after it
(`IdleSlot.hand`), so no worker hears of an attempt that was not committed. Where the
transaction does not commit, each poll taken is told so and runs its own round, as before; the
dispatch index, which counted the claims, is rebuilt by the unit's rollback. A poll whose
request went away after it was handed its answer holds attempts its worker never heard of: the
worker's next poll does not report them and its reconciliation loses them (their tasks are
requeued, none run twice), as for any answer lost in transit."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from thresher.controller.poll_state import HeldPoll, IdleSlot

if TYPE_CHECKING:  # farm.py wires it: only the type is named here
    from thresher.controller.agents import Agents

#: Held polls a submission claims for in its own transaction, at most: a farm of many idle
#: workers has the rest woken as before, so a submission's transaction stays short (each claim
#: costs about a millisecond) and its answer is not held back by hundreds of claims.
MOST = 8


def hand_out(agents: Agents, job_ids: Sequence[int]) -> Callable[[bool], None]:
    """In the transaction of the change that submitted `job_ids`: the rounds of the held
    polls waiting now. Returns what to call once that transaction ended: with True after its
    commit (each poll gets its round's outcome), with False when it did not commit."""
    taken = agents.idle.take(MOST)
    if not taken:
        return _nothing
    outcomes: list[HeldPoll] = []
    wake = agents.notifier.notify
    try:
        agents.index.add_jobs(job_ids)
        for slot in taken:
            poll, got = agents.round_in(slot.poll, woke=True)
            outcomes.append(agents.decide(poll, got))
    except BaseException:
        _settle(taken, None, wake)
        raise
    return lambda committed: _settle(taken, outcomes if committed else None, wake)


def _settle(
    taken: list[IdleSlot], outcomes: list[HeldPoll] | None, wake: Callable[..., None]
) -> None:
    for i, slot in enumerate(taken):
        slot.hand(outcomes[i] if outcomes is not None else None)
    if outcomes is None:  # the polls taken sleep on: wake them for their own rounds
        wake(soft=True)


def _nothing(committed: bool) -> None:
    """Nothing was taken: nothing to settle."""
