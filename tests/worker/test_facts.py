"""What a worker declares: detected facts with overrides and labels, its TOML configuration,
lane engines from the command line, and the NIMBY file."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer

from thresher.cli.worker import parse_lane_engines
from thresher.worker.config import ConfigError, load_worker_config
from thresher.worker.facts import detect, parse_size
from thresher.worker.nimby import nimby_path, read_nimby, write_nimby

GB = 1024**3


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("68719476736", 64 * GB),
        ("64g", 64 * GB),
        ("64GB", 64 * GB),
        ("64GiB", 64 * GB),
        ("512MB", 512 * 1024**2),
        ("1.5t", int(1.5 * 1024**4)),
    ],
)
def test_parse_size(text: str, size: int) -> None:
    assert parse_size(text) == size


def test_a_bad_size_is_refused() -> None:
    with pytest.raises(ValueError, match="not a size"):
        parse_size("lots")


def test_overrides_win_and_other_keys_are_labels() -> None:
    facts = detect(
        name="w",
        lanes=2,
        site="sthlm",
        pools=("render",),
        overrides={"hostname": "ren01", "ram": "128GB", "gpus": "2", "cores": "32", "rack": "b2"},
        labels={"tier": "gold"},
        capacity=3000,
        lane_engines={0: ["blender"]},
    )

    assert (facts.hostname, facts.ram_bytes, facts.gpus, facts.cores) == ("ren01", 128 * GB, 2, 32)
    assert facts.attributes == {"rack": "b2", "tier": "gold"}
    assert (facts.site, facts.pools, facts.capacity) == ("sthlm", ["render"], 3000)
    assert facts.lane_engines == {0: ["blender"]}


def test_the_config_file(tmp_path: Path) -> None:
    path = tmp_path / "worker.toml"
    path.write_text(
        'name = "ren01"\nlanes = 2\npools = ["render", "gpu"]\ngrace = 5\n'
        '[labels]\nrack = "b2"\n[attributes]\nram = "64GB"\n'
        '[lane_engines]\n0 = ["blender", "povray"]\n1 = "command"\n'
    )

    found = load_worker_config(path)

    assert (found.get("name"), found.get("lanes"), found.get("grace")) == ("ren01", 2, 5.0)
    assert found.pools == ("render", "gpu")
    assert (found.labels, found.attributes) == ({"rack": "b2"}, {"ram": "64GB"})
    assert found.lane_engines == {0: ("blender", "povray"), 1: ("command",)}


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("lanes = 'two'", "lanes must be a int"),
        ("colour = 'red'", "unknown key"),
        ("[lane_engines]\nfirst = ['x']", "not a lane number"),
        ("name = ", "cannot read"),
    ],
)
def test_a_bad_config_file_is_refused(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "worker.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=problem):
        load_worker_config(path)


def test_lane_engines_from_the_command_line() -> None:
    assert parse_lane_engines(["0=blender,povray", "2=command"]) == {
        0: ("blender", "povray"),
        2: ("command",),
    }
    for bad in (["blender"], ["x=blender"], ["0="]):
        with pytest.raises(typer.BadParameter):
            parse_lane_engines(bad)


def test_the_nimby_file(tmp_path: Path) -> None:
    path = nimby_path(tmp_path)
    assert read_nimby(path) is None
    write_nimby(path, "paused")
    assert read_nimby(path) == "paused"
    write_nimby(path, "stopped")
    assert read_nimby(path) == "stopped"
    path.write_text("anything else\n")  # a person's note pauses: the safe reading
    assert read_nimby(path) == "paused"
    write_nimby(path, None)
    assert read_nimby(path) is None
