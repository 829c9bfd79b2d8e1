from __future__ import annotations

import textwrap
import traceback

import pytest

from thresher.engines import (
    Engine,
    EngineLoadError,
    EngineTask,
    builtin_engines,
    load_builtin,
    load_engine_source,
)

BUILTINS = ["blender", "command", "ffmpeg", "houdini", "kick", "mantra", "maya", "nuke", "povray"]

VALID = textwrap.dedent(
    """
    from dataclasses import dataclass

    from thresher.engines import Engine as Base, EngineTask


    @dataclass(frozen=True)
    class Options:
        flag: str = "-v"


    class Engine(Base):
        SETTINGS = {"type": "compute", "filename_extensions": [".txt"]}

        def get_executable(self):
            return "echo"

        def get_commandline(self, task):
            return [self.get_executable(), Options().flag, task.input or ""]
    """
)


def test_a_valid_source_loads_into_an_engine_class() -> None:
    engine_class = load_engine_source("echo", VALID)
    assert issubclass(engine_class, Engine)
    assert engine_class.settings()["type"] == "compute"
    task = EngineTask("j", 0, (1,), "/w", input="/a.txt", os_name="linux")
    assert engine_class().prepare(task, base_env={}).argv == ("echo", "-v", "/a.txt")


def test_each_load_is_a_fresh_module() -> None:
    first = load_engine_source("echo", VALID)
    second = load_engine_source("echo", VALID)
    assert first is not second


@pytest.mark.parametrize(
    ("source", "message", "detail"),
    [
        ("class Engine(:\n    pass\n", "does not compile: SyntaxError", "SyntaxError"),
        ("def f():\n\treturn 1\n        return 2\n", "does not compile", "Error"),
        ("import no_such_module_xyz\n", "ModuleNotFoundError: No module named", "line 1"),
        ("from thresher.engines import Nope\n", "ImportError: cannot import name 'Nope'", "Nope"),
        ("x = 1\nraise RuntimeError('boom at import')\n", "RuntimeError: boom at import", "line 2"),
        ("import sys\nsys.exit(3)\n", "SystemExit: 3", "sys.exit(3)"),
        ("x = 1\n", "defines no class Engine", ""),
        ("class Engine:\n    pass\n", "defines no class Engine", ""),
        ("Engine = 42\n", "defines no class Engine", ""),
        (
            "from thresher.engines import Engine as Base\nclass Engine(Base):\n"
            "    SETTINGS = {'default_bucketsize': -1, 'filename_extensions': '.txt'}\n",
            "is invalid: SETTINGS['filename_extensions'] must be a list of strings; "
            "SETTINGS['default_bucketsize'] must be an integer >= 0",
            "",
        ),
        (
            "from thresher.engines import Engine as Base\nclass Engine(Base):\n"
            "    def __init__(self):\n        raise ValueError('no licence')\n",
            "Engine() failed: ValueError: no licence",
            "",
        ),
    ],
)
def test_bad_sources_raise_engine_load_error_with_the_python_message(
    source: str, message: str, detail: str
) -> None:
    with pytest.raises(EngineLoadError) as caught:
        load_engine_source("bad", source)
    assert message in str(caught.value)
    assert detail in caught.value.details
    assert caught.value.name == "bad"


def test_tracebacks_from_engine_code_show_its_source_lines() -> None:
    source = VALID.replace("return [self.get_executable(),", "raise KeyError('missing option'); [")
    engine_class = load_engine_source("echo", source)
    task = EngineTask("j", 0, (1,), "/w", os_name="linux")
    with pytest.raises(KeyError) as caught:
        engine_class().prepare(task, base_env={})
    text = "".join(traceback.format_exception(caught.value))
    assert "<engine echo " in text
    assert "raise KeyError('missing option')" in text


def test_bad_engine_names_are_refused() -> None:
    with pytest.raises(EngineLoadError, match="bad engine name"):
        load_engine_source("../evil", VALID)


def test_builtin_engines_ship_one_module_each() -> None:
    sources = builtin_engines()
    assert sorted(sources) == BUILTINS
    assert all("class Engine(BaseEngine)" in text for text in sources.values())


@pytest.mark.parametrize("name", BUILTINS)
def test_every_builtin_loads_from_its_source_like_a_published_engine(name: str) -> None:
    published = load_engine_source(name, builtin_engines()[name])
    imported = load_builtin(name)
    assert published.settings() == imported.settings()
    assert published.default_parameters() == imported.default_parameters()
    assert published().get_executable() == imported().get_executable()


def test_load_builtin_refuses_unknown_names() -> None:
    with pytest.raises(EngineLoadError, match="no built-in engine named 'sequence_driver'"):
        load_builtin("sequence_driver")
