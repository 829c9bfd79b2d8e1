"""The engine registry's use cases: publish, list, show, enable, disable, roll back.

Built-in engines are revision 0 of their name, written into the registry at start
(:meth:`EngineRegistry.sync_builtins`); publishing under a name adds revision 1, 2, ... and
makes it current, overriding the built-in one. Rolling back points the name at an older
revision (0 included) without adding one, so a revision number always means one source.
Publishing through the API checks the script in a process of its own with a time limit
(:mod:`thresher.controller.engine_check`): a script that does not compile, raises while
loading, defines no valid ``Engine`` class or loads too slowly is refused with the Python
error, and none of its code runs in the controller then.

Engine classes are kept in memory by source hash: the controller loads each source once and
uses it to check engine jobs' parameters at submit (:mod:`thresher.controller.engine_jobs`).
"""

from __future__ import annotations

import json
import threading
from typing import Any

from thresher.controller.auth import Caller
from thresher.core.clock import Clock
from thresher.core.errors import InvalidInput, NotFound
from thresher.core.query import Condition, Query, check_fields, parse_where
from thresher.engines import (
    Engine,
    EngineLoadError,
    builtin_engines,
    load_builtin,
    load_engine_source,
    source_hash,
)
from thresher.store.engines import EngineRecord, EngineRevisionRecord, EngineSource
from thresher.store.store import Store

#: Fields `GET /api/v1/engines?where=` and `client.find("engine where ...")` may name, besides
#: every SETTINGS key (type, items, multiple_inputs, filename_extensions, ...).
QUERY_FIELDS = (
    "name",
    "revision",
    "builtin",
    "has_builtin",
    "latest_revision",
    "enabled",
    "source_hash",
    "published_by",
)
SETTING_FIELDS = tuple(Engine.settings())


def describe(engine_class: type[Engine], *, name: str, source: str) -> EngineSource:
    """What the registry stores about a loaded engine; InvalidInput when its SETTINGS or
    PARAMETERS are not plain JSON values."""
    settings, parameters = engine_class.settings(), engine_class.default_parameters()
    for label, value in (("SETTINGS", settings), ("PARAMETERS", parameters)):
        try:
            json.dumps(value)
        except (TypeError, ValueError) as exc:
            raise InvalidInput(
                f"engine {name!r}: {label} must hold only JSON values: {exc}", field="source"
            ) from None
    return EngineSource(
        source=source,
        source_hash=source_hash(source),
        settings=settings,
        parameters=parameters,
    )


def query_record(record: EngineRecord) -> dict[str, Any]:
    """The flat fields a where clause matches an engine on."""
    current = record.current
    return {
        **(current.settings if current else {}),
        "name": record.name,
        "revision": current.revision if current else None,
        "builtin": bool(current and current.builtin),
        "has_builtin": record.has_builtin,
        "latest_revision": record.latest_revision,
        "enabled": record.enabled,
        "source_hash": current.source_hash if current else None,
        "published_by": current.published_by if current else None,
    }


class EngineRegistry:
    """Engine use cases over one store; one instance per controller process."""

    def __init__(self, store: Store, clock: Clock) -> None:
        self.store = store
        self.clock = clock
        self._classes: dict[str, type[Engine]] = {}
        self._lock = threading.Lock()

    # -- start ----------------------------------------------------------------------------------

    def sync_builtins(self) -> None:
        """Write this controller's built-in engines into the registry as revision 0."""
        found: dict[str, EngineSource] = {}
        for name, source in builtin_engines().items():
            engine_class = load_builtin(name)
            found[name] = describe(engine_class, name=name, source=source)
            self._remember(found[name].source_hash, engine_class)
        self.store.engines.sync_builtins(found, now=self.clock.now())

    # -- people ---------------------------------------------------------------------------------

    def publish_checked(self, caller: Caller, name: str, described: EngineSource) -> EngineRecord:
        """Admins: store a source checked in its own process (`engine_check`) as the next
        revision of ``name`` and make it current. Nothing of the script runs here."""
        caller.require("admin")
        self.store.engines.publish(name, described, by=caller.name, now=self.clock.now())
        return self.store.engines.get(name)

    def list_engines(self, caller: Caller, *, where: str | None = None) -> list[EngineRecord]:
        """Every engine, or those matching a where clause (see :mod:`thresher.core.query`)."""
        conditions: tuple[Condition, ...] = ()
        if where and where.strip():
            conditions = parse_where(where)
            check_fields(conditions, (*QUERY_FIELDS, *SETTING_FIELDS), field="where")
        records = self.store.engines.all()
        if not conditions:
            return records
        query = Query("engine", conditions)
        return [r for r in records if query.matches(query_record(r))]

    def show(self, caller: Caller, name: str) -> tuple[EngineRecord, list[EngineRevisionRecord]]:
        return self.store.engines.get(name), self.store.engines.revisions(name)

    def source(self, caller: Caller, name: str, revision: int) -> tuple[EngineRevisionRecord, str]:
        return self.store.engines.source(name, revision)

    def current_source(self, record: EngineRecord) -> str | None:
        if record.current is None:
            return None
        return self.store.engines.source(record.name, record.current.revision)[1]

    def set_enabled(self, caller: Caller, name: str, enabled: bool) -> EngineRecord:
        caller.require("admin")
        self.store.engines.set_enabled(name, enabled, now=self.clock.now())
        return self.store.engines.get(name)

    def rollback(self, caller: Caller, name: str, revision: int) -> EngineRecord:
        """Admins only: make an existing revision current again (0: the built-in one). New
        tasks use it from their next claim; running ones finish on what they were given."""
        caller.require("admin")
        self.store.engines.set_current(name, revision, now=self.clock.now())
        return self.store.engines.get(name)

    # -- workers --------------------------------------------------------------------------------

    def agent_source(self, caller: Caller, name: str, revision: int) -> tuple[str, str]:
        """(source, hash) of one revision, for a worker about to run it."""
        caller.require("worker", "admin")
        record, source = self.store.engines.source(name, revision)
        return source, record.source_hash

    # -- engine classes -------------------------------------------------------------------------

    def engine_class(self, record: EngineRecord) -> type[Engine]:
        """The class of ``record``'s current revision, loaded once per source hash."""
        current = record.current
        if current is None:
            raise NotFound(f"engine {record.name!r} has no current revision", field="engine")
        with self._lock:
            known = self._classes.get(current.source_hash)
        if known is not None:
            return known
        _, source = self.store.engines.source(record.name, current.revision)
        try:
            engine_class = load_engine_source(record.name, source)
        except EngineLoadError as exc:  # a stored source always loaded once; say so if not now
            raise InvalidInput(
                f"engine {record.name!r} revision {current.revision} no longer loads: "
                f"{exc.message}",
                field="engine",
            ) from None
        self._remember(current.source_hash, engine_class)
        return engine_class

    def _remember(self, digest: str, engine_class: type[Engine]) -> None:
        with self._lock:
            self._classes[digest] = engine_class
