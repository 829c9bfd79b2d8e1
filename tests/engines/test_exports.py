"""The public facade of thresher.engines stays complete and importable."""

from __future__ import annotations

import importlib
import inspect

import thresher.engines as engines

REQUIRED = {
    "Engine",
    "EngineTask",
    "EngineEvent",
    "EngineLoadError",
    "load_engine_source",
    "builtin_engines",
}


def test_all_names_exist_and_cover_the_required_api() -> None:
    assert set(engines.__all__) >= REQUIRED
    for name in engines.__all__:
        assert hasattr(engines, name), name
    assert engines.__all__ == sorted(engines.__all__)


def test_every_public_class_and_function_of_the_facade_is_in_all() -> None:
    public = {
        name
        for name, value in vars(engines).items()
        if not name.startswith("_")
        and (inspect.isclass(value) or inspect.isfunction(value))
        and getattr(value, "__module__", "").startswith("thresher.engines")
    }
    assert public == set(engines.__all__)


def test_every_error_derives_from_engine_error() -> None:
    errors = importlib.import_module("thresher.engines.errors")
    for name, value in vars(errors).items():
        if inspect.isclass(value) and issubclass(value, Exception):
            assert issubclass(value, engines.EngineError), name


def test_builtin_modules_import_only_the_standard_library_and_thresher_engines() -> None:
    import ast
    import sys

    for name, source in engines.builtin_engines().items():
        for node in ast.walk(ast.parse(source)):
            modules: list[str] = []
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                modules = [node.module]
            for module in modules:
                top = module.split(".")[0]
                allowed = module.startswith("thresher.engines") or top in sys.stdlib_module_names
                assert allowed, f"{name} imports {module}"
