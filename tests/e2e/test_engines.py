"""End to end with the real applications: engine jobs on a controller and workers started as
processes render with Blender, POV-Ray and FFmpeg.

Renders are tiny (64x36, a few samples) so the set runs in a minute or two on two cores. Each
test skips, naming the package, when an application is missing.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.e2e.conftest import Farm
from tests.engines.support import EXAMPLES, read_png, require
from thresher.testing import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.renderers]

WIDTH, HEIGHT = 64, 36
FRAMES = 8


@pytest.fixture(scope="module")
def blend_scene(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example Cycles scene: FRAMES frames, WIDTH x HEIGHT, 4 samples."""
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
            str(FRAMES),
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
    return scene


@pytest.fixture
def render_farm(sqlite_farm: Farm) -> Farm:
    sqlite_farm.controller()
    return sqlite_farm


def _finished(farm: Farm, job_id: int, *, timeout: float = 90) -> str:
    final = ("succeeded", "failed", "canceled")
    with farm.client() as client:
        wait_until(lambda: client.job(job_id).status in final, timeout=timeout, what="job ended")
        return client.job(job_id).status


def _log(farm: Farm, job_id: int, index: int = 0) -> str:
    with farm.client() as client:
        return "\n".join(line.text for line in client.log(job_id, index))


def _image(path: Path) -> bytes:
    assert path.is_file(), f"{path} was not written"
    png = read_png(path)
    assert (png.width, png.height) == (WIDTH, HEIGHT)
    assert png.distinct_pixels > 20, f"{path} looks blank ({png.distinct_pixels} colours)"
    return b"".join(png.pixels)


def _ffprobe_frames(movie: Path) -> int:
    result = subprocess.run(
        [
            require("ffprobe"),
            "-v",
            "error",
            "-count_frames",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=nb_read_frames",
            "-of",
            "json",
            str(movie),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return int(json.loads(result.stdout)["streams"][0]["nb_read_frames"])


def test_blender_renders_across_two_workers_and_ffmpeg_encodes_after_it(
    render_farm: Farm, blend_scene: Path, tmp_path: Path
) -> None:
    farm = render_farm
    require("ffmpeg")
    farm.worker("w1")
    farm.worker("w2")
    frames = tmp_path / "render" / "frame_####"
    movie = tmp_path / "movie" / "scene.mp4"
    with farm.client() as client:
        # GIVEN a Blender job in chunks of 2 and an FFmpeg job waiting on it
        render = client.create(
            "job",
            {
                "engine": "blender",
                "input": str(blend_scene),
                "range": f"1-{FRAMES}",
                "output": str(frames),
                "settings": {"task_bucketsize": 2},
                "parameters": {"renderer": "cycles", "format": "png"},
            },
        )
        encode = client.submit_engine(
            "ffmpeg",
            input=str(frames) + ".png",
            range=f"1-{FRAMES}",
            output=str(movie),
            parameters={"framerate": 12},
            after=[render.id],
        )
        assert (render.kind, render.counts.total, render.blocks[0].chunk) == ("engine", 4, 2)
        # WHEN the farm runs them
        assert _finished(farm, render.id) == "succeeded", _log(farm, render.id)
        assert _finished(farm, encode.id) == "succeeded", _log(farm, encode.id)
        attempts = client.attempts(render.id)
    # THEN every frame exists at the right size, is not blank, and the camera moved
    images = [_image(tmp_path / "render" / f"frame_{n:04d}.png") for n in range(1, FRAMES + 1)]
    assert len(set(images)) == FRAMES
    # AND both workers rendered chunks, each with the built-in revision and its progress
    assert {a.worker for a in attempts} == {"w1", "w2"}
    assert [a.status for a in attempts] == ["succeeded"] * 4
    assert {a.engine_revision for a in attempts} == {0}
    assert all(a.progress == 100.0 for a in attempts)
    written = sorted(p for a in attempts for p in a.outputs)
    assert written == [str(tmp_path / "render" / f"frame_{n:04d}.png") for n in range(1, 9)]
    log = _log(farm, render.id)
    assert "[engine] frame 1" in log
    assert "[engine] frame 2" in log
    # AND the movie holds every frame
    assert _ffprobe_frames(movie) == FRAMES


def test_povray_renders_an_animation_chunked_across_lanes(
    render_farm: Farm, tmp_path: Path
) -> None:
    farm = render_farm
    require("povray")
    farm.worker("w1", lanes=2)
    with farm.client() as client:
        job = client.submit_engine(
            "povray",
            input=str(EXAMPLES / "orbit.pov"),
            range="1-4",
            output=str(tmp_path / "frames" / "orbit.png"),
            bucketsize=2,
            parameters={"width": WIDTH, "height": HEIGHT},
        )
        assert _finished(farm, job.id) == "succeeded", _log(farm, job.id)
        attempts = client.attempts(job.id)
    images = [_image(tmp_path / "frames" / f"orbit{n}.png") for n in (1, 2, 3, 4)]
    assert len(set(images)) == 4  # the ball moves with the clock
    # both lanes rendered in their staging folders, moved into place and removed
    assert sorted(p.name for p in (tmp_path / "frames").iterdir()) == [
        f"orbit{n}.png" for n in (1, 2, 3, 4)
    ]
    assert sorted(a.index for a in attempts) == [0, 1]
    assert all(a.progress == 100.0 for a in attempts)


def test_a_mapped_scene_path_is_rewritten_in_the_converted_copy_and_rendered(
    render_farm: Farm, tmp_path: Path
) -> None:
    farm = render_farm
    require("povray")
    farm.worker("w1")
    # GIVEN a scene on this machine's share whose include names the submitter's share path
    share = tmp_path / "share"
    (share / "inc").mkdir(parents=True)
    (share / "inc" / "ball.inc").write_text("#declare BallColor = rgb <1, 0.5, 0>;\n")
    scene = (EXAMPLES / "orbit.pov").read_text()
    scene = scene.replace(
        '#include "colors.inc"', '#include "colors.inc"\n#include "/studio/share/inc/ball.inc"'
    ).replace("color Red", "color BallColor")
    (share / "scene.pov").write_text(scene)
    with farm.client() as client:
        # WHEN it is submitted with the submitter's paths, mapped, and input conversion on
        job = client.submit_engine(
            "povray",
            input="/studio/share/scene.pov",
            range="1",
            output="/studio/share/out/img.png",
            parameters={
                "width": WIDTH,
                "height": HEIGHT,
                "input_conversion": "always",
                "remote_os": "mac",
                "mapped_share_paths": [{"remote": "/studio/share", "local": str(share)}],
            },
            retries=0,
        )
        status = _finished(farm, job.id)
    log = _log(farm, job.id)
    # THEN the converted copy names the local include, and the render read it
    assert status == "succeeded", log
    copy = farm.tmp / "work-w1" / "jobs" / str(job.id) / "0-0" / "converted" / "scene.pov"
    assert f'#include "{share}/inc/ball.inc"' in copy.read_text()
    assert f"converted to {copy}" in log
    _image(share / "out" / "img.png")  # a one-frame job: POV-Ray adds no frame number


# ---------------------------------------------------------------------------------- failures


def test_a_missing_scene_file_is_a_clean_failure(render_farm: Farm, tmp_path: Path) -> None:
    farm = render_farm
    require("blender")
    farm.worker("w1")
    missing = tmp_path / "missing.blend"
    with farm.client() as client:
        job = client.submit_engine("blender", input=str(missing), range="1", retries=0)
        assert _finished(farm, job.id) == "failed"
        (attempt,) = client.attempts(job.id)
    assert attempt.status == "failed"
    assert "Cannot read file" in (attempt.message or "")
    assert f"Cannot read file '{missing}'" in _log(farm, job.id)


def test_an_unwritable_output_folder_is_a_clean_failure(
    render_farm: Farm, blend_scene: Path
) -> None:
    farm = render_farm
    farm.worker("w1")
    with farm.client() as client:
        job = client.submit_engine(
            "blender",
            input=str(blend_scene),
            range="1",
            output="/proc/thresher-no-such-dir/frame_####",
            retries=0,
        )
        assert _finished(farm, job.id) == "failed"
        (attempt,) = client.attempts(job.id)
    # the message is the exit status and Blender's own words, which the log holds too
    message = "cannot save: '/proc/thresher-no-such-dir/frame_0001.png'"
    assert (attempt.message or "").startswith("exit code ")
    assert message in (attempt.message or "")
    assert message in _log(farm, job.id)


def _processes_reading(path: Path) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                argv = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if os.fsencode(path) in argv:
                found.append(int(entry.name))
    return found


def test_a_render_cancelled_mid_frame_stops_within_the_grace_period(
    render_farm: Farm, blend_scene: Path, tmp_path: Path
) -> None:
    farm = render_farm
    # A grace longer than the wait below: the process must go on SIGTERM, not on SIGKILL.
    farm.worker("w1", grace=120.0)
    scene = tmp_path / "slow.blend"
    scene.write_bytes(blend_scene.read_bytes())
    # no adaptive sampling: a tiny frame would converge and finish before the cancel
    slow = (
        "import bpy; c = bpy.context.scene.cycles; "
        "c.samples = 1000000; c.use_adaptive_sampling = False"
    )
    with farm.client() as client:
        job = client.submit_engine(
            "blender",
            input=str(scene),
            range="1",
            output=str(tmp_path / "render" / "f_####"),
            parameters={"arguments": ["--python-expr", slow]},
        )
        # GIVEN Blender sampling frame 1, its progress reported to the controller
        wait_until(
            lambda: client.tasks(job.id).tasks[0].progress is not None,
            timeout=60,
            what="sampling progress on the task",
        )
        assert _processes_reading(scene)
        # WHEN the job is cancelled
        client.cancel(job.id)
        wait_until(
            lambda: [a.status for a in client.attempts(job.id)] == ["canceled"],
            timeout=60,
            what="the attempt reported canceled",
        )
        assert client.job(job.id).status == "canceled"
    # THEN Blender is gone, on SIGTERM (long before the SIGKILL the grace would bring), and the
    # frame it was sampling was not saved
    assert _processes_reading(scene) == []
    assert not (tmp_path / "render" / "f_0001.png").exists()
