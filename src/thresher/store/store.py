"""The Store: every read and write of farm state, one repository per concept.

`store.jobs`, `store.tasks`, `store.attempts`, `store.workers`, `store.tokens`,
`store.access_keys`, `store.engines`, `store.limits`, `store.error_hosts`, `store.scheduling`
(the settings people set), `store.sites` (sites, volumes, jobs' sync per site),
`store.snapshot` (what dispatch decides from) and `store.dispatch`
(the atomic claim). Methods have intent names and are short transactions; each joins the
caller's open `transaction()`, so a use case of several calls commits once or not at all.
Counters on the block move in the same transaction as the task row they describe, so the
derived job and block statuses can never disagree with the rows.

Errors raised: `thresher.core.errors.NotFound`, `StaleAttempt`, `Conflict` (with
`IllegalTransition`), `InvalidInput`.
"""

from __future__ import annotations

import contextlib
from typing import Self

import sqlalchemy as sa

from thresher.store.access_keys import AccessKeys
from thresher.store.attempts import Attempts
from thresher.store.base import Database
from thresher.store.db import create_engine, migrate
from thresher.store.dispatch import ClaimCandidate, ClaimOutcome, DispatchClaims, Refused
from thresher.store.engines import Engines
from thresher.store.error_hosts import ErrorHosts
from thresher.store.events import Events
from thresher.store.farm_state import FarmState
from thresher.store.jobs import Jobs
from thresher.store.limits import Limits
from thresher.store.monitor import Monitor
from thresher.store.records import FinishReport, TokenRecord, WorkerRegistration
from thresher.store.scheduling import SchedulingSettings
from thresher.store.security import Audit, EnrolCodes, Users
from thresher.store.sites import Sites
from thresher.store.snapshot import Snapshots
from thresher.store.stats import Statistics
from thresher.store.submitters import Submitters
from thresher.store.tasks import Tasks
from thresher.store.tokens import Tokens
from thresher.store.workers import Workers

__all__ = [
    "ClaimCandidate",
    "ClaimOutcome",
    "FinishReport",
    "Refused",
    "Store",
    "TokenRecord",
    "WorkerRegistration",
]


class Store:
    """All farm state, composed of one repository per concept over one database."""

    def __init__(self, engine: sa.Engine) -> None:
        self.db = Database(engine)
        self.jobs = Jobs(self.db)
        self.tasks = Tasks(self.db)
        self.attempts = Attempts(self.db)
        self.workers = Workers(self.db, self.attempts)
        self.tokens = Tokens(self.db)
        self.access_keys = AccessKeys(self.db)
        self.engines = Engines(self.db)
        self.events = Events(self.db)  # events (the outbox), subscriptions, deliveries
        self.limits = Limits(self.db)
        self.error_hosts = ErrorHosts(self.db)
        self.scheduling = SchedulingSettings(self.db)
        self.snapshot = Snapshots(self.db)
        self.dispatch = DispatchClaims(self.db)
        self.sites = Sites(self.db)
        self.submitters = Submitters(self.db)  # queue environments, job extras, sessions
        self.users = Users(self.db)  # people: role and groups (security)
        self.enrol_codes = EnrolCodes(self.db)
        self.audit = Audit(self.db)
        self.monitor = Monitor(self.db)  # resource samples, task runs, changes (web monitor)
        self.stats = Statistics(self.db)
        self.farm_state = FarmState(self.db)  # counts by state, for /metrics

    @classmethod
    def open(cls, url: str) -> Self:
        """A store over the database at `url`, its schema brought up to date."""
        engine = create_engine(url)
        migrate(engine)
        return cls(engine)

    def close(self) -> None:
        self.tokens.close()
        self.db.engine.dispose()

    @property
    def engine(self) -> sa.Engine:
        return self.db.engine

    @property
    def dialect(self) -> str:
        return self.db.engine.dialect.name

    def transaction(
        self, *, claims_later: bool = False
    ) -> contextlib.AbstractContextManager[sa.Connection]:
        """One transaction for every store call made inside the block (see
        `Database.transaction`)."""
        return self.db.transaction(claims_later=claims_later)
