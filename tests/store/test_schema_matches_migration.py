"""The schema the Alembic migrations build is the one store/tables.py describes, on SQLite and
PostgreSQL: tables, columns, types, nullability, server defaults, indexes, unique constraints and
foreign keys, compared by Alembic's autogenerate."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from thresher.store import tables
from thresher.store.db import create_engine, migrate

pytestmark = pytest.mark.empty_database  # the migrations run here, on an empty database


def _flat(diff: Iterable[Any]) -> list[tuple[Any, ...]]:
    # compare_metadata gives a tuple per change, and a list of tuples per modified column.
    flat: list[tuple[Any, ...]] = []
    for change in diff:
        flat.extend(change if isinstance(change, list) else [change])
    return flat


def _same_empty_default(
    _context: MigrationContext,
    _inspected_column: sa.Column[Any],
    _metadata_column: sa.Column[Any],
    inspected_default: str | None,
    _metadata_default: Any,
    rendered_metadata_default: str | None,
) -> bool | None:
    """False (no difference) for `server_default=""` as SQLite reflects it, `('')`; None leaves
    every other default to Alembic. Alembic's SQLite comparison strips quotes only around a
    non-empty string, so it would report the empty default as changed."""
    if rendered_metadata_default == "" and inspected_default in ("''", "('')"):
        return False
    return None


def _differences(url: str, metadata: sa.MetaData) -> list[tuple[Any, ...]]:
    """What autogenerate would write to turn a database migrated to head into `metadata`."""
    engine = create_engine(url)
    try:
        migrate(engine)
        with engine.connect() as conn:
            context = MigrationContext.configure(
                conn, opts={"compare_type": True, "compare_server_default": _same_empty_default}
            )
            return _flat(compare_metadata(context, metadata))
    finally:
        engine.dispose()


def test_the_migrated_database_has_the_schema_of_tables_py(db_url: str) -> None:
    differences = _differences(db_url, tables.metadata)
    assert differences == [], "the migrations and tables.py differ:\n" + "\n".join(
        map(repr, differences)
    )


def _changed_copy() -> sa.MetaData:
    """tables.metadata with one difference of each kind the comparison must see."""
    changed = sa.MetaData(naming_convention=tables.metadata.naming_convention)
    for table in tables.metadata.sorted_tables:
        table.to_metadata(changed)
    changed.remove(changed.tables["user_settings"])
    jobs = changed.tables["jobs"]
    jobs.append_column(sa.Column("colour", sa.String(20), nullable=True))
    jobs.c.cwd.nullable = False
    jobs.c.created_at.type = sa.Integer()
    (owner_index,) = (i for i in jobs.indexes if i.name == "ix_jobs_owner")
    jobs.indexes.remove(owner_index)
    # A real change of an empty default is still seen (_same_empty_default lets only '' pass).
    changed.tables["blocks"].c.host_filters.server_default = sa.DefaultClause("x")
    revisions = changed.tables["engine_revisions"]
    (unique,) = (c for c in revisions.constraints if isinstance(c, sa.UniqueConstraint))
    revisions.constraints.remove(unique)
    revisions.append_constraint(sa.ForeignKeyConstraint(["name"], ["engines.name"]))
    return changed


def test_the_comparison_sees_each_kind_of_difference(db_url: str) -> None:
    # Guards the test above: were the comparison blind to a kind of change, it would pass vacuously.
    seen = {
        (d[0], *(d[2:4] if d[0].startswith("modify_") else ()))
        for d in _differences(db_url, _changed_copy())
    }
    assert seen == {
        ("remove_table",),
        ("add_column",),
        ("modify_nullable", "jobs", "cwd"),
        ("modify_type", "jobs", "created_at"),
        ("remove_index",),
        ("modify_default", "blocks", "host_filters"),
        ("remove_constraint",),
        ("add_fk",),
    }
