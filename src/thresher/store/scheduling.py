"""The scheduling settings people set, as the store keeps them: user priority and caps,
lane engines, NIMBY, and the jobs an `after_name` names. (Limits: `store.limits`; a worker's
pools: `store.workers`; error hosts: `store.error_hosts`.)
"""

from __future__ import annotations

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


#: One item of a glob: a character class (chars, ranges, negated), or ANY (`?`), or STAR (`*`).
_Item = tuple[frozenset[str], tuple[tuple[str, str], ...], bool] | str
_ANY, _STAR = "?", "*"


@dataclass(frozen=True)
class NameGlob:
    """A job-name pattern as `after_name` gives it: `*` any text (also none), `?` one character,
    `[abc]`, `[a-z]` and `[!abc]` one character of (or not of) a set; anything else stands for
    itself, and the pattern matches the whole name (`shot010_*`).

    A glob, not a regular expression, so that matching is bounded work: `matches` walks the name
    once, keeping the set of pattern positions reached (at most one per pattern item), so it
    costs at most len(name) x len(pattern) steps whatever either holds; a user's pattern can
    never stall the controller the way a backtracking regex does."""

    items: tuple[_Item, ...]

    @classmethod
    def parse(cls, pattern: str) -> NameGlob:
        items: list[_Item] = []
        i = 0
        while i < len(pattern):
            char = pattern[i]
            if char == "[":
                item, i = _char_class(pattern, i)
                items.append(item)
                continue
            if char == _STAR and items and items[-1] == _STAR:
                i += 1
                continue  # ** is *
            items.append(char if char in (_ANY, _STAR) else (frozenset(char), (), False))
            i += 1
        return cls(tuple(items))

    def matches(self, name: str) -> bool:
        """Whether the glob matches all of `name`."""
        end = len(self.items)
        states = self._closure({0})
        for char in name:
            reached = set()
            for at in states:
                if at == end:
                    continue
                item = self.items[at]
                if item == _STAR:
                    reached.add(at)
                elif item == _ANY or _in_class(item, char):
                    reached.add(at + 1)
            if not reached:
                return False
            states = self._closure(reached)
        return end in states

    def _closure(self, states: set[int]) -> set[int]:
        """`states` and the positions past each `*` they stand on (a star may match nothing)."""
        out = set(states)
        for at in states:
            while at < len(self.items) and self.items[at] == _STAR:
                at += 1
                out.add(at)
        return out


def _char_class(pattern: str, start: int) -> tuple[_Item, int]:
    """The `[...]` at `start` and the index past it."""
    i = start + 1
    negate = i < len(pattern) and pattern[i] == "!"
    i += negate
    chars: set[str] = set()
    ranges: list[tuple[str, str]] = []
    first = True
    while i < len(pattern) and (first or pattern[i] != "]"):
        first = False
        if i + 2 < len(pattern) and pattern[i + 1] == "-" and pattern[i + 2] != "]":
            ranges.append((pattern[i], pattern[i + 2]))
            i += 3
        else:
            chars.add(pattern[i])
            i += 1
    if i >= len(pattern):
        raise InvalidInput(
            f"after_name {pattern!r}: '[' at {start} is not closed by ']'", field="after_name"
        )
    return (frozenset(chars), tuple(ranges), negate), i + 1


def _in_class(item: _Item, char: str) -> bool:
    assert not isinstance(item, str)
    chars, ranges, negate = item
    found = char in chars or any(low <= char <= high for low, high in ranges)
    return found != negate


class SchedulingSettings(Repository):
    """User settings, lane engines, NIMBY and job names."""

    # -- jobs by name --

    def jobs_matching(self, pattern: str, *, owner: str | None) -> list[int]:
        """Ids of the jobs (of `owner`, or of anyone) whose whole name the glob matches (see
        `NameGlob`); a malformed glob is refused naming `after_name`."""
        glob = NameGlob.parse(pattern)
        query = sa.select(jobs.c.id, jobs.c.name).order_by(jobs.c.id)
        if owner is not None:
            query = query.where(jobs.c.owner == owner)
        with self.db.connect() as conn:
            rows = conn.execute(query).all()
        return [r.id for r in rows if glob.matches(r.name)]

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
