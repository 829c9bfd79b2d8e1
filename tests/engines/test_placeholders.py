from __future__ import annotations

from collections.abc import Callable

import pytest

from thresher.engines import EngineConfigError, EngineTask
from thresher.engines.placeholders import (
    expand,
    expand_argv,
    frame_path,
    has_frame_token,
    printf_pattern,
    runs,
    task_values,
    uniform_step,
)


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{start}-{end}", "10-13"),
        ("frame_{frame:04d}.exr", "frame_0010.exr"),
        ("{frames}", "10,11,12,13"),
        ("{count} frames, step {step}", "4 frames, step 1"),
        ("{input} -> {output}", "/in/scene.pov -> /out/f.png"),
        ("{job_id}/{task}/{lane}", "job1/3/1"),
        ("{{literal}} {frame}", "{literal} 10"),
        ("no placeholders", "no placeholders"),
    ],
)
def test_expand_uses_the_task_values(
    make_task: Callable[..., EngineTask], template: str, expected: str
) -> None:
    # GIVEN a chunk of four frames
    task = make_task(
        frames=(10, 11, 12, 13), index=3, lane=1, input="/in/scene.pov", output="/out/f.png"
    )
    # WHEN a template is expanded THEN each placeholder takes its value
    assert expand(template, task_values(task)) == expected


def test_expand_argv_per_frame(make_task: Callable[..., EngineTask]) -> None:
    task = make_task(frames=(1, 2, 3))
    values = task_values(task, frame=2)
    assert expand_argv(["render", "-f", "{frame}", "--range={start}-{end}"], values) == [
        "render",
        "-f",
        "2",
        "--range=1-3",
    ]


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{nope}", "unknown placeholder {nope}"),
        ("{frame.real}", "not a plain name"),
        ("{frame[0]}", "not a plain name"),
        ("{frame!r}", "too complex"),
        ("{input:04d}", "placeholder {input:04d}"),
        ("{start", "bad placeholder syntax"),
    ],
)
def test_expand_refuses_what_it_cannot_expand(
    make_task: Callable[..., EngineTask], template: str, message: str
) -> None:
    with pytest.raises(EngineConfigError, match=message.replace("{", r"\{").replace("[", r"\[")):
        expand(template, task_values(make_task(input="/x")))


def test_a_task_without_frames_has_no_frame_placeholders(
    make_task: Callable[..., EngineTask],
) -> None:
    values = task_values(make_task(frames=()))
    assert "start" not in values
    assert values["frames"] == ""
    with pytest.raises(EngineConfigError, match="unknown placeholder"):
        expand("{start}", values)


@pytest.mark.parametrize(
    ("pattern", "frame", "expected"),
    [
        ("/r/f_####.png", 7, "/r/f_0007.png"),
        ("/r/f_#.png", 12, "/r/f_12.png"),
        ("/r/f.%04d.exr", 7, "/r/f.0007.exr"),
        ("/r/f.%d.exr", 7, "/r/f.7.exr"),
        ("/ifd/scene.$F4.ifd", 42, "/ifd/scene.0042.ifd"),
        ("/ifd/scene.$F.ifd", 42, "/ifd/scene.42.ifd"),
        ("/ifd/scene.${F3}.ifd", 5, "/ifd/scene.005.ifd"),
        ("/r/$FPS/f_$F2.png", 3, "/r/$FPS/f_03.png"),
        ("/r/f_####.png", -3, "/r/f_-0003.png"),
    ],
)
def test_frame_path(pattern: str, frame: int, expected: str) -> None:
    assert frame_path(pattern, frame) == expected


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("/r/f_####.png", "/r/f_%04d.png"),
        ("/r/f.$F3.png", "/r/f.%03d.png"),
        ("/r/f.%05d.png", "/r/f.%05d.png"),
        ("/r/f.$F.png", "/r/f.%d.png"),
    ],
)
def test_printf_pattern(pattern: str, expected: str) -> None:
    assert printf_pattern(pattern) == expected
    assert has_frame_token(pattern)


def test_has_frame_token_is_false_for_plain_names() -> None:
    assert not has_frame_token("/scenes/shot.blend")


@pytest.mark.parametrize(
    ("frames", "expected"),
    [
        ((), []),
        ((5,), [(5, 5, 1)]),
        ((1, 2, 3), [(1, 3, 1)]),
        ((1, 3, 5, 7), [(1, 7, 2)]),
        ((1, 2, 3, 7, 9, 11), [(1, 3, 1), (7, 11, 2)]),
        ((1, 5), [(1, 1, 1), (5, 5, 1)]),
        ((4, 2), [(4, 4, 1), (2, 2, 1)]),
    ],
)
def test_runs(frames: tuple[int, ...], expected: list[tuple[int, int, int]]) -> None:
    assert runs(frames) == expected


@pytest.mark.parametrize(
    ("frames", "step"),
    [((), None), ((3,), 1), ((1, 2, 3), 1), ((2, 4, 6), 2), ((1, 2, 4), None), ((3, 2), None)],
)
def test_uniform_step(frames: tuple[int, ...], step: int | None) -> None:
    assert uniform_step(frames) == step
