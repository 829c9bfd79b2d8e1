"""Engines: the application scripts that turn a task into a command line and its output into
events. See ``thresher.engines.base`` for how to write one and DESIGN.md section 7."""

from thresher.engines.base import Engine, split_arguments
from thresher.engines.cache import EngineCache
from thresher.engines.errors import (
    EngineConfigError,
    EngineError,
    EngineLoadError,
    EngineSetupError,
)
from thresher.engines.events import EngineEvent, EventKind
from thresher.engines.loading import (
    builtin_engines,
    load_builtin,
    load_engine_source,
    source_hash,
    validate_engine_class,
)
from thresher.engines.pathmap import PathMapper, PathRule
from thresher.engines.platforms import local_os, normalize_os
from thresher.engines.sequence import Step
from thresher.engines.task import EngineTask, PreparedCommand, Staging

__all__ = [
    "Engine",
    "EngineCache",
    "EngineConfigError",
    "EngineError",
    "EngineEvent",
    "EngineLoadError",
    "EngineSetupError",
    "EngineTask",
    "EventKind",
    "PathMapper",
    "PathRule",
    "PreparedCommand",
    "Staging",
    "Step",
    "builtin_engines",
    "load_builtin",
    "load_engine_source",
    "local_os",
    "normalize_os",
    "source_hash",
    "split_arguments",
    "validate_engine_class",
]
