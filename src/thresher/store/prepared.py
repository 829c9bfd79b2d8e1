"""Statements of the hottest paths (a worker's poll), compiled once and run on the DBAPI
cursor of the caller's transaction.

SQLAlchemy's `Connection.execute` costs far more than the driver's own `execute` for a
statement that touches one row: the cache key, the execution context, the result object
(docs/performance.md, "Dispatch CPU per poll": about 35 % of a poll). `Prepared` keeps what
SQLAlchemy would do per run and does it once: the SQL text of each dialect, the order of its
parameters, the values of its literal binds, the type conversions of its parameters and
result columns. It runs on the same DBAPI connection as the rest of the transaction, so it
commits or rolls back with it, and a driver error goes through SQLAlchemy's own handling (a
lost connection invalidated, the error wrapped), so `unavailable_translated` sees it as it
sees any other (`Unavailable`, or `Contended` for a deadlock).

For statements with plain parameters only (no expanding `IN`, no multi-row `RETURNING`).

A statement that names the `blocks` table first writes the block changes its transaction
gathered (`store.tally`, `store.local_tally`), unless it says it reads none of them
(`tally_safe`); every statement first writes the claims its transaction gathered
(`store.claims_later`)."""

from __future__ import annotations

import collections
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.engine import Dialect

from thresher.store import claims_later, local_tally, tally

#: Called with (connection, SQL) before each run. SQLAlchemy's `before_cursor_execute` does
#: not see these statements: tests that count a path's statements watch here too.
WATCHERS: list[Callable[[sa.Connection, str], None]] = []


class _Compiled(NamedTuple):
    sql: str
    row: Callable[..., Any] | None  # a named tuple per result row
    types: tuple[Any, ...]  # the result columns' types
    blocks: bool  # names the blocks table (see `store.tally`)
    # The driver's parameters of a run's values: in the paramstyle's order, the statement's
    # literal values (`.values(status="x")`) as defaults, the dialect's conversions applied.
    params: Callable[[Mapping[str, Any]], Any]


def _param_maker(
    names: tuple[str, ...] | None,
    defaults: dict[str, Any],
    binds: dict[str, Callable[[Any], Any]],
) -> Callable[[Mapping[str, Any]], Any]:
    """The driver's parameters of a run's values, with as little Python per run as the shape
    allows: a run's value overrides the statement's literal value of the same name, a value
    neither gives is None, and a dialect's conversion applies to the values that are not None
    (SQLAlchemy's bind processors pass None through)."""
    if names is not None:  # positional: a sequence in `names` order
        fallback = tuple(defaults.get(n) for n in names)
        converted = tuple((i, binds[n]) for i, n in enumerate(names) if n in binds)
        if not converted:

            def positional(values: Mapping[str, Any]) -> Any:
                return tuple(map(values.get, names, fallback))

            return positional

        def positional_converted(values: Mapping[str, Any]) -> Any:
            out = list(map(values.get, names, fallback))
            for i, convert in converted:
                if out[i] is not None:
                    out[i] = convert(out[i])
            return out

        return positional_converted

    def named(values: Mapping[str, Any]) -> Any:
        merged = {**defaults, **values} if defaults else values
        if binds:
            merged = {
                k: (binds[k](v) if k in binds and v is not None else v) for k, v in merged.items()
            }
        return merged

    return named


def _row_type(keys: list[str]) -> Callable[..., Any]:
    """A named tuple type for rows of these columns (`row.column`, as SQLAlchemy's rows)."""
    return collections.namedtuple("Row", keys, rename=True)


class Prepared:
    """One statement, compiled once per dialect, run on the open transaction's cursor."""

    __slots__ = ("_by_dialect", "_results", "statement", "tally_safe")

    def __init__(self, statement: sa.ClauseElement, *, tally_safe: bool = False) -> None:
        """`tally_safe`: the statement reads none of the block columns a transaction gathers
        changes of (`store.tally`), so it need not write them first."""
        self.statement = statement
        self.tally_safe = tally_safe
        self._by_dialect: dict[str, _Compiled] = {}
        # Result conversions by dialect, known at the first run (they depend on the driver's
        # type codes in the cursor's description); () when none converts anything.
        self._results: dict[str, tuple[Callable[[Any], Any] | None, ...]] = {}

    def _compiled(self, dialect: Dialect) -> _Compiled:
        found = self._by_dialect.get(dialect.name)
        if found is not None:
            return found
        compiled: Any = self.statement.compile(dialect=dialect)
        if any(b.expanding for b in compiled.binds.values()):
            raise TypeError("Prepared takes no expanding parameters")
        params = compiled.construct_params(_check=False)
        binds = {
            name: proc
            for name, proc in compiled._bind_processors.items()  # what execute would apply
            if proc is not None
        }
        row: Callable[..., Any] | None = None
        types: tuple[Any, ...] = ()
        if compiled._result_columns:
            keys = [c[0] for c in compiled._result_columns]
            row = _row_type(keys)
            types = tuple(c[3] for c in compiled._result_columns)
        names = tuple(compiled.positiontup) if compiled.positional else None
        defaults = {k: v for k, v in params.items() if v is not None}
        found = _Compiled(
            str(compiled),
            row,
            types,
            tally.names_blocks(str(compiled)),
            _param_maker(names, defaults, binds),
        )
        self._by_dialect[dialect.name] = found
        return found

    def _run(
        self, conn: sa.Connection, values: Mapping[str, Any] | Sequence[Mapping[str, Any]]
    ) -> tuple[_Compiled, Any]:
        c = self._compiled(conn.dialect)
        if c.blocks and not self.tally_safe:
            if local_tally.pending(conn):
                local_tally.flush(conn)
            elif tally.pending(conn):
                tally.flush(conn)
        claims_later.write_before(conn)  # it may read the claims gathered
        if WATCHERS:
            for watch in WATCHERS:
                watch(conn, c.sql)
        dbapi_conn: Any = conn.connection.dbapi_connection
        cursor = dbapi_conn.cursor()
        params: Any = None
        try:
            if type(values) is dict or isinstance(values, Mapping):
                params = c.params(values)
                cursor.execute(c.sql, params)
            else:
                params = list(map(c.params, values))
                cursor.executemany(c.sql, params)
        except Exception as exc:
            cursor.close()
            # SQLAlchemy's own handling: a lost connection invalidated, the error wrapped as
            # `execute` would have wrapped it (so `unavailable_translated` translates it).
            conn._handle_dbapi_exception(exc, c.sql, params, cursor, None)
            raise
        return c, cursor

    def _conversions(
        self, c: _Compiled, dialect: Dialect, cursor: Any
    ) -> tuple[Callable[[Any], Any] | None, ...]:
        found = self._results.get(dialect.name)
        if found is None:
            codes = [d[1] for d in cursor.description]
            found = tuple(
                t._cached_result_processor(dialect, code)
                for t, code in zip(c.types, codes, strict=True)
            )
            if not any(found):
                found = ()
            self._results[dialect.name] = found
        return found

    def _rows(self, c: _Compiled, procs: tuple[Any, ...], fetched: list[Any]) -> list[Any]:
        make = c.row
        assert make is not None, "the statement returns no rows"
        if procs:
            return [
                make(*(v if p is None else p(v) for p, v in zip(procs, r, strict=True)))
                for r in fetched
            ]
        return [make(*r) for r in fetched]

    def all(self, conn: sa.Connection, values: Mapping[str, Any]) -> Sequence[Any]:
        """Every row the statement returns (named tuples: `row.column`)."""
        c, cursor = self._run(conn, values)
        try:
            return self._rows(c, self._conversions(c, conn.dialect, cursor), cursor.fetchall())
        finally:
            cursor.close()

    def first(self, conn: sa.Connection, values: Mapping[str, Any]) -> Any:
        """The first row the statement returns, or None."""
        rows = self.all(conn, values)
        return rows[0] if rows else None

    def run(
        self, conn: sa.Connection, values: Mapping[str, Any] | Sequence[Mapping[str, Any]]
    ) -> int:
        """Run a statement that returns no rows (once, or once per mapping of a sequence);
        how many rows it changed."""
        _, cursor = self._run(conn, values)
        try:
            return int(cursor.rowcount)
        finally:
            cursor.close()
