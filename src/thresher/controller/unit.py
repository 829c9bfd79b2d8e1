"""One use case, one transaction: what every use case of the controller goes through."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass

from thresher.controller.dispatch import DispatchIndex
from thresher.controller.notifier import Notifier
from thresher.core.clock import Clock
from thresher.core.errors import Contended, Unavailable
from thresher.core.model import JobRecord
from thresher.store.store import Store


@dataclass
class AuditNote:
    """The audit row of the call being served (see `controller.audit`): the first change the
    call commits writes it in that change's own transaction, so no change is ever committed
    without its row; the answer's status (0 until then) is written to it once known."""

    #: (actor, role, action, object) of the call, read when the row is written.
    describe: Callable[[], tuple[str, str, str, str]]
    row_id: int | None = None
    #: False once the answer went out: a change made later (a background task of the call)
    #: writes no row of the call's.
    serving: bool = True


#: The note of the call served in this context, if it is audited.
AUDIT_NOTE: ContextVar[AuditNote | None] = ContextVar("thresher-audit-note", default=None)
#: The jobs the open transaction made final, told to `on_ended` once it has committed, with
#: each one's record as the commit leaves it where the use case had it (else None).
_ENDED: ContextVar[dict[int, JobRecord | None] | None] = ContextVar(
    "thresher-ended-jobs", default=None
)
#: The jobs the open change submitted (`UnitOfWork.job_added`), None: it changed more.
_ADDED: ContextVar[list[int] | None] = ContextVar("thresher-added-jobs", default=None)


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
        #: Told of the jobs that ended, after the commit that ended them, and of the records
        #: of those the use case had as committed (`JobEnds.ended`).
        self.on_ended: Callable[[list[int], Mapping[int, JobRecord]], None] | None = None
        #: Told of the jobs a change submitted, in its transaction before the commit: the
        #: held polls' claims made there (`controller.hand_out`); gives what to tell once the
        #: transaction committed (True) or did not (False).
        self.on_added: Callable[[list[int]], Callable[[bool], None]] | None = None
        #: Told of each job a change submits, its record as written, in that transaction: what
        #: dispatch keeps of it, so that its first claims read none of it back.
        self.on_known: list[Callable[[JobRecord], None]] = [index.know_job]

    def job_ended(self, job_id: int, job: JobRecord | None = None) -> None:
        """Job `job_id` became final in the open transaction: its waiters hear of it once
        that commits (at once where no transaction of this unit is open). `job`: its record
        as that commit leaves it, handed to them without a read."""
        pending = _ENDED.get()
        if pending is not None:
            pending[job_id] = job
        elif self.on_ended is not None:
            self.on_ended([job_id], {job_id: job} if job is not None else {})

    def job_added(self, job_id: int, job: JobRecord | None = None) -> None:
        """Job `job_id` was submitted in the open change, whose only other writes leave
        dispatch as it was (the job's event, its sites): once it commits, the dispatch index
        adds the job's blocks instead of a rebuild; from `job`, its record as written, where
        given, without reading them back. Outside a change: nothing to do."""
        added = _ADDED.get()
        if added is not None:
            added.append(job_id)
            if job is not None:
                for know in self.on_known:
                    know(job)

    def note_unavailable(self) -> None:
        """The store could not be reached now: no worker's lease runs out for it (see
        `Agents.sweep`). Called by any store access that found it so, in a use case or not."""
        self.unavailable_at = self.clock.now()

    @contextlib.contextmanager
    def transaction(self, *, claims_later: bool = False) -> Iterator[None]:
        """Every store call inside commits together, or none does (see `Store.transaction`).
        On a failure the dispatch index, which counted the claims and finishes rolled back, is
        rebuilt from the store. With `claims_later`, its claims are written together before
        its commit (`store.claims_later`)."""
        outer = _ENDED.get() is None
        token = _ENDED.set({}) if outer else None
        try:
            with self.store.transaction(claims_later=claims_later):
                yield
            ended = _ENDED.get() if outer else None
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
        finally:
            if token is not None:
                _ENDED.reset(token)
        if ended and self.on_ended is not None:
            records = {job_id: job for job_id, job in ended.items() if job is not None}
            self.on_ended(list(ended), records)

    @contextlib.contextmanager
    def change(self, *, soft: bool = False) -> Iterator[None]:
        """A use case that changes state: one transaction; held polls hear of it once it is
        committed (never before: a poll woken early would read the state from before)."""
        added: list[int] = []
        token = _ADDED.set(added)
        settle: Callable[[bool], None] | None = None
        # Held polls are handed claims only where this change's end is its commit.
        outermost = not self.store.db.in_transaction()
        try:
            with self.transaction():
                yield
                self._write_audit_row()
                if added and outermost and self.on_added is not None:
                    settle = self.on_added(added)
        except BaseException:
            if settle is not None:
                settle(False)
            raise
        finally:
            _ADDED.reset(token)
        if settle is not None:
            settle(True)
        self.notifier.notify(soft=soft, added=added)

    def _write_audit_row(self) -> None:
        note = AUDIT_NOTE.get()
        if note is None or note.row_id is not None or not note.serving:
            return
        actor, role, action, obj = note.describe()
        note.row_id = self.store.audit.record(
            at=self.clock.now(), actor=actor, role=role, action=action, obj=obj, status=0
        )
