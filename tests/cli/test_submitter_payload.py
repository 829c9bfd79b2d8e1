"""The desktop submitter's decisions, without a display: sequences found from one file, engines
ordered for an input, filters composed and checked, the payload built, settings remembered."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from thresher.cli.submitter.payload import (
    EngineChoice,
    EnvRow,
    Form,
    build_payload,
    composed_filters,
    detect_sequence,
    filter_problem,
    load_settings,
    order_engines,
    payload_json,
    problems,
    remembered,
    restored,
    save_settings,
    sequence_on_disk,
    settings_path,
)
from thresher.schemas import api

IFDS = [f"render.{n:05d}.ifd" for n in range(1001, 1101)]


@pytest.mark.parametrize(
    ("path", "siblings", "pattern", "frames"),
    [
        ("/r/render.01001.ifd", IFDS, "/r/render.#####.ifd", "1001-1100"),
        ("/r/render.01050.ifd", [*IFDS, "render.01001.exr", "other.01002.ifd"], None, "1001-1100"),
        ("/r/shot_0007.pov", ["shot_0001.pov", "shot_0003.pov", "shot_0005.pov"], None, "1-7x2"),
        ("/r/shot_0002.pov", ["shot_0001.pov", "shot_0002.pov", "shot_0010.pov"], None, "1-2,10"),
        ("/r/scene.pov", ["scene.pov"], None, None),
        ("/r/v2/plate.12.dpx", ["plate.12.dpx", "plate.13.dpx", "plate.9.dpx"], None, "12-13"),
        ("/r/f7.exr", ["f7.exr", "f8.exr", "f10.exr"], "/r/f#.exr", "7-8,10"),
    ],
)
def test_a_sequence_is_found_from_one_file(
    path: str, siblings: list[str], pattern: str | None, frames: str | None
) -> None:
    found = detect_sequence(path, siblings)
    if frames is None:
        assert found is None
        return
    assert found is not None
    assert found.frames == frames
    if pattern is not None:
        assert found.pattern == pattern


def test_a_sequence_on_disk_is_read_from_the_files_there(tmp_path: Path) -> None:
    for n in range(1, 25):
        (tmp_path / f"scene.{n:04d}.pov").write_text("// frame\n")
    (tmp_path / "scene.0100.txt").write_text("")
    found = sequence_on_disk(str(tmp_path / "scene.0007.pov"))
    assert found is not None
    assert (found.frames, found.count, found.first, found.last) == ("1-24", 24, 1, 24)
    assert found.pattern == str(tmp_path / "scene.####.pov")


def test_engines_that_accept_the_input_come_first() -> None:
    engines = [
        EngineChoice("blender", (".blend",)),
        EngineChoice("povray", (".pov",)),
        EngineChoice("ffmpeg", (".png", ".exr")),
        EngineChoice("kick", (".ass",), enabled=False),
    ]
    assert [e.name for e in order_engines(engines, "/s/a.POV")] == ["povray", "blender", "ffmpeg"]
    assert [e.name for e in order_engines(engines, "/s/a.exr")] == ["ffmpeg", "blender", "povray"]
    assert [e.name for e in order_engines(engines, "")] == ["blender", "ffmpeg", "povray"]


@pytest.mark.parametrize(
    ("form", "filters", "problem"),
    [
        (Form(), "", None),
        (Form(ram_gb=64), "ram:>64GB", None),
        (Form(sites=("hq", "sthlm"), pools=("gpu",)), "site:hq+sthlm,pool:+gpu", None),
        (Form(ram_gb=8, filters="os:linux"), "ram:>8GB,os:linux", None),
        (Form(filters="ram:lots"), "ram:lots", "ram:lots"),
        (Form(filters="colour:red"), "colour:red", "colour"),
    ],
)
def test_filters_are_composed_and_checked_live(
    form: Form, filters: str, problem: str | None
) -> None:
    assert composed_filters(form) == filters
    found = filter_problem(filters)
    if problem is None:
        assert found is None
    else:
        assert found is not None
        assert problem in found


POV = Form(input="/s/scene.####.pov", engine="povray", range="1-24", sequence_input=True)


@pytest.mark.parametrize(
    ("form", "expected"),
    [
        (
            POV,
            {
                "name": "povray: scene.####.pov",
                "engine": "povray",
                "input": "/s/scene.####.pov",
                "range": "1-24",
                "priority": 50,
                "settings": {"split_mode": "buckets", "task_bucketsize": 1},
            },
        ),
        (
            replace(POV, split="single", name="shot 10", priority=80, priority_frames="1,24"),
            {
                "name": "shot 10",
                "engine": "povray",
                "input": "/s/scene.####.pov",
                "range": "1-24",
                "priority_frames": "1,24",
                "priority": 80,
                "settings": {"split_mode": "single", "task_bucketsize": 0},
            },
        ),
        (
            replace(
                POV,
                bucket=6,
                ram_gb=4,
                pools=("gpu",),
                output="/out/shot10/",
                clear_output=True,
                download_output=True,
                dependencies=("/tex/a.png", "share=proj/tex/b.png"),
                upload_dependencies=True,
                env=(
                    EnvRow("common", "OCIO", "/cfg/ocio"),
                    EnvRow("linux", "POV_LIB", "/opt/pov"),
                    EnvRow("windows", "", "ignored: no name"),
                ),
                arguments="+Q9 'Declare=Look=1'",
                paused=True,
            ),
            {
                "name": "povray: scene.####.pov",
                "engine": "povray",
                "input": "/s/scene.####.pov",
                "range": "1-24",
                "priority": 50,
                "output": "/out/shot10/",
                "filters": "ram:>4GB,pool:+gpu",
                "dependencies": ["/tex/a.png", "share=proj/tex/b.png"],
                "envs": {"common": {"OCIO": "/cfg/ocio"}, "linux": {"POV_LIB": "/opt/pov"}},
                "parameters": {"arguments": ["+Q9", "Declare=Look=1"]},
                "settings": {
                    "split_mode": "buckets",
                    "task_bucketsize": 6,
                    "clear_output": True,
                    "download_output": True,
                    "upload_dependencies": True,
                },
                "paused": True,
            },
        ),
    ],
)
def test_the_payload_is_built_from_the_form(form: Form, expected: dict[str, Any]) -> None:
    assert problems(form) == []
    assert build_payload(form) == expected
    assert json.loads(payload_json(form)) == expected
    api.JobIn.model_validate(expected)  # the API's own model takes it as it is


@pytest.mark.parametrize(
    ("form", "field"),
    [
        (Form(engine="povray"), "input"),
        (Form(input="/s/a.pov"), "engine"),
        (replace(POV, range="1-"), "range"),
        (replace(POV, priority_frames="x"), "priority_frames"),
        (replace(POV, bucket=0), "bucket"),
        (replace(POV, sites=("h q",)), "sites"),
        (replace(POV, filters="ram:lots"), "filters"),
        (replace(POV, env=(EnvRow("amiga", "A", "1"),)), "env"),
        (replace(POV, env=(EnvRow("linux", "A=B", "1"),)), "env"),
        (replace(POV, arguments="'unclosed"), "arguments"),
    ],
)
def test_a_form_with_a_problem_names_its_field(form: Form, field: str) -> None:
    found = [p.field for p in problems(form)]
    assert found[0] == field
    assert set(found) <= {field, "filters"}  # a bad site is a bad filter too


def test_settings_are_remembered_but_not_the_scene(tmp_path: Path) -> None:
    path = settings_path({"XDG_CONFIG_HOME": str(tmp_path / "cfg")})
    assert path == tmp_path / "cfg" / "thresher" / "submitter.json"
    assert settings_path({"HOME": "/home/ann"}) == Path("/home/ann/.config/thresher/submitter.json")
    form = replace(
        POV,
        priority=70,
        bucket=5,
        pools=("gpu",),
        env=(EnvRow("linux", "A", "1"),),
        download_output=True,
    )
    save_settings(path, form)
    back = load_settings(path)
    assert back == replace(form, input="", range="", sequence_input=False)
    assert "input" not in remembered(form)


def test_bad_or_missing_settings_give_an_empty_form(tmp_path: Path) -> None:
    assert load_settings(tmp_path / "none.json") == Form()
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert load_settings(bad) == Form()
    odd = restored({"priority": "high", "pools": ["a", 3], "ram_gb": True, "engine": "povray"})
    assert (odd.priority, odd.pools, odd.ram_gb, odd.engine) == (50, ("a", "3"), 0, "povray")
