"""Command lines of every built-in engine against the applications' documented forms."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from thresher.engines import EngineConfigError, EngineTask, load_builtin
from thresher.engines.builtin import houdini
from thresher.engines.sequence import DRIVER_MODULE


def argv_for(make_task: Callable[..., EngineTask], engine: str, **fields: Any) -> tuple[str, ...]:
    return load_builtin(engine)().prepare(make_task(**fields), base_env={}).argv


def steps_of(argv: tuple[str, ...]) -> list[tuple[int | None, list[str]]]:
    """The (frame, argv) steps of a sequence-driver command line."""
    assert argv[:4] == (sys.executable, "-I", "-m", DRIVER_MODULE)
    return [(s["frame"], s["argv"]) for s in json.loads(argv[4])["steps"]]


# ---------------------------------------------------------------------------------- blender


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        (
            {"frames": (1, 2, 3, 4), "input": "/p/shot.blend"},
            "blender -b /p/shot.blend --python-exit-code 1 -s 1 -e 4 -a",
        ),
        (
            {
                "frames": (5, 6),
                "input": "/p/shot.blend",
                "output": "/r/shot_####",
                "parameters": {"renderer": "cycles", "format": "png", "threads": 4},
            },
            "blender -b /p/shot.blend --python-exit-code 1 -E CYCLES -o /r/shot_#### -F PNG"
            " -t 4 -s 5 -e 6 -a",
        ),
        (
            {"frames": (1,), "input": "/s.blend", "parameters": {"renderer": "eevee"}},
            "blender -b /s.blend --python-exit-code 1 -E BLENDER_EEVEE -s 1 -e 1 -a",
        ),
        (
            {"frames": (1,), "input": "/s.blend", "parameters": {"renderer": "workbench"}},
            "blender -b /s.blend --python-exit-code 1 -E BLENDER_WORKBENCH -s 1 -e 1 -a",
        ),
        (  # a GPU lane: Cycles on its GPUs unless the job says otherwise
            {"frames": (1,), "input": "/s.blend", "gpu_ids": (1,)},
            "blender -b /s.blend --python-exit-code 1 -s 1 -e 1 -a -- --cycles-device CUDA",
        ),
        (
            {"frames": (1,), "input": "/s.blend", "gpu_ids": (1,), "parameters": {"device": "cpu"}},
            "blender -b /s.blend --python-exit-code 1 -s 1 -e 1 -a -- --cycles-device CPU",
        ),
        (
            {"frames": (1, 3, 5), "input": "/s.blend"},
            "blender -b /s.blend --python-exit-code 1 -s 1 -e 5 -j 2 -a",
        ),
        (
            {"frames": (1, 2, 7), "input": "/s.blend"},
            "blender -b /s.blend --python-exit-code 1 -f 1,2,7",
        ),
        (
            {
                "frames": (10, 11),
                "input": "/s.blend",
                "parameters": {
                    "device": "optix",
                    "arguments": "--python-expr 'print(1)' -- --seed 3",
                },
            },
            "blender -b /s.blend --python-exit-code 1 --python-expr print(1) -s 10 -e 11 -a"
            " -- --cycles-device OPTIX --seed 3",
        ),
    ],
)
def test_blender(
    make_task: Callable[..., EngineTask], fields: dict[str, Any], expected: str
) -> None:
    argv = argv_for(make_task, "blender", **fields)
    assert " ".join(argv) == expected


def test_blender_places_every_option_before_the_render_flags(
    make_task: Callable[..., EngineTask],
) -> None:
    parameters = {"renderer": "cycles", "format": "OPEN_EXR", "arguments": "-x 1 -noaudio"}
    argv = argv_for(
        make_task,
        "blender",
        frames=(1, 2),
        input="/s.blend",
        output="/r/f_####",
        parameters=parameters,
    )
    render_flags = argv.index("-s")
    for option in ("-b", "--python-exit-code", "-E", "-o", "-F", "-x", "-noaudio"):
        assert argv.index(option) < render_flags, option
    assert argv[-1] == "-a"


# ---------------------------------------------------------------------------------- povray


def test_povray_renders_the_chunk_of_the_job_animation(
    make_task: Callable[..., EngineTask], tmp_path: Path
) -> None:
    out = tmp_path / "frames" / "orbit.png"
    argv = argv_for(
        make_task,
        "povray",
        frames=(5, 6, 7),
        job_range=(1, 48),
        input="/scenes/orbit.pov",
        output=str(out),
        parameters={"width": 64, "height": 36, "antialias": 0.3},
    )
    assert argv == (
        "povray",
        "+I/scenes/orbit.pov",
        f"+O{out}",
        "+FN",
        "+W64",
        "+H36",
        "-D",
        "+L/scenes",
        "+KFI1",
        "+KFF48",
        "+KI0.0",
        "+KF1.0",
        "+A0.3",
        "+SF5",
        "+EF7",
    )
    # the output folder is created before the run
    assert out.parent.is_dir()


def test_povray_runs_each_consecutive_run_of_frames(
    make_task: Callable[..., EngineTask], tmp_path: Path
) -> None:
    argv = argv_for(
        make_task,
        "povray",
        frames=(1, 2, 5),
        input="/s/o.pov",
        output=f"{tmp_path}/x/o.png",
        parameters={"format": "exr"},
    )
    steps = steps_of(argv)
    assert [frame for frame, _ in steps] == [1, 5]
    assert steps[0][1][-2:] == ["+SF1", "+EF2"]
    assert steps[1][1][-2:] == ["+SF5", "+EF5"]
    assert "+FE" in steps[0][1]


# ---------------------------------------------------------------------------------- ffmpeg


@pytest.mark.parametrize(
    ("name", "codec_options"),
    [
        (
            "movie.mp4",
            "-c:v libx264 -pix_fmt yuv420p -vf scale=trunc(iw/2)*2:trunc(ih/2)*2"
            " -movflags +faststart",
        ),
        (
            "movie.gif",
            "-filter_complex [0:v]split[a][b];[a]palettegen[p];[b][p]paletteuse -loop 0",
        ),
    ],
)
def test_ffmpeg(
    make_task: Callable[..., EngineTask], tmp_path: Path, name: str, codec_options: str
) -> None:
    output = f"{tmp_path}/r/{name}"
    argv = argv_for(
        make_task,
        "ffmpeg",
        frames=tuple(range(1, 49)),
        input="/r/frame_####.png",
        output=output,
        parameters={"framerate": 25},
    )
    assert " ".join(argv) == (
        "ffmpeg -hide_banner -nostdin -start_number 1 -framerate 25 -i /r/frame_%04d.png"
        f" -frames:v 48 {codec_options} -progress pipe:1 -nostats -y {output}"
    )
    assert (tmp_path / "r").is_dir()  # the movie's folder is created before the run


# ---------------------------------------------------------------------------------- nuke


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        (
            {"frames": (1, 2, 3), "input": "/c/comp.nk"},
            "nuke -x -F 1-3 /c/comp.nk",
        ),
        (
            {
                "frames": (10, 12, 14, 20),
                "input": "/c/comp.nk",
                "parameters": {"write_node": "Write1", "threads": 8, "interactive_license": True},
            },
            "nuke -x -X Write1 -i -m 8 -F 10-14x2 -F 20 /c/comp.nk",
        ),
        (
            {
                "frames": (5,),
                "input": "/c/comp.nk",
                "parameters": {"continue_on_error": True, "verbosity": 2, "arguments": "--gpu"},
            },
            "nuke -x --cont -V 2 --gpu -F 5 /c/comp.nk",
        ),
    ],
)
def test_nuke(make_task: Callable[..., EngineTask], fields: dict[str, Any], expected: str) -> None:
    assert " ".join(argv_for(make_task, "nuke", **fields)) == expected


# ---------------------------------------------------------------------------------- maya


def test_maya(make_task: Callable[..., EngineTask], tmp_path: Path) -> None:
    argv = argv_for(
        make_task,
        "maya",
        frames=(1, 2, 3),
        input="/m/scene.mb",
        output=f"{tmp_path}/images",
        parameters={"renderer": "arnold", "image_name": "beauty", "camera": "shotCam"},
    )
    assert " ".join(argv) == (
        f"Render -r arnold -s 1 -e 3 -rd {tmp_path}/images -im beauty -cam shotCam /m/scene.mb"
    )


def test_maya_defaults_to_the_scene_renderer_and_splits_uneven_chunks(
    make_task: Callable[..., EngineTask],
) -> None:
    argv = argv_for(make_task, "maya", frames=(1, 3, 5, 6), input="/m/s.ma")
    assert steps_of(argv) == [
        (1, ["Render", "-r", "file", "-s", "1", "-e", "5", "-b", "2", "/m/s.ma"]),
        (6, ["Render", "-r", "file", "-s", "6", "-e", "6", "/m/s.ma"]),
    ]


# ---------------------------------------------------------------------------------- mantra


def test_mantra_single_frame_runs_directly(make_task: Callable[..., EngineTask]) -> None:
    argv = argv_for(
        make_task, "mantra", frames=(12,), input="/ifd/shot.$F4.ifd", output="/r/shot.$F4.exr"
    )
    assert argv == ("mantra", "-V", "2a", "-f", "/ifd/shot.0012.ifd", "/r/shot.0012.exr")


def test_mantra_chunk_runs_one_mantra_per_ifd(make_task: Callable[..., EngineTask]) -> None:
    argv = argv_for(
        make_task,
        "mantra",
        frames=(1, 2, 3),
        input="/ifd/shot.####.ifd",
        parameters={"threads": 8},
    )
    assert steps_of(argv) == [
        (f, ["mantra", "-V", "2a", "-j", "8", "-f", f"/ifd/shot.{f:04d}.ifd"]) for f in (1, 2, 3)
    ]


# ---------------------------------------------------------------------------------- kick


def test_kick_single_frame(make_task: Callable[..., EngineTask]) -> None:
    argv = argv_for(
        make_task, "kick", frames=(7,), input="/a/shot.####.ass", output="/r/shot.####.exr"
    )
    assert " ".join(argv) == "kick -i /a/shot.0007.ass -o /r/shot.0007.exr -dw -dp -v 2"


def test_kick_chunk_with_options(make_task: Callable[..., EngineTask]) -> None:
    argv = argv_for(
        make_task,
        "kick",
        frames=(1, 2),
        input="/a/shot.$F4.ass",
        parameters={"threads": 16, "width": 640, "height": 360, "arguments": "-as 4"},
    )
    assert steps_of(argv) == [
        (
            f,
            [
                "kick",
                "-i",
                f"/a/shot.{f:04d}.ass",
                "-dw",
                "-dp",
                "-v",
                "2",
                "-t",
                "16",
                "-r",
                "640",
                "360",
                "-as",
                "4",
            ],
        )
        for f in (1, 2)
    ]


# ---------------------------------------------------------------------------------- houdini


def test_houdini_runs_the_rop_script_with_hython(make_task: Callable[..., EngineTask]) -> None:
    argv = argv_for(
        make_task,
        "houdini",
        frames=(1, 2, 3),
        input="/h/shot.hip",
        output="/r/shot.$F4.exr",
        parameters={"rop": "/out/mantra1"},
    )
    assert argv == (
        "hython",
        "-c",
        houdini.SCRIPT,
        "/h/shot.hip",
        "/out/mantra1",
        "1,2,3",
        "/r/shot.$F4.exr",
        "0",
    )
    compile(houdini.SCRIPT, "<houdini script>", "exec")  # the script itself is valid Python


def test_houdini_needs_a_rop(make_task: Callable[..., EngineTask]) -> None:
    with pytest.raises(EngineConfigError, match="ROP"):
        argv_for(make_task, "houdini", input="/h/shot.hip")


# ---------------------------------------------------------------------------------- command


@pytest.mark.parametrize(
    ("parameters", "expected"),
    [
        (
            {"command": ["python3", "sim.py", "--frames", "{start}-{end}", "--n={count}"]},
            ("python3", "sim.py", "--frames", "4-6", "--n=3"),
        ),
        (
            {"command": "convert {input} out_{frame:04d}.png", "arguments": "-quiet"},
            ("convert", "/in/a.png", "out_0004.png", "-quiet"),
        ),
        (
            {"command": "tool --list {frames}", "executable": "/opt/tool/bin/tool"},
            ("/opt/tool/bin/tool", "--list", "4,5,6"),
        ),
    ],
)
def test_command(
    make_task: Callable[..., EngineTask], parameters: dict[str, Any], expected: tuple[str, ...]
) -> None:
    argv = argv_for(
        make_task, "command", frames=(4, 5, 6), input="/in/a.png", parameters=parameters
    )
    assert argv == expected


def test_command_per_frame_runs_the_template_for_each_frame(
    make_task: Callable[..., EngineTask],
) -> None:
    argv = argv_for(
        make_task,
        "command",
        frames=(4, 5),
        parameters={"command": "echo {frame}", "per_frame": True},
    )
    assert steps_of(argv) == [(4, ["echo", "4"]), (5, ["echo", "5"])]


def test_command_needs_a_command(make_task: Callable[..., EngineTask]) -> None:
    with pytest.raises(EngineConfigError, match="needs a 'command'"):
        argv_for(make_task, "command")


@pytest.mark.parametrize(
    ("engine", "fields"),
    [
        ("blender", {}),
        ("blender", {"input": "/s.blend", "frames": ()}),
        ("povray", {}),
        ("ffmpeg", {"input": "/r/movie.mov", "output": "x.mp4"}),
        ("ffmpeg", {"input": "/r/f_####.png"}),
        ("nuke", {}),
        ("maya", {}),
        ("mantra", {}),
        ("kick", {}),
        ("houdini", {"parameters": {"rop": "/out/r"}}),
    ],
)
def test_missing_inputs_are_configuration_errors(
    make_task: Callable[..., EngineTask], engine: str, fields: dict[str, Any]
) -> None:
    with pytest.raises(EngineConfigError):
        argv_for(make_task, engine, **fields)


# ---------------------------------------------------------------------------------- folder output


@pytest.mark.parametrize(
    ("engine", "fields", "expected"),
    [
        # Blender adds the format's extension to -o itself
        ("blender", {"input": "/p/shot.blend"}, ["-o", "{out}/shot_####"]),
        # POV-Ray appends the frame number itself
        (
            "povray",
            {"input": "/s/orbit.pov", "parameters": {"format": "exr"}},
            ["+O{out}/orbit.exr"],
        ),
        ("ffmpeg", {"input": "/r/shot10_####.png"}, ["-y", "{out}/shot10.mp4"]),
        (
            "ffmpeg",
            {"input": "/r/shot10.####.png", "parameters": {"format": "gif"}},
            ["-y", "{out}/shot10.gif"],
        ),
        # Maya's Render takes the image folder itself
        ("maya", {"input": "/m/scene.mb"}, ["-rd", "{out}", "/m/scene.mb"]),
        ("mantra", {"input": "/ifd/shot.$F4.ifd"}, ["/ifd/shot.0001.ifd", "{out}/shot.0001.exr"]),
        ("kick", {"input": "/a/shot.####.ass"}, ["-o", "{out}/shot.0001.exr"]),
        (
            "houdini",
            {"input": "/h/shot.hip", "parameters": {"rop": "/out/mantra1"}},
            ["1", "{out}/shot.$F4.exr", "0"],
        ),
        # the command's template names the files: {output} is the folder
        ("command", {"parameters": {"command": "tool --out {output}/x.txt"}}, ["{out}/x.txt"]),
        # Nuke's Write nodes name the files: the output is not on its command line
        ("nuke", {"input": "/c/comp.nk"}, ["nuke", "-x", "-F", "1", "/c/comp.nk"]),
    ],
)
def test_a_folder_output_is_written_inside_the_folder(
    make_task: Callable[..., EngineTask],
    tmp_path: Path,
    engine: str,
    fields: dict[str, Any],
    expected: list[str],
) -> None:
    # GIVEN an output with no extension and no frame pattern, which does not exist yet
    out = tmp_path / "render" / "shot10"
    # WHEN the engine prepares a one-frame task
    argv = list(argv_for(make_task, engine, output=str(out), **fields))
    # THEN its command line names a file inside the folder, and the folder exists
    wanted = [item.replace("{out}", str(out)) for item in expected]
    assert any(argv[i : i + len(wanted)] == wanted for i in range(len(argv))), argv
    assert out.is_dir()


def test_an_existing_folder_named_like_a_file_is_a_folder(
    make_task: Callable[..., EngineTask], tmp_path: Path
) -> None:
    out = tmp_path / "render.v2"
    out.mkdir()
    argv = argv_for(make_task, "blender", input="/p/shot.blend", output=str(out))
    assert argv[argv.index("-o") + 1] == f"{out}/shot_####"
