"""Turning engine source text into an ``Engine`` class, and the engines that ship built in."""

from __future__ import annotations

import hashlib
import importlib
import linecache
import re
import sys
import traceback
import types
from collections.abc import Mapping, Sequence
from importlib import resources
from typing import Any

from thresher.engines.base import Engine as BaseEngine
from thresher.engines.conversion import CONVERSION_MODES
from thresher.engines.errors import EngineLoadError

BUILTIN_PACKAGE = "thresher.engines.builtin"
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.-]{0,63}\Z")


def source_hash(source: str) -> str:
    """The SHA-256 hex digest of an engine's source (UTF-8), which names it in caches."""
    return hashlib.sha256(source.encode("utf-8")).hexdigest()


def load_engine_source(name: str, source: str) -> type[BaseEngine]:
    """Execute ``source`` as a fresh module and return its ``Engine`` class.

    Raises :class:`EngineLoadError` when the source does not compile, raises while it runs
    (an ``ImportError`` included), or defines no class ``Engine`` deriving from
    :class:`thresher.engines.Engine` with valid settings. The error's message names the Python
    error; ``details`` holds the traceback, with the engine's own source lines in it.
    """
    if not _NAME.match(name):
        raise EngineLoadError(f"bad engine name {name!r}", name=name)
    digest = source_hash(source)[:16]
    filename = f"<engine {name} {digest}>"
    # tracebacks raised later from engine code show its lines too
    linecache.cache[filename] = (len(source), None, source.splitlines(keepends=True), filename)
    try:
        code = compile(source, filename, "exec", dont_inherit=True)
    except SyntaxError as exc:
        message = f"{type(exc).__name__}: {exc.msg} (line {exc.lineno})"
        details = "".join(traceback.format_exception_only(exc))
        raise EngineLoadError(
            f"engine {name!r} does not compile: {message}", name=name, details=details
        ) from None
    module_name = f"thresher_engine_{re.sub(r'[^A-Za-z0-9_]', '_', name)}_{digest}"
    module = types.ModuleType(module_name)
    module.__file__ = filename
    # dataclasses and typing look the defining module up while the class body runs
    sys.modules[module_name] = module
    try:
        exec(code, module.__dict__)  # noqa: S102 - running engine scripts is the point
    except (Exception, SystemExit) as exc:
        tb = exc.__traceback__.tb_next if exc.__traceback__ is not None else None
        details = "".join(traceback.format_exception(type(exc), exc, tb))
        raise EngineLoadError(
            f"engine {name!r} raised while loading: {type(exc).__name__}: {exc}",
            name=name,
            details=details,
        ) from None
    finally:
        sys.modules.pop(module_name, None)
    engine = module.__dict__.get("Engine")
    if not isinstance(engine, type) or not issubclass(engine, BaseEngine) or engine is BaseEngine:
        raise EngineLoadError(
            f"engine {name!r} defines no class Engine deriving from thresher.engines.Engine",
            name=name,
        )
    validate_engine_class(engine, name=name)
    return engine


def validate_engine_class(engine: type[BaseEngine], *, name: str) -> None:
    """Check an engine's merged SETTINGS and PARAMETERS and that it constructs without
    arguments; :class:`EngineLoadError` describes the first problem."""
    problems: list[str] = []
    settings = engine.settings()
    _expect(problems, settings, "items", str)
    _expect(problems, settings, "type", str)
    _expect(problems, settings, "multiple_inputs", bool)
    for key in ("filename_extensions", "binary_filename_extensions"):
        value = settings.get(key)
        if (
            not isinstance(value, Sequence)
            or isinstance(value, str)
            or not all(isinstance(v, str) for v in value)
        ):
            problems.append(f"SETTINGS[{key!r}] must be a list of strings")
    bucket = settings.get("default_bucketsize")
    if not isinstance(bucket, int) or isinstance(bucket, bool) or bucket < 0:
        problems.append("SETTINGS['default_bucketsize'] must be an integer >= 0")
    limit = settings.get("max_bucketsize")
    if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 1):
        problems.append("SETTINGS['max_bucketsize'] must be a positive integer or None")
    if settings.get("default_range") is not None and not isinstance(
        settings.get("default_range"), str
    ):
        problems.append("SETTINGS['default_range'] must be a string like '1-100' or None")
    if engine.default_parameters().get("input_conversion") not in CONVERSION_MODES:
        problems.append(f"PARAMETERS['input_conversion'] must be one of {CONVERSION_MODES}")
    if not problems:
        try:
            engine()
        except Exception as exc:
            problems.append(f"Engine() failed: {type(exc).__name__}: {exc}")
    if problems:
        raise EngineLoadError(f"engine {name!r} is invalid: " + "; ".join(problems), name=name)


def _expect(problems: list[str], settings: Mapping[str, Any], key: str, kind: type) -> None:
    if not isinstance(settings.get(key), kind):
        problems.append(f"SETTINGS[{key!r}] must be a {kind.__name__}")


def builtin_engines() -> dict[str, str]:
    """The built-in engines' sources by name, read from the installed package."""
    folder = resources.files(BUILTIN_PACKAGE)
    sources: dict[str, str] = {}
    for entry in folder.iterdir():
        if entry.name.endswith(".py") and not entry.name.startswith("_"):
            sources[entry.name[: -len(".py")]] = entry.read_text(encoding="utf-8")
    return dict(sorted(sources.items()))


def load_builtin(name: str) -> type[BaseEngine]:
    """The ``Engine`` class of a built-in engine (imported as a regular module)."""
    if name not in builtin_engines():
        raise EngineLoadError(f"no built-in engine named {name!r}", name=name)
    module = importlib.import_module(f"{BUILTIN_PACKAGE}.{name}")
    engine = getattr(module, "Engine", None)
    if not isinstance(engine, type) or not issubclass(engine, BaseEngine):
        raise EngineLoadError(f"built-in engine {name!r} has no Engine class", name=name)
    validate_engine_class(engine, name=name)
    return engine
