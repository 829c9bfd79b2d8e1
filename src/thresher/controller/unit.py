"""One use case, one transaction: what every use case of the controller goes through."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from thresher.controller.dispatch import DispatchIndex
from thresher.controller.notifier import Notifier
from thresher.core.clock import Clock
from thresher.core.errors import Contended, Unavailable
from thresher.store.store import Store


class UnitOfWork:
    """Makes each use case one transaction, and tells held polls after it committed."""

    def __init__(
        self, store: Store, index: DispatchIndex, notifier: Notifier, clock: Clock
    ) -> None:
        self.store = store
        self.index = index
        self.notifier = notifier
        self.clock = clock
        # When the store was last unavailable (None: never): the workers could not be heard
        # then, so no lease may run out for it until a lease after the store is back.
        self.unavailable_at: float | None = None

    def note_unavailable(self) -> None:
        """The store could not be reached now: no worker's lease runs out for it (see
        `Agents.sweep`). Called by any store access that found it so, in a use case or not."""
        self.unavailable_at = self.clock.now()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """Every store call inside commits together, or none does (see `Store.transaction`).
        On a failure the dispatch index, which counted the claims and finishes rolled back, is
        rebuilt from the store."""
        try:
            with self.store.transaction():
                yield
        except Contended:  # another transaction's conflict: the database is there
            self.index.rolled_back()
            raise
        except Unavailable:
            self.note_unavailable()
            self.index.rolled_back()
            raise
        except BaseException:
            self.index.rolled_back()
            raise

    @contextlib.contextmanager
    def change(self, *, soft: bool = False) -> Iterator[None]:
        """A use case that changes state: one transaction; held polls hear of it once it is
        committed (never before: a poll woken early would read the state from before)."""
        with self.transaction():
            yield
        self.notifier.notify(soft=soft)
