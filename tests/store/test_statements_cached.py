"""Every statement the store builds once, at import, has a cache key: SQLAlchemy then compiles
it once per dialect. A statement without one (a multi-row VALUES, a clause SQLAlchemy cannot
key) is compiled on every execution, which cost a submission's claim 8 ms on PostgreSQL on
this project's machine (docs/performance.md, 2026-12-07) without any test failing."""

from __future__ import annotations

import importlib
import pkgutil

from sqlalchemy.sql.base import Executable
from sqlalchemy.sql.cache_key import HasCacheKey

import thresher.store
from thresher.store.prepared import Prepared


def _built_at_import() -> dict[str, HasCacheKey]:
    found: dict[str, HasCacheKey] = {}
    for info in pkgutil.iter_modules(thresher.store.__path__):
        module = importlib.import_module(f"thresher.store.{info.name}")
        for name, value in vars(module).items():
            statement = value.statement if isinstance(value, Prepared) else value
            if isinstance(statement, Executable) and isinstance(statement, HasCacheKey):
                found[f"{info.name}.{name}"] = statement
    return found


def test_every_statement_built_at_import_is_compiled_once() -> None:
    built = _built_at_import()
    assert len(built) > 30  # the look found them (46 when this was written)
    uncached = [name for name, s in built.items() if s._generate_cache_key() is None]
    assert uncached == []
