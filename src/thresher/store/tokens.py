"""Bearer tokens, stored as hashes, with a label, an expiry and a revoked flag."""

from __future__ import annotations

import contextlib
import functools
import json
import threading
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from thresher.core.errors import Unavailable
from thresher.store.base import Database, Repository
from thresher.store.records import TokenInfo, TokenRecord
from thresher.store.tables import tokens, users

# Built once: every request looks its token up, and building a statement costs more than
# running it. A token works while it is not revoked, not expired, and its user (if it has an
# account) is not disabled; the user's groups come along.
_FIND = (
    sa.select(tokens.c.id, tokens.c.name, tokens.c.role, users.c.groups)
    .select_from(tokens.outerjoin(users, users.c.name == tokens.c.name))
    .where(
        tokens.c.token_hash == sa.bindparam("token_hash"),
        tokens.c.revoked.is_(False),
        sa.or_(tokens.c.expires_at.is_(None), tokens.c.expires_at > sa.bindparam("now")),
        sa.or_(users.c.disabled.is_(None), users.c.disabled.is_(False)),
    )
)


class HeldConnection:
    """A database connection of its own, held open (autocommit, so every read sees what was
    committed last), for reads every request makes: taking a pooled connection and giving it
    back costs about twice the query itself (docs/performance.md, "Auth"). Used from one
    thread at a time (the farm thread); a broken connection is replaced once, then the
    failure is `Unavailable`."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self._conn: Any = None
        self._lock = threading.Lock()

    def rows(self, sql: str, params: Any) -> list[Any]:
        with self._lock:
            for attempt in (1, 2):
                try:
                    return self._run(sql, params)
                except self.engine.dialect.loaded_dbapi.Error as exc:
                    self._close()
                    if attempt == 2:
                        raise Unavailable(f"the database is unavailable: {exc}") from exc
        return []  # not reached

    def _run(self, sql: str, params: Any) -> list[Any]:
        if self._conn is None:
            self._conn = self.engine.raw_connection()
            if self.engine.dialect.name == "postgresql":
                self._conn.driver_connection.autocommit = True
        cursor = self._conn.cursor()
        try:
            cursor.execute(sql, params)
            return list(cursor.fetchall())
        finally:
            cursor.close()

    def _close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.invalidate()

    def close(self) -> None:
        with self._lock:
            self._close()


class HeldRead:
    """One read statement, compiled once, run on a `HeldConnection`."""

    def __init__(self, held: HeldConnection, statement: sa.Select[Any]) -> None:
        compiled = statement.compile(dialect=held.engine.dialect)
        self.held, self.sql = held, str(compiled)
        self.names = compiled.positiontup if compiled.positional else None

    def all(self, values: dict[str, Any]) -> list[Any]:
        params = tuple(values[n] for n in self.names) if self.names is not None else values
        return self.held.rows(self.sql, params)

    def first(self, values: dict[str, Any]) -> Any:
        rows = self.all(values)
        return rows[0] if rows else None


#: Tokens confirmed together (polls queued together on the farm thread): statements for up to
#: this many hashes at a time, in sizes of powers of two (a shorter list is padded).
FIND_MANY_MAX = 64


@functools.lru_cache(maxsize=8)
def _find_many(n: int) -> sa.Select[Any]:
    return (
        sa.select(tokens.c.token_hash, tokens.c.id, tokens.c.name, tokens.c.role, users.c.groups)
        .select_from(tokens.outerjoin(users, users.c.name == tokens.c.name))
        .where(
            tokens.c.token_hash.in_([sa.bindparam(f"h{i}") for i in range(n)]),
            tokens.c.revoked.is_(False),
            sa.or_(tokens.c.expires_at.is_(None), tokens.c.expires_at > sa.bindparam("now")),
            sa.or_(users.c.disabled.is_(None), users.c.disabled.is_(False)),
        )
    )


def _record(row: Any, skip: int = 0) -> TokenRecord:
    token_id, name, role, groups = tuple(row)[skip:]
    if isinstance(groups, str):  # the raw driver answers JSON as text
        groups = json.loads(groups)
    return TokenRecord(token_id, name, role, tuple(groups or ()))


def _info(row: Any) -> TokenInfo:
    return TokenInfo(
        id=row.id,
        name=row.name,
        role=row.role,
        label=row.label,
        created_by=row.created_by,
        created_at=row.created_at,
        expires_at=row.expires_at,
        revoked=bool(row.revoked),
    )


class Tokens(Repository):
    def __init__(self, db: Database) -> None:
        super().__init__(db)
        self._held = HeldConnection(db.engine)
        self._find = HeldRead(self._held, _FIND)
        self._find_many: dict[int, HeldRead] = {}

    def close(self) -> None:
        self._held.close()

    def add(
        self,
        *,
        name: str,
        role: str,
        token_hash: str,
        now: float,
        label: str | None = None,
        created_by: str | None = None,
        expires_at: float | None = None,
    ) -> int:
        with self.db.begin() as conn:
            result = conn.execute(
                tokens.insert().values(
                    name=name,
                    role=role,
                    token_hash=token_hash,
                    created_at=now,
                    revoked=False,
                    label=label,
                    created_by=created_by,
                    expires_at=expires_at,
                )
            )
            return int(result.inserted_primary_key[0])  # type: ignore[index]

    def find(self, token_hash: str, *, now: float) -> TokenRecord | None:
        """The token with this hash if it works now (not revoked, not expired)."""
        values = {"token_hash": token_hash, "now": now}
        if self.db.in_transaction():
            with self.db.connect() as conn:
                found = conn.execute(_FIND, values).first()
            row = None if found is None else tuple(found)
        else:
            row = self._find.first(values)
        return None if row is None else _record(row)

    def find_many(self, token_hashes: Sequence[str], *, now: float) -> dict[str, TokenRecord]:
        """`find` for several tokens in one read: hash -> record of those that work now."""
        found: dict[str, TokenRecord] = {}
        hashes = list(dict.fromkeys(token_hashes))
        for start in range(0, len(hashes), FIND_MANY_MAX):
            part = hashes[start : start + FIND_MANY_MAX]
            n = 1 << (len(part) - 1).bit_length()  # a few statement shapes, each compiled once
            values: dict[str, Any] = {f"h{i}": part[min(i, len(part) - 1)] for i in range(n)}
            values["now"] = now
            if self.db.in_transaction():
                with self.db.connect() as conn:
                    rows: list[Any] = list(conn.execute(_find_many(n), values))
            else:
                read = self._find_many.get(n)
                if read is None:
                    read = self._find_many[n] = HeldRead(self._held, _find_many(n))
                rows = read.all(values)
            found.update((row[0], _record(row, 1)) for row in rows)
        return found

    def get(self, token_id: int) -> TokenInfo | None:
        with self.db.connect() as conn:
            row = conn.execute(sa.select(tokens).where(tokens.c.id == token_id)).first()
        return _info(row) if row else None

    def listed(self, *, name: str | None = None, revoked: bool = False) -> list[TokenInfo]:
        """Tokens (of `name`, else all), oldest first; revoked ones only with `revoked`."""
        query = sa.select(tokens).order_by(tokens.c.id)
        if name is not None:
            query = query.where(tokens.c.name == name)
        if not revoked:
            query = query.where(tokens.c.revoked.is_(False))
        with self.db.connect() as conn:
            return [_info(row) for row in conn.execute(query)]

    def revoke(self, token_id: int) -> None:
        """The token no longer works (a worker's old token when it re-attached)."""
        with self.db.begin() as conn:
            conn.execute(tokens.update().where(tokens.c.id == token_id).values(revoked=True))

    def revoke_named(self, name: str) -> int:
        """Revoke every token named `name` (a user removed); how many."""
        with self.db.begin() as conn:
            result = conn.execute(
                tokens.update()
                .where(tokens.c.name == name, tokens.c.revoked.is_(False))
                .values(revoked=True)
            )
            return int(result.rowcount)

    def set_role_of(self, name: str, role: str, *, roles: Sequence[str]) -> None:
        """The tokens named `name` whose role is one of `roles` get `role` (a user's new role)."""
        with self.db.begin() as conn:
            conn.execute(
                tokens.update()
                .where(tokens.c.name == name, tokens.c.role.in_(list(roles)))
                .values(role=role)
            )

    def count(self, role: str) -> int:
        with self.db.connect() as conn:
            n = conn.scalar(
                sa.select(sa.func.count()).where(tokens.c.role == role, tokens.c.revoked.is_(False))
            )
        return int(n or 0)
