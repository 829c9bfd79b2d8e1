"""Real renders with the applications from Debian: Blender, POV-Ray and FFmpeg.

Each test skips, naming the package, when its application is not installed.
"""

from __future__ import annotations

import json
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.engines.support import EXAMPLES, RunResult, read_png, require, run_prepared
from thresher.engines import (
    EngineSetupError,
    EngineTask,
    EventKind,
    load_builtin,
)

pytestmark = pytest.mark.renderers

WIDTH, HEIGHT = 64, 36


def _task(workdir: Path, **fields: object) -> EngineTask:
    workdir.mkdir(parents=True, exist_ok=True)
    values: dict[str, object] = {"job_id": "job1", "index": 0, "workdir": str(workdir)}
    values.update(fields)
    return EngineTask(**values)  # type: ignore[arg-type]


def _render(engine_name: str, task: EngineTask) -> RunResult:
    engine = load_builtin(engine_name)()
    return run_prepared(engine, engine.prepare(task))


def _assert_image(path: Path) -> bytes:
    assert path.is_file(), f"{path} was not written"
    png = read_png(path)
    assert (png.width, png.height) == (WIDTH, HEIGHT)
    assert png.distinct_pixels > 20, f"{path} looks blank ({png.distinct_pixels} colours)"
    return b"".join(png.pixels)


def _ffprobe(path: Path) -> dict[str, object]:
    result = subprocess.run(
        [
            require("ffprobe"),
            "-v",
            "error",
            "-count_frames",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=nb_read_frames,width,height",
            "-of",
            "json",
            str(path),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    stream: dict[str, object] = json.loads(result.stdout)["streams"][0]
    return stream


# ---------------------------------------------------------------------------------- blender


@pytest.fixture(scope="module")
def blend_scene(tmp_path_factory: pytest.TempPathFactory) -> Path:
    blender = require("blender")
    scene = tmp_path_factory.mktemp("blend") / "scene.blend"
    subprocess.run(
        [
            blender,
            "-b",
            "--factory-startup",
            "--python",
            str(EXAMPLES / "make_blender_scene.py"),
            "--",
            str(scene),
            "--frames",
            "3",
            "--width",
            str(WIDTH),
            "--height",
            str(HEIGHT),
            "--samples",
            "4",
        ],
        capture_output=True,
        timeout=120,
        check=True,
    )
    assert scene.is_file()
    return scene


def test_blender_renders_a_chunk_in_one_process(blend_scene: Path, tmp_path: Path) -> None:
    # GIVEN a 2-frame chunk of the generated Cycles scene
    task = _task(
        tmp_path / "work",
        frames=(1, 2),
        job_range=(1, 3),
        input=str(blend_scene),
        output=str(tmp_path / "render" / "frame_####"),
        parameters={"renderer": "cycles", "format": "png"},
    )
    # WHEN the blender engine's command runs
    result = _render("blender", task)
    # THEN both frames exist, are the right size, are not blank, and differ (the camera moves)
    assert result.returncode == 0, result.stderr[-2000:]
    first = _assert_image(tmp_path / "render" / "frame_0001.png")
    second = _assert_image(tmp_path / "render" / "frame_0002.png")
    assert first != second
    assert not (tmp_path / "render" / "frame_0003.png").exists()
    # AND the parser reported frames, rising progress and the written files
    assert result.values(EventKind.FRAME) == [1, 2]
    progress = result.values(EventKind.PROGRESS)
    assert progress == sorted(progress)
    assert progress[-1] == 100.0
    assert 0 < progress[len(progress) // 2] < 100
    assert result.values(EventKind.OUTPUT) == [
        str(tmp_path / "render" / "frame_0001.png"),
        str(tmp_path / "render" / "frame_0002.png"),
    ]
    assert result.values(EventKind.ERROR) == []


def test_blender_writes_a_folder_output_inside_the_folder(
    blend_scene: Path, tmp_path: Path
) -> None:
    # GIVEN an output with no extension and no frame pattern, which does not exist yet
    folder = tmp_path / "render" / "shot10"
    task = _task(
        tmp_path / "work",
        frames=(2,),
        input=str(blend_scene),
        output=str(folder),
        parameters={"format": "png"},
    )
    # WHEN blender renders a frame into it
    result = _render("blender", task)
    # THEN the frame lands inside the folder, named after the scene, and nowhere beside it
    assert result.returncode == 0, result.stderr[-2000:]
    _assert_image(folder / "scene_0002.png")
    assert [p.name for p in folder.iterdir()] == ["scene_0002.png"]
    assert [p.name for p in folder.parent.iterdir()] == ["shot10"]
    assert result.values(EventKind.OUTPUT) == [str(folder / "scene_0002.png")]


def test_blender_missing_scene_is_a_clean_failure(tmp_path: Path) -> None:
    require("blender")
    task = _task(tmp_path / "work", frames=(1,), input=str(tmp_path / "missing.blend"))
    result = _render("blender", task)
    assert result.returncode != 0
    assert any("Cannot read file" in str(e) for e in result.values(EventKind.ERROR))


def test_blender_stops_on_sigterm_mid_frame(blend_scene: Path, tmp_path: Path) -> None:
    # GIVEN a render with far more samples than it will get through
    engine_class = load_builtin("blender")
    assert engine_class.settings()["cancel_signal"] == "SIGTERM"
    engine = engine_class()
    # no adaptive sampling: a tiny frame would converge and finish before the cancel
    slow = (
        "import bpy; c = bpy.context.scene.cycles; "
        "c.samples = 1000000; c.use_adaptive_sampling = False"
    )
    task = _task(
        tmp_path / "work",
        frames=(1,),
        input=str(blend_scene),
        output=str(tmp_path / "render" / "f_####"),
        parameters={"arguments": ["--python-expr", slow]},
    )
    prepared = engine.prepare(task)
    proc = subprocess.Popen(
        list(prepared.argv),
        env=dict(prepared.env),
        cwd=prepared.cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    sampling = False
    for line in proc.stdout:
        if any(e.kind is EventKind.PROGRESS for e in engine.parse_output(line)):
            sampling = True
            break
    # WHEN the worker cancels it mid-frame
    proc.send_signal(signal.SIGTERM)
    # THEN blender is gone well within a grace period, and no frame was saved
    try:
        code = proc.wait(timeout=15)
    finally:
        proc.kill()
        proc.stdout.close()
    assert sampling
    assert code != 0
    assert not (tmp_path / "render" / "f_0001.png").exists()


# ---------------------------------------------------------------------------------- povray


@pytest.fixture(scope="module")
def pov_frames(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[RunResult]]:
    """Three frames of examples/orbit.pov rendered as two chunks (as two lanes would)."""
    require("povray")
    root = tmp_path_factory.mktemp("pov")
    results = []
    for index, frames in enumerate([(1, 2), (3,)]):
        task = _task(
            root / f"work{index}",
            index=index,
            lane=index,
            frames=frames,
            job_range=(1, 3),
            input=str(EXAMPLES / "orbit.pov"),
            output=str(root / "frames" / "orbit.png"),
            parameters={"width": WIDTH, "height": HEIGHT},
        )
        results.append(_render("povray", task))
    return root / "frames", results


def test_povray_renders_chunks_of_the_animation(
    pov_frames: tuple[Path, list[RunResult]],
) -> None:
    folder, results = pov_frames
    assert [r.returncode for r in results] == [0, 0], results[0].stderr[-2000:]
    images = [_assert_image(folder / f"orbit{n}.png") for n in (1, 2, 3)]
    assert len(set(images)) == 3  # the ball moves with the clock
    first, second = results
    assert first.values(EventKind.FRAME) == [1, 2]
    assert second.values(EventKind.FRAME) == [3]
    assert first.values(EventKind.OUTPUT) == [
        str(folder / "orbit1.png"),
        str(folder / "orbit2.png"),
    ]
    assert first.values(EventKind.PROGRESS)[-1] == 100.0
    # POV-Ray's pixel counter (carriage-return separated on stderr) fed the progress
    assert any(0 < p < 50 for p in first.values(EventKind.PROGRESS))
    assert first.values(EventKind.ERROR) == []


def test_povray_writes_into_an_existing_folder(tmp_path: Path) -> None:
    require("povray")
    folder = tmp_path / "frames"
    folder.mkdir()
    task = _task(
        tmp_path / "work",
        frames=(2,),
        job_range=(1, 3),
        input=str(EXAMPLES / "orbit.pov"),
        output=str(folder),
        parameters={"width": WIDTH, "height": HEIGHT},
    )
    result = _render("povray", task)
    assert result.returncode == 0, result.stderr[-2000:]
    _assert_image(folder / "orbit2.png")
    assert [p.name for p in folder.iterdir()] == ["orbit2.png"]


def test_povray_reads_a_remapped_include_through_input_conversion(tmp_path: Path) -> None:
    require("povray")
    # GIVEN a scene on the "local" share whose include names the submitter's share path
    share = tmp_path / "share"
    (share / "inc").mkdir(parents=True)
    (share / "inc" / "ball.inc").write_text("#declare BallColor = rgb <1, 0.5, 0>;\n")
    (share / "scene.pov").write_text(
        (EXAMPLES / "orbit.pov")
        .read_text()
        .replace(
            '#include "colors.inc"',
            '#include "colors.inc"\n#include "/studio/share/inc/ball.inc"',
        )
        .replace("color Red", "color BallColor")
    )
    rules = [{"remote": "/studio/share", "local": str(share)}]

    def render(conversion: str) -> tuple[RunResult, Path]:
        out = tmp_path / conversion / "img.png"
        task = _task(
            tmp_path / f"work-{conversion}",
            frames=(1,),
            job_range=(1, 2),
            input="/studio/share/scene.pov",
            output=str(out),
            parameters={
                "width": WIDTH,
                "height": HEIGHT,
                "mapped_share_paths": rules,
                "input_conversion": conversion,
                "remote_os": "mac",
            },
        )
        return _render("povray", task), out.with_name("img1.png")

    # WHEN rendered with input conversion THEN the converted copy names the local include
    converted, image = render("always")
    assert converted.returncode == 0, converted.stderr[-2000:]
    _assert_image(image)
    copy = tmp_path / "work-always" / "converted" / "scene.pov"
    assert f'#include "{share}/inc/ball.inc"' in copy.read_text()
    # AND without conversion POV-Ray cannot find the submitter's path: a clean failure
    unconverted, image = render("never")
    assert unconverted.returncode != 0
    errors = unconverted.values(EventKind.ERROR)
    # (POV-Ray wraps its message at 80 columns: the file's name may be on the next line)
    assert any("Cannot open include file" in str(e) for e in errors), errors
    assert "/studio/share/inc/ball.inc" in " ".join(unconverted.stderr.split())
    assert not image.exists()


def test_povray_unwritable_output_folder_fails_before_running(tmp_path: Path) -> None:
    task = _task(
        tmp_path / "work",
        input=str(EXAMPLES / "orbit.pov"),
        frames=(1,),
        output="/proc/thresher-no-such-dir/orbit.png",
    )
    with pytest.raises(EngineSetupError, match="cannot create output folder"):
        load_builtin("povray")().prepare(task)


# ---------------------------------------------------------------------------------- ffmpeg


@pytest.mark.parametrize("container", ["mp4", "gif"])
def test_ffmpeg_encodes_the_rendered_frames(
    pov_frames: tuple[Path, list[RunResult]], tmp_path: Path, container: str
) -> None:
    require("ffmpeg")
    folder, _ = pov_frames
    movie = tmp_path / "movies" / f"orbit.{container}"
    task = _task(
        tmp_path / "work",
        frames=(1, 2, 3),
        input=str(folder / "orbit#.png"),
        output=str(movie),
        parameters={"framerate": 12},
    )
    result = _render("ffmpeg", task)
    assert result.returncode == 0, result.stderr[-2000:]
    stream = _ffprobe(movie)
    assert int(str(stream["nb_read_frames"])) == 3
    assert (stream["width"], stream["height"]) == (WIDTH, HEIGHT)
    assert result.values(EventKind.PROGRESS)[-1] == 100.0
    assert result.values(EventKind.OUTPUT) == [str(movie)]


def test_ffmpeg_missing_frames_is_a_clean_failure(tmp_path: Path) -> None:
    require("ffmpeg")
    task = _task(
        tmp_path / "work",
        frames=(1, 2),
        input=str(tmp_path / "none_####.png"),
        output=str(tmp_path / "m.mp4"),
    )
    result = _render("ffmpeg", task)
    assert result.returncode != 0
    assert result.values(EventKind.ERROR)


# ---------------------------------------------------------------------------------- command


def test_command_per_frame_runs_for_real(
    make_task: Callable[..., EngineTask], tmp_path: Path
) -> None:
    script = tmp_path / "job.py"
    script.write_text(
        "import sys\nprint('progress: 50%', flush=True)\n"
        "open(sys.argv[2], 'w').write(sys.argv[1])\n"
    )
    task = make_task(
        frames=(1, 2, 3),
        parameters={
            "command": ["python3", str(script), "{frame}", f"{tmp_path}/out_{{frame:03d}}.txt"],
            "per_frame": True,
        },
    )
    result = _render("command", task)
    assert result.returncode == 0, result.stderr
    assert [(tmp_path / f"out_{f:03d}.txt").read_text() for f in (1, 2, 3)] == ["1", "2", "3"]
    assert result.values(EventKind.FRAME) == [1, 2, 3]
    assert result.values(EventKind.PROGRESS) == pytest.approx(
        [0.0, 50 / 3, 100 / 3, 50.0, 200 / 3, 250 / 3]
    )
