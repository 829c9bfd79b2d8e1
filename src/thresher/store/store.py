"""The Store: every read and write of farm state, in short transactions with intent-named methods.

Every state change of a task or attempt is one transaction, committed before the caller answers
anyone. Counters on the block move in the same transaction as the task row they describe, so the
derived job and block statuses can never disagree with the rows.

Errors raised: `thresher.core.errors.NotFound`, `StaleAttempt`, `Conflict`, `InvalidInput`.
"""

from __future__ import annotations

from thresher.store.access_keys import AccessKeysStore
from thresher.store.dispatch import ClaimCandidate, ClaimOutcome, DispatchStore, Refused
from thresher.store.engines import EnginesStore
from thresher.store.records import (
    FinishReport,
    TokenRecord,
    WorkerRegistration,
)
from thresher.store.tasks import TasksStore
from thresher.store.tokens import TokensStore
from thresher.store.workers import WorkersStore

__all__ = [
    "ClaimCandidate",
    "ClaimOutcome",
    "FinishReport",
    "Refused",
    "Store",
    "TokenRecord",
    "WorkerRegistration",
]


class Store(DispatchStore, TasksStore, WorkersStore, TokensStore, EnginesStore, AccessKeysStore):
    """All farm state. Methods are short transactions; values returned are frozen records."""
