"""The engine registry's use cases: publish, list, show, enable, disable, roll back.

Built-in engines are revision 0 of their name, written into the registry at start
(:meth:`EngineRegistry.sync_builtins`); publishing under a name adds revision 1, 2, ... and
makes it current, overriding the built-in one. Rolling back points the name at an older
revision (0 included) without adding one, so a revision number always means one source.
Publishing through the API checks the script in a process of its own with a time limit
(:mod:`thresher.controller.engine_check`): a script that does not compile, raises while
loading, defines no valid ``Engine`` class or loads too slowly is refused with the Python
error, and none of its code runs in the controller then.

Checking an engine job at submit (:mod:`thresher.controller.compile.engine`) reads the
engine's SETTINGS from the registry and asks the engine to merge the job's parameters: a
built-in engine (Thresher's own code) in process, a published revision in the engine host, a
process of its own (:mod:`thresher.controller.engine_host`). A published engine's code never
runs in the controller.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from thresher.controller.auth import Caller
from thresher.controller.compile.lookup import EngineRules
from thresher.controller.engine_host import EngineHost
from thresher.core.clock import Clock
from thresher.core.errors import InvalidInput, NotFound
from thresher.core.query import Condition, Query, check_fields, parse_where
from thresher.engines import (
    Engine,
    builtin_engines,
    load_builtin,
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


@dataclass(frozen=True)
class HostedEngine:
    """A published revision: its SETTINGS as the registry stored them when it was checked,
    its parameters merged by the engine host."""

    name: str
    source: str
    stored_settings: Mapping[str, Any]
    host: EngineHost

    def settings(self) -> dict[str, Any]:
        return dict(self.stored_settings)

    def merge_parameters(self, parameters: Mapping[str, Any] | None) -> dict[str, Any]:
        return self.host.merge_parameters(self.name, self.source, parameters or {})


class EngineRegistry:
    """Engine use cases over one store; one instance per controller process."""

    def __init__(self, store: Store, clock: Clock, *, host: EngineHost) -> None:
        self.store = store
        self.clock = clock
        self.host = host
        self._builtins: dict[str, type[Engine]] = {}  # by source hash
        self._lock = threading.Lock()

    # -- start ----------------------------------------------------------------------------------

    def sync_builtins(self) -> None:
        """Write this controller's built-in engines into the registry as revision 0."""
        found: dict[str, EngineSource] = {}
        for name, source in builtin_engines().items():
            engine_class = load_builtin(name)
            found[name] = describe(engine_class, name=name, source=source)
            with self._lock:
                self._builtins[found[name].source_hash] = engine_class
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

    # -- checking jobs ------------------------------------------------------------------------

    def rules(self, record: EngineRecord) -> EngineRules:
        """What checks a job for ``record``'s current revision: the built-in class itself
        when the revision is a built-in's source, else the engine host."""
        current = record.current
        if current is None:
            raise NotFound(f"engine {record.name!r} has no current revision", field="engine")
        with self._lock:
            builtin = self._builtins.get(current.source_hash)
        if builtin is not None:
            return builtin
        _, source = self.store.engines.source(record.name, current.revision)
        return HostedEngine(record.name, source, current.settings, self.host)
