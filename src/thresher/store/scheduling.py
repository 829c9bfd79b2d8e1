"""The scheduling settings people set, as the store keeps them: user priority and caps,
lane engines, NIMBY, and the jobs an `after_name` names. (Limits: `store.limits`; a worker's
pools: `store.workers`; error hosts: `store.error_hosts`.)
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from thresher.core.errors import InvalidInput, NotFound
from thresher.core.lanes import Nimby
from thresher.core.states import AttemptStatus
from thresher.store.base import Repository
from thresher.store.tables import attempts, jobs, user_settings, workers


@dataclass(frozen=True)
class UserRecord:
    """A user's scheduling settings, and (when listed) how many of their tasks run now."""

    name: str
    priority: int = 0
    max_running: int | None = None
    running: int = 0


class SchedulingSettings(Repository):
    """User settings, lane engines, NIMBY and job names."""

    # -- jobs by name --

    def jobs_matching(self, pattern: str, *, owner: str | None) -> list[int]:
        """Ids of the jobs (of `owner`, or of anyone) whose name the regex finds a match in."""
        try:
            regex = re.compile(pattern)
        except re.error as exc:
            raise InvalidInput(
                f"after_name {pattern!r} is not a regular expression: {exc}", field="after_name"
            ) from None
        query = sa.select(jobs.c.id, jobs.c.name).order_by(jobs.c.id)
        if owner is not None:
            query = query.where(jobs.c.owner == owner)
        with self.db.connect() as conn:
            rows = conn.execute(query).all()
        return [r.id for r in rows if regex.search(r.name)]

    # -- users --

    def set_user(self, name: str, *, priority: int, max_running: int | None) -> None:
        """Set a user's priority and cap on running tasks (None: no cap)."""
        values = {"priority": priority, "max_running": max_running}
        with self.db.begin() as conn:
            query = user_settings.update().where(user_settings.c.name == name).values(**values)
            if not conn.execute(query).rowcount:
                conn.execute(user_settings.insert().values(name=name, **values))

    def users(self) -> list[UserRecord]:
        """Users with settings, running tasks or unfinished jobs, by name."""
        with self.db.connect() as conn:
            settings = {r.name: r for r in conn.execute(sa.select(user_settings)).all()}
            running: dict[str, int] = dict(
                conn.execute(
                    sa.select(jobs.c.owner, sa.func.count())
                    .select_from(attempts.join(jobs, jobs.c.id == attempts.c.job_id))
                    .where(attempts.c.status == AttemptStatus.RUNNING.value)
                    .group_by(jobs.c.owner)
                ).all()
            )
            owners = set(
                conn.scalars(sa.select(jobs.c.owner).where(jobs.c.finished_at.is_(None)).distinct())
            )
        names = sorted(set(settings) | set(running) | owners)
        return [
            UserRecord(
                name,
                settings[name].priority if name in settings else 0,
                settings[name].max_running if name in settings else None,
                int(running.get(name, 0)),
            )
            for name in names
        ]

    # -- workers: lanes and NIMBY --

    def set_lane_engines(
        self, worker_id: int, lane: int, engines: Iterable[str] | None, *, reset: bool = False
    ) -> None:
        """Override what a lane runs (None: anything), or with `reset` go back to what the
        worker declared."""
        with self.db.begin() as conn:
            row = conn.execute(
                sa.select(workers.c.lanes, workers.c.lane_overrides).where(
                    workers.c.id == worker_id
                )
            ).first()
            if row is None:
                raise NotFound(f"worker {worker_id} does not exist", field="worker")
            if not 0 <= lane < row.lanes:
                raise InvalidInput(
                    f"the worker has lanes 0-{row.lanes - 1}, not lane {lane}", field="lane"
                )
            overrides: dict[str, Any] = dict(row.lane_overrides or {})
            if reset:
                overrides.pop(str(lane), None)
            else:
                overrides[str(lane)] = None if engines is None else sorted(set(engines))
            conn.execute(
                workers.update()
                .where(workers.c.id == worker_id)
                .values(lane_overrides=overrides or None)
            )

    def set_nimby(self, worker_id: int, state: Nimby | None, *, local: bool = False) -> None:
        """Set the NIMBY state from the controller, or (`local`) as the worker reports it."""
        column = "local_nimby" if local else "nimby"
        with self.db.begin() as conn:
            done = conn.execute(
                workers.update()
                .where(workers.c.id == worker_id)
                .values({column: state.value if state else None})
            ).rowcount
            if done != 1:
                raise NotFound(f"worker {worker_id} does not exist", field="worker")
