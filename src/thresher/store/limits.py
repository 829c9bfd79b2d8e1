"""Limits (licenses): named counts with a farm total, a per-host maximum and a host count.

Each unit a running attempt holds is a row of `limit_holds`, inserted in the claim's transaction
and deleted in the transaction that ends the attempt, so usage is always what the rows say.

Never exceeded, even when claims race (several controllers on one PostgreSQL): a claim first
locks the rows of the limits it needs, in name order, with an UPDATE that changes nothing (the
portable row lock: PostgreSQL holds it to the end of the transaction; SQLite takes its write
lock), then counts the holds and asks `core.ordering.limits_allow`. Two claims of one limit are
thus serialised, and the second sees the first one's hold.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import sqlalchemy as sa

from thresher.core.errors import NotFound
from thresher.core.ordering import LimitState, limits_allow
from thresher.store.base import Repository
from thresher.store.tables import limit_holds, limits

NAME_PATTERN = r"^[A-Za-z0-9_.-]{1,100}$"


@dataclass(frozen=True)
class LimitRecord:
    """A limit and who holds it now (hostname -> units)."""

    name: str
    max_total: int | None
    max_per_host: int | None
    max_hosts: int | None
    in_use_by_host: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "in_use_by_host", MappingProxyType(dict(self.in_use_by_host)))

    @property
    def in_use(self) -> int:
        return sum(self.in_use_by_host.values())

    def state(self) -> LimitState:
        return LimitState(
            self.name, self.max_total, self.max_per_host, self.max_hosts, self.in_use_by_host
        )


def release_holds(conn: sa.Connection, attempt_id: int) -> None:
    """Give back the limit units an attempt holds (it ended)."""
    conn.execute(limit_holds.delete().where(limit_holds.c.attempt_id == attempt_id))


def limit_usage(conn: sa.Connection, names: Iterable[str]) -> dict[str, dict[str, int]]:
    rows = conn.execute(
        sa.select(limit_holds.c.limit_name, limit_holds.c.hostname, sa.func.count())
        .where(limit_holds.c.limit_name.in_(list(names)))
        .group_by(limit_holds.c.limit_name, limit_holds.c.hostname)
    ).all()
    usage: dict[str, dict[str, int]] = {}
    for name, host, n in rows:
        usage.setdefault(name, {})[host] = int(n)
    return usage


def lock_and_check(conn: sa.Connection, names: Sequence[str], hostname: str) -> str | None:
    """Lock the named limits and check that `hostname` may take one unit of each. Returns the
    first limit that is full, or None. Limits that no longer exist hold nothing back."""
    wanted = sorted(set(names))
    present = []
    for name in wanted:
        locked = conn.execute(
            limits.update().where(limits.c.name == name).values(updated_at=limits.c.updated_at)
        ).rowcount
        if locked:
            present.append(name)
    if not present:
        return None
    rows = {r.name: r for r in conn.execute(sa.select(limits).where(limits.c.name.in_(present)))}
    usage = limit_usage(conn, present)
    for name in present:
        row = rows[name]
        state = LimitState(
            name, row.max_total, row.max_per_host, row.max_hosts, usage.get(name, {})
        )
        if not limits_allow(state, hostname):
            return name
    return None


def take_holds(
    conn: sa.Connection, names: Sequence[str], *, attempt_id: int, hostname: str
) -> None:
    """Record the units a new attempt holds (after `lock_and_check` said yes)."""
    if names:
        conn.execute(
            limit_holds.insert(),
            [
                {"limit_name": n, "attempt_id": attempt_id, "hostname": hostname}
                for n in sorted(set(names))
            ],
        )


class Limits(Repository):
    def set(
        self,
        name: str,
        *,
        max_total: int | None,
        max_per_host: int | None,
        max_hosts: int | None,
        now: float,
    ) -> None:
        """Create a limit or change its maximums (None: no maximum). Lowering a maximum below
        what is held stops new claims; it never stops running tasks."""
        values: dict[str, Any] = {
            "max_total": max_total,
            "max_per_host": max_per_host,
            "max_hosts": max_hosts,
            "updated_at": now,
        }
        with self.db.begin() as conn:
            if conn.execute(limits.update().where(limits.c.name == name).values(**values)).rowcount:
                return
            conn.execute(limits.insert().values(name=name, **values))

    def delete(self, name: str) -> None:
        with self.db.begin() as conn:
            if conn.execute(limits.delete().where(limits.c.name == name)).rowcount != 1:
                raise NotFound(f"limit {name!r} does not exist", field="name")

    def all(self, names: Iterable[str] | None = None) -> list[LimitRecord]:
        """Limits by name with their usage; all of them, or those in `names`."""
        query = sa.select(limits).order_by(limits.c.name)
        if names is not None:
            query = query.where(limits.c.name.in_(list(names)))
        with self.db.connect() as conn:
            rows = conn.execute(query).all()
            usage = limit_usage(conn, [r.name for r in rows])
        return [
            LimitRecord(r.name, r.max_total, r.max_per_host, r.max_hosts, usage.get(r.name, {}))
            for r in rows
        ]

    def get(self, name: str) -> LimitRecord:
        found = self.all([name])
        if not found:
            raise NotFound(f"limit {name!r} does not exist", field="name")
        return found[0]

    def missing(self, names: Iterable[str]) -> list[str]:
        """Which of these limits do not exist, sorted."""
        wanted = set(names)
        if not wanted:
            return []
        with self.db.connect() as conn:
            found = set(conn.scalars(sa.select(limits.c.name).where(limits.c.name.in_(wanted))))
        return sorted(wanted - found)
