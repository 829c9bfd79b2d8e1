"""GIVEN a running controller WHEN engines are published, listed and used from the CLI THEN ..."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.cli.conftest import Invoke

ENGINE = """
from thresher.engines import Engine as Base


class Engine(Base):
    SETTINGS = {"type": "compute", "default_range": "1"}

    def get_executable(self):
        return "true"

    def get_commandline(self, task):
        return [self.executable(task)]
"""


def test_publish_list_show_rollback_disable(cli: Invoke, tmp_path: Path) -> None:
    script = tmp_path / "noop.py"
    script.write_text(ENGINE)
    first = cli("engines", "publish", "noop", str(script))
    assert first.exit_code == 0, first.output
    assert first.stdout.strip() == "engine noop: revision 1 published"
    second = json.loads(cli("engines", "publish", "noop", str(script), "--json").stdout)
    assert (second["revision"], second["latest_revision"]) == (2, 2)

    listed = json.loads(cli("engines", "list", "--where", "type=compute", "--json").stdout)
    assert [e["name"] for e in listed] == ["command", "noop"]
    table = cli("engines").stdout
    assert "noop" in table
    assert "blender" in table

    shown = json.loads(cli("engines", "show", "noop", "--json").stdout)
    assert [r["revision"] for r in shown["revisions"]] == [1, 2]
    assert cli("engines", "show", "noop", "--revision", "1").stdout == ENGINE
    assert "revision 2" in cli("engines", "show", "noop").stdout

    rolled = cli("engines", "rollback", "noop", "1")
    assert rolled.stdout.strip() == "engine noop: revision 1 is current"
    assert cli("engines", "disable", "noop").stdout.strip() == "engine noop: disabled"
    refused = cli("submit", "--engine", "noop")
    assert refused.exit_code == 2
    assert "disabled" in refused.stderr
    enabled = json.loads(cli("engines", "enable", "noop", "--json").stdout)
    assert (enabled["enabled"], enabled["revision"]) == (True, 1)


def test_publishing_a_broken_script_prints_the_python_error(cli: Invoke, tmp_path: Path) -> None:
    script = tmp_path / "broken.py"
    script.write_text("import thresher_no_such_module\n")
    result = cli("engines", "publish", "broken", str(script))
    assert result.exit_code == 2
    assert "No module named 'thresher_no_such_module'" in result.stderr


def test_submit_an_engine_job(cli: Invoke) -> None:
    result = cli(
        "submit",
        "--engine",
        "blender",
        "--input",
        "/proj/scene.blend",
        "--range",
        "1-48",
        "--output",
        "/proj/out/f_####",
        "--bucket",
        "4",
        "--param",
        "renderer=cycles",
        "--param",
        "threads=2",
        "--param",
        'mapped_share_paths=[{"remote": "P:/proj", "local": "/proj"}]',
        "--arg",
        "--verbose",
        "--arg",
        "1",
        "--json",
    )
    assert result.exit_code == 0, result.output
    job = json.loads(cli("job", "show", str(json.loads(result.stdout)["id"]), "--json").stdout)
    assert (job["kind"], job["name"], job["counts"]["total"]) == (
        "engine",
        "blender: scene.blend",
        12,
    )
    assert job["payload"]["parameters"] == {
        "renderer": "cycles",
        "threads": 2,
        "mapped_share_paths": [{"remote": "P:/proj", "local": "/proj"}],
        "arguments": ["--verbose", "1"],
    }
    assert job["payload"]["output"] == "/proj/out/f_####"


def test_engine_options_need_an_engine(cli: Invoke) -> None:
    result = cli("submit", "--name", "x", "--input", "a.blend", "--", "true")
    assert result.exit_code == 2
    assert "--input need --engine" in result.stderr
    both = cli("submit", "--engine", "blender", "--input", "a.blend", "--", "true")
    assert both.exit_code == 2
    assert "no command" in both.stderr


def test_relative_paths_are_made_absolute_for_the_workers(
    cli: Invoke, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = cli(
        "submit", "--engine", "blender", "--input", "scene.blend", "--output", "out/", "--json"
    )
    assert result.exit_code == 0, result.output
    job = json.loads(cli("job", "show", str(json.loads(result.stdout)["id"]), "--json").stdout)
    assert job["payload"]["input"] == str(tmp_path / "scene.blend")
    assert job["payload"]["output"] == f"{tmp_path}/out/"
