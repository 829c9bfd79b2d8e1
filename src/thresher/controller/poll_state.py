"""Where a worker's long-poll stands between its rounds on the farm thread (`Agents.poll`)."""

from __future__ import annotations

from dataclasses import dataclass

from thresher.controller.dispatch import Dispatch
from thresher.schemas import api
from thresher.store.snapshot import HeldAttempt


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
