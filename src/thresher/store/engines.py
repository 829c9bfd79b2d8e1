"""The engine registry: published engine sources by name and revision, and which is current.

Revision 0 of a name is the controller's built-in engine (synchronised at start); publishing
adds revision 1, 2, ... Rolling back moves the ``current_revision`` pointer, so a revision
number always names one source. Attempts of engine jobs record the revision they were handed
out with, stamped in the claim's transaction by :func:`stamp_engine`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from thresher.core.errors import Conflict, NotFound
from thresher.store.base import Repository
from thresher.store.tables import attempts, blocks, engine_revisions, engines

BUILTIN_REVISION = 0
BUILTIN_PUBLISHER = "(built in)"


@dataclass(frozen=True)
class EngineSource:
    """What the registry keeps about one engine source (a built-in one or a published one)."""

    source: str
    source_hash: str
    settings: Mapping[str, Any]
    parameters: Mapping[str, Any]


@dataclass(frozen=True)
class EngineRevisionRecord:
    name: str
    revision: int
    source_hash: str
    settings: Mapping[str, Any]
    parameters: Mapping[str, Any]
    published_by: str
    published_at: float

    @property
    def builtin(self) -> bool:
        return self.revision == BUILTIN_REVISION


@dataclass(frozen=True)
class EngineRecord:
    """An engine name: its current revision (None when that revision is gone, e.g. a built-in
    engine this controller no longer ships), whether new jobs may use it, and its newest
    revision number."""

    name: str
    current_revision: int
    enabled: bool
    updated_at: float
    latest_revision: int
    has_builtin: bool
    current: EngineRevisionRecord | None


@dataclass(frozen=True)
class EngineStamp:
    """The engine revision an attempt was handed out with."""

    name: str
    revision: int | None
    source_hash: str | None


def _revision_record(row: Any) -> EngineRevisionRecord:
    return EngineRevisionRecord(
        name=row.name,
        revision=row.revision,
        source_hash=row.source_hash,
        settings=dict(row.settings),
        parameters=dict(row.parameters),
        published_by=row.published_by,
        published_at=row.published_at,
    )


_REVISION_COLUMNS = (
    engine_revisions.c.name,
    engine_revisions.c.revision,
    engine_revisions.c.source_hash,
    engine_revisions.c.settings,
    engine_revisions.c.parameters,
    engine_revisions.c.published_by,
    engine_revisions.c.published_at,
)


def stamp_engine(conn: sa.Connection, block_id: int, attempt_id: int) -> EngineStamp | None:
    """Record on the attempt which revision of its block's engine it runs, in the caller's
    (claim) transaction. None for a block without an engine."""
    name = conn.scalar(sa.select(blocks.c.engine).where(blocks.c.id == block_id))
    if name is None:
        return None
    row = conn.execute(
        sa.select(engines.c.current_revision, engine_revisions.c.source_hash)
        .select_from(
            engines.outerjoin(
                engine_revisions,
                sa.and_(
                    engine_revisions.c.name == engines.c.name,
                    engine_revisions.c.revision == engines.c.current_revision,
                ),
            )
        )
        .where(engines.c.name == name)
    ).first()
    if row is None or row.source_hash is None:
        return EngineStamp(name, None, None)  # the worker fails the task, saying so
    conn.execute(
        attempts.update()
        .where(attempts.c.id == attempt_id)
        .values(engine_revision=row.current_revision)
    )
    return EngineStamp(name, int(row.current_revision), str(row.source_hash))


class Engines(Repository):
    def sync_builtins(self, builtins: Mapping[str, EngineSource], *, now: float) -> None:
        """Make revision 0 of each name this controller's built-in source, add a registry row
        for new names, and drop revision 0 of names no longer built in."""
        with self.db.begin() as conn:
            rows = {
                r.name: r
                for r in conn.execute(
                    sa.select(engine_revisions.c.name, engine_revisions.c.source_hash).where(
                        engine_revisions.c.revision == BUILTIN_REVISION
                    )
                ).all()
            }
            known = set(conn.scalars(sa.select(engines.c.name)).all())
            for name, builtin in builtins.items():
                values = {
                    "source": builtin.source,
                    "source_hash": builtin.source_hash,
                    "settings": dict(builtin.settings),
                    "parameters": dict(builtin.parameters),
                    "published_by": BUILTIN_PUBLISHER,
                    "published_at": now,
                }
                old = rows.get(name)
                if old is None:
                    conn.execute(
                        engine_revisions.insert().values(
                            name=name, revision=BUILTIN_REVISION, **values
                        )
                    )
                elif old.source_hash != builtin.source_hash:
                    conn.execute(
                        engine_revisions.update()
                        .where(
                            engine_revisions.c.name == name,
                            engine_revisions.c.revision == BUILTIN_REVISION,
                        )
                        .values(**values)
                    )
                if name not in known:
                    conn.execute(
                        engines.insert().values(
                            name=name,
                            current_revision=BUILTIN_REVISION,
                            enabled=True,
                            updated_at=now,
                        )
                    )
            gone = set(rows) - set(builtins)
            if gone:
                conn.execute(
                    engine_revisions.delete().where(
                        engine_revisions.c.name.in_(gone),
                        engine_revisions.c.revision == BUILTIN_REVISION,
                    )
                )

    def publish(self, name: str, engine: EngineSource, *, by: str, now: float) -> int:
        """Store a new revision of ``name`` and make it current; returns its number."""
        try:
            with self.db.begin() as conn:
                latest = conn.scalar(
                    sa.select(sa.func.max(engine_revisions.c.revision)).where(
                        engine_revisions.c.name == name
                    )
                )
                revision = max(int(latest or 0), BUILTIN_REVISION) + 1
                conn.execute(
                    engine_revisions.insert().values(
                        name=name,
                        revision=revision,
                        source=engine.source,
                        source_hash=engine.source_hash,
                        settings=dict(engine.settings),
                        parameters=dict(engine.parameters),
                        published_by=by,
                        published_at=now,
                    )
                )
                moved = conn.execute(
                    engines.update()
                    .where(engines.c.name == name)
                    .values(current_revision=revision, updated_at=now)
                ).rowcount
                if moved == 0:
                    conn.execute(
                        engines.insert().values(
                            name=name, current_revision=revision, enabled=True, updated_at=now
                        )
                    )
        except sa.exc.IntegrityError:
            raise Conflict(
                f"engine {name!r} was published by someone else at the same moment; try again",
                field="name",
            ) from None
        return revision

    def all(self) -> list[EngineRecord]:
        """Every engine name, by name."""
        with self.db.connect() as conn:
            rows = conn.execute(sa.select(engines).order_by(engines.c.name)).all()
            return self._records(conn, rows)

    def get(self, name: str) -> EngineRecord:
        with self.db.connect() as conn:
            rows = conn.execute(sa.select(engines).where(engines.c.name == name)).all()
            if not rows:
                raise NotFound(f"no engine named {name!r}", field="name")
            return self._records(conn, rows)[0]

    def _records(self, conn: sa.Connection, rows: Sequence[Any]) -> list[EngineRecord]:
        names = [r.name for r in rows]
        summary = {
            r.name: r
            for r in conn.execute(
                sa.select(
                    engine_revisions.c.name,
                    sa.func.max(engine_revisions.c.revision).label("latest"),
                    sa.func.min(engine_revisions.c.revision).label("first"),
                )
                .where(engine_revisions.c.name.in_(names))
                .group_by(engine_revisions.c.name)
            ).all()
        }
        current = {
            (r.name, r.revision): _revision_record(r)
            for r in conn.execute(
                sa.select(*_REVISION_COLUMNS).where(
                    sa.tuple_(engine_revisions.c.name, engine_revisions.c.revision).in_(
                        [(r.name, r.current_revision) for r in rows]
                    )
                )
            ).all()
        }
        out = []
        for row in rows:
            found = summary.get(row.name)
            out.append(
                EngineRecord(
                    name=row.name,
                    current_revision=row.current_revision,
                    enabled=row.enabled,
                    updated_at=row.updated_at,
                    latest_revision=int(found.latest) if found else BUILTIN_REVISION,
                    has_builtin=found is not None and found.first == BUILTIN_REVISION,
                    current=current.get((row.name, row.current_revision)),
                )
            )
        return out

    def revisions(self, name: str) -> list[EngineRevisionRecord]:
        """Every revision of ``name``, oldest first."""
        with self.db.connect() as conn:
            rows = conn.execute(
                sa.select(*_REVISION_COLUMNS)
                .where(engine_revisions.c.name == name)
                .order_by(engine_revisions.c.revision)
            ).all()
        return [_revision_record(r) for r in rows]

    def source(self, name: str, revision: int) -> tuple[EngineRevisionRecord, str]:
        """One revision and its source text; NotFound when there is no such revision."""
        with self.db.connect() as conn:
            row = conn.execute(
                sa.select(*_REVISION_COLUMNS, engine_revisions.c.source).where(
                    engine_revisions.c.name == name, engine_revisions.c.revision == revision
                )
            ).first()
        if row is None:
            raise NotFound(f"engine {name!r} has no revision {revision}", field="revision")
        return _revision_record(row), str(row.source)

    def set_enabled(self, name: str, enabled: bool, *, now: float) -> None:
        with self.db.begin() as conn:
            result = conn.execute(
                engines.update()
                .where(engines.c.name == name)
                .values(enabled=enabled, updated_at=now)
            )
            if result.rowcount != 1:
                raise NotFound(f"no engine named {name!r}", field="name")

    def set_current(self, name: str, revision: int, *, now: float) -> None:
        """Point ``name`` at an existing revision (a rollback, or back to the built-in one)."""
        with self.db.begin() as conn:
            exists = conn.scalar(
                sa.select(engine_revisions.c.id).where(
                    engine_revisions.c.name == name, engine_revisions.c.revision == revision
                )
            )
            if exists is None:
                raise NotFound(f"engine {name!r} has no revision {revision}", field="revision")
            result = conn.execute(
                engines.update()
                .where(engines.c.name == name)
                .values(current_revision=revision, updated_at=now)
            )
            if result.rowcount != 1:
                raise NotFound(f"no engine named {name!r}", field="name")
