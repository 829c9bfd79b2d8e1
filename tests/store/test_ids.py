"""Row ids: never given twice, and 64-bit wherever the database would otherwise stop at 2^31."""

from __future__ import annotations

import sqlalchemy as sa

from tests.store.support import block
from thresher.core.model import JobSpec
from thresher.store.store import Store
from thresher.store.tables import metadata


def spec(name: str) -> JobSpec:
    return JobSpec(
        name=name, owner="alice", priority=50, kind="command", blocks=(block("main", "1", 1),)
    )


def test_a_deleted_jobs_id_is_never_given_again(store: Store) -> None:
    first = store.jobs.create(spec("a"), now=0.0)
    newest = store.jobs.create(spec("b"), now=0.0)
    store.jobs.delete(newest)

    again = store.jobs.create(spec("c"), now=0.0)

    assert again > newest > first


def test_every_row_id_is_64_bit(store: Store) -> None:
    inspector = sa.inspect(store.engine)
    narrow = []
    for table in metadata.sorted_tables:
        for column in inspector.get_columns(table.name):
            is_number = isinstance(column["type"], sa.Integer)
            if is_number and (column["name"] == "id" or column["name"].endswith("_id")):
                type_name = str(column["type"]).upper()
                # SQLite's INTEGER PRIMARY KEY is a 64-bit rowid; elsewhere the type says it.
                wide = "BIGINT" in type_name or store.dialect == "sqlite"
                if not wide:
                    narrow.append(f"{table.name}.{column['name']}: {type_name}")
    assert narrow == []
