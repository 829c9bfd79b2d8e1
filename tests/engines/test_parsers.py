"""Output parsers of every built-in engine against sample lines of each application."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path
from typing import Any

from thresher.engines import Engine, EngineEvent, EngineTask, EventKind, load_builtin

E = EngineEvent


def prepared(make_task: Callable[..., EngineTask], name: str, **fields: Any) -> Engine:
    engine = load_builtin(name)()
    engine.prepare(make_task(**fields), base_env={})
    return engine


def feed(engine: Engine, lines: list[str], stream: str = "stdout") -> list[EngineEvent]:
    events: list[EngineEvent] = []
    for line in lines:
        events += engine.parse_output(line, stream)
    return events


def percents(events: list[EngineEvent]) -> list[float]:
    """The values of progress events; an event of another kind fails the test."""
    assert all(e.kind is EventKind.PROGRESS for e in events), events
    return [float(e.value) for e in events]


# ---------------------------------------------------------------------------------- blender

CYCLES = [
    "Blender 3.4.1",
    "Read blend: /p/shot.blend",
    "Fra:1 Mem:9.04M (Peak 10.83M) | Time:00:00.00 | Mem:0.00M, Peak:0.00M | Scene, ViewLayer"
    " | Synchronizing object | Cube",
    "Fra:1 Mem:9.04M (Peak 10.83M) | Time:00:00.00 | Mem:0.00M, Peak:0.00M | Scene, ViewLayer"
    " | Initializing",
    "Fra:1 Mem:9.90M (Peak 10.83M) | Time:00:00.05 | Mem:0.76M, Peak:0.76M | Scene, ViewLayer"
    " | Sample 0/4",
    "Fra:1 Mem:9.99M (Peak 10.83M) | Time:00:00.05 | Remaining:00:00.00 | Mem:0.84M, Peak:0.84M"
    " | Scene, ViewLayer | Sample 2/4",
    "Fra:1 Mem:10.02M (Peak 10.83M) | Time:00:00.05 | Mem:0.84M, Peak:0.84M | Scene, ViewLayer"
    " | Finished",
    "Saved: '/r/f_0001.png'",
    " Time: 00:00.22 (Saving: 00:00.16)",
    "Fra:2 Mem:9.29M (Peak 10.83M) | Time:00:00.00 | Mem:0.00M, Peak:0.00M | Scene, ViewLayer"
    " | Sample 4/4",
    "Saved: '/r/f_0002.png'",
    "Blender quit",
]


def test_blender_cycles(make_task: Callable[..., EngineTask]) -> None:
    # progress is per task: frame 1 of 2 is the first half; repeated values are dropped
    engine = prepared(make_task, "blender", frames=(1, 2), input="/p/shot.blend")
    assert feed(engine, CYCLES) == [
        E.frame(1),
        E.status("Synchronizing object | Cube"),
        E.status("Initializing"),
        E.progress(0.0),
        E.progress(25.0),
        E.status("Finished"),
        E.output("/r/f_0001.png"),
        E.progress(50.0),
        E.frame(2),
        E.progress(100.0),
        E.output("/r/f_0002.png"),
    ]


def test_blender_eevee_and_old_cycles_tiles(make_task: Callable[..., EngineTask]) -> None:
    engine = prepared(make_task, "blender", frames=(10, 11), input="/p/shot.blend")
    lines = [
        "Fra:10 Mem:10.78M (Peak 11.89M) | Time:00:03.95 | Rendering 16 / 64 samples",
        "Fra:11 Mem:12.00M (Peak 14.00M) | Time:00:01.00 | Remaining:00:02.00 | Mem:1.00M, "
        "Peak:2.00M | Scene, RenderLayer | Rendered 8/16 Tiles, Sample 32/32",
        "Fra:11 Mem:12.00M | Time:00:01.00 | Scene | Path Tracing Tile 3/4, Sample 16/32",
    ]
    assert feed(engine, lines) == [
        E.frame(10),
        E.progress(12.5),
        E.frame(11),
        E.progress(75.0),
        E.progress(81.25),
    ]


def test_blender_errors_and_warnings(make_task: Callable[..., EngineTask]) -> None:
    engine = prepared(make_task, "blender", frames=(1,), input="/p/shot.blend")
    lines = [
        "Error: Cannot read file '/nope.blend': No such file or directory",
        "Error: Render error (Invalid argument) cannot save: '/proc/x/f_0001.png'",
        "Warning: unable to load image '/tex/missing.png'",
        "EGL Error (0x3001): EGL_NOT_INITIALIZED",
    ]
    assert feed(engine, lines, "stderr") == [
        E.error("Cannot read file '/nope.blend': No such file or directory"),
        E.error("Render error (Invalid argument) cannot save: '/proc/x/f_0001.png'"),
        E.warning("unable to load image '/tex/missing.png'"),
    ]


def test_blender_workbench_progress_comes_from_saved_files(
    make_task: Callable[..., EngineTask],
) -> None:
    engine = prepared(make_task, "blender", frames=(1, 2, 3, 4), input="/p/shot.blend")
    events = feed(engine, ["Saved: '/r/0001.png'", "Saved: '/r/0002.png'"])
    assert events == [
        E.output("/r/0001.png"),
        E.progress(25.0),
        E.output("/r/0002.png"),
        E.progress(50.0),
    ]


# ---------------------------------------------------------------------------------- povray


def test_povray_carriage_return_progress_on_stderr(
    make_task: Callable[..., EngineTask], tmp_path: Any
) -> None:
    engine = prepared(
        make_task,
        "povray",
        frames=(2, 3),
        job_range=(1, 10),
        input="/s/o.pov",
        output=f"{tmp_path}/out/o.png",
    )
    lines = [
        "Rendering frame 1 of 2",
        "",
        "Rendering frame 1 of 2",
        "  Output file..........out/o02.png, 24 bpp PNG",
        "Possible Parse Error: assumed_gamma not specified in this POV-Ray 3.7 or later",
        "Parse Warning: This scene had other declarations preceding the first #version",
        "Rendered 1024 of 2304 pixels (44%)\rRendered 2304 of 2304 pixels (100%)\r",
        "Render Statistics",
        "Rendering frame 2 of 2",
        "Rendered 1152 of 2304 pixels (50%)\r",
    ]
    events = feed(engine, lines, "stderr")
    workdir = engine.task.workdir if engine.task else ""
    assert events == [
        E.frame(2),
        E.progress(0.0),
        E.warning("Possible Parse Error: assumed_gamma not specified in this POV-Ray 3.7 or later"),
        E.warning("Parse Warning: This scene had other declarations preceding the first #version"),
        E.progress(1024 / 2304 * 50),
        E.progress(50.0),
        E.output(f"{workdir}/out/o02.png"),
        E.frame(3),
        E.progress(75.0),
    ]


def test_povray_errors(make_task: Callable[..., EngineTask], tmp_path: Any) -> None:
    engine = prepared(make_task, "povray", input="/s/o.pov", output=f"{tmp_path}/o.png")
    lines = [
        "File 'bad.pov' line 2: Parse Error: No matching } in 'pigment', undeclared",
        "Parse Error: Cannot open input file.",
        "Fatal error in parser: Cannot parse input.",
        "Render failed",
        "povray: cannot open the user configuration file /root/.povray/3.7/povray.conf",
    ]
    assert feed(engine, lines, "stderr") == [
        E.error("File 'bad.pov' line 2: Parse Error: No matching } in 'pigment', undeclared"),
        E.error("Parse Error: Cannot open input file."),
        E.error("Fatal error in parser: Cannot parse input."),
        E.error("Render failed"),
    ]


# ---------------------------------------------------------------------------------- ffmpeg

FFMPEG_PROGRESS = """frame=1
fps=0.00
out_time_us=0
out_time_ms=0
out_time=00:00:00.000000
progress=continue
frame=5
out_time_us=125000
out_time_ms=125000
progress=continue
frame=10
out_time_us=375000
out_time_ms=375000
total_size=3295
progress=end""".splitlines()


def test_ffmpeg_progress_pairs(make_task: Callable[..., EngineTask], tmp_path: Any) -> None:
    engine = prepared(
        make_task,
        "ffmpeg",
        frames=tuple(range(1, 11)),
        input="/r/f_####.png",
        output=f"{tmp_path}/m.mp4",
        parameters={"framerate": 24},
    )
    assert feed(engine, FFMPEG_PROGRESS) == [
        E.progress(10.0),
        E.progress(50.0),
        E.progress(100.0),
        E.output(f"{tmp_path}/m.mp4"),
        E.status("encoding finished"),
    ]


def test_ffmpeg_errors_on_stderr(make_task: Callable[..., EngineTask], tmp_path: Any) -> None:
    engine = prepared(make_task, "ffmpeg", input="/r/f_####.png", output=f"{tmp_path}/m.mp4")
    lines = [
        "[image2 @ 0x55d] Could find no file with path '/r/f_%04d.png' and index in the range 1-5",
        "/r/f_%04d.png: No such file or directory",
        "Input #0, image2, from '/r/f_%04d.png':",
    ]
    assert feed(engine, lines, "stderr") == [E.error(lines[0]), E.error(lines[1])]
    assert feed(engine, ["frame=3"], "stderr") == []


# ---------------------------------------------------------------------------------- nuke


def test_nuke(make_task: Callable[..., EngineTask]) -> None:
    engine = prepared(make_task, "nuke", frames=(1, 2), input="/c/comp.nk")
    lines = [
        "Frame 1 (1 of 2)",
        "Writing /r/comp.0001.exr took 0.52 seconds",
        "Frame 2 (2 of 2)",
        "Writing /r/comp.0002.exr frame 2",
        "Write1: ERROR: Can't write /r/comp.0002.exr: permission denied",
        "Warning: Read1: missing frame 2, using black",
    ]
    assert feed(engine, lines) == [
        E.frame(1),
        E.progress(0.0),
        E.output("/r/comp.0001.exr"),
        E.progress(50.0),
        E.frame(2),
        E.output("/r/comp.0002.exr"),
        E.progress(100.0),
        E.error("Write1: ERROR: Can't write /r/comp.0002.exr: permission denied"),
        E.warning("Warning: Read1: missing frame 2, using black"),
    ]


# ---------------------------------------------------------------------------------- maya


def test_maya(make_task: Callable[..., EngineTask]) -> None:
    engine = prepared(make_task, "maya", frames=(1, 2), input="/m/s.mb")
    lines = [
        "Rendering frame 1",
        "Percentage of rendering done: 50 (s.mb)",
        "00:00:02   412MB         |    80% done - 12 rays/pixel",
        "00:00:03   420MB         | [driver_exr] writing file `/r/images/beauty.0001.exr'",
        "Rendering frame 2",
        "Finished Rendering /r/images/s.0002.iff.",
        '// Error: file: /m/s.mb line 10: Cannot find procedure "foo".',
        "00:00:01   100MB ERROR   | [ass] can't read /x.ass",
        "// Warning: line 1: Unrecognized node type 'xyz'",
    ]
    assert feed(engine, lines) == [
        E.frame(1),
        E.progress(0.0),
        E.progress(25.0),
        E.progress(40.0),
        E.output("/r/images/beauty.0001.exr"),
        E.frame(2),
        E.progress(50.0),
        E.output("/r/images/s.0002.iff"),
        E.error('// Error: file: /m/s.mb line 10: Cannot find procedure "foo".'),
        E.error("00:00:01   100MB ERROR   | [ass] can't read /x.ass"),
        E.warning("// Warning: line 1: Unrecognized node type 'xyz'"),
    ]


# ---------------------------------------------------------------------------------- mantra


def test_mantra_chunk(make_task: Callable[..., EngineTask]) -> None:
    engine = prepared(make_task, "mantra", frames=(1, 2), input="/ifd/s.$F4.ifd")
    lines = [
        "[thresher] step 1 of 2: frame 1",
        "ALF_PROGRESS 50%",
        "ALF_PROGRESS 100%",
        "[thresher] step 2 of 2: frame 2",
        "mantra: Unable to open file /ifd/s.0002.ifd",
        "mantra: Warning: shader 'foo' not found",
    ]
    assert feed(engine, lines) == [
        E.frame(1),
        E.progress(0.0),
        E.progress(25.0),
        E.progress(50.0),
        E.frame(2),
        E.error("mantra: Unable to open file /ifd/s.0002.ifd"),
        E.warning("mantra: Warning: shader 'foo' not found"),
    ]


def test_mantra_single_frame_has_no_markers(make_task: Callable[..., EngineTask]) -> None:
    engine = prepared(make_task, "mantra", frames=(7,), input="/ifd/s.$F4.ifd")
    assert feed(engine, ["ALF_PROGRESS 30%"]) == [E.frame(7), E.progress(30.0)]


# ---------------------------------------------------------------------------------- kick


def test_kick(make_task: Callable[..., EngineTask]) -> None:
    engine = prepared(make_task, "kick", frames=(3,), input="/a/s.####.ass")
    lines = [
        "00:00:00   136MB         | starting 31 bucket workers of size 64x64 ...",
        "00:00:00   136MB         |     0% done - 256 rays/pixel",
        "00:00:01   140MB         |    45% done - 4 rays/pixel",
        "00:00:02   150MB         | [driver_exr] writing file `/r/s.0003.exr'",
        "00:00:02   150MB         | render done in 0:01.990",
        "00:00:00    45MB ERROR   | [ass] line 3: node 'foo' is not installed",
        "00:00:00    45MB WARNING | [ass] parameter 'bar' is deprecated",
    ]
    assert feed(engine, lines) == [
        E.frame(3),
        E.progress(0.0),
        E.progress(45.0),
        E.output("/r/s.0003.exr"),
        E.progress(100.0),
        E.status("render done"),
        E.error("00:00:00    45MB ERROR   | [ass] line 3: node 'foo' is not installed"),
        E.warning("00:00:00    45MB WARNING | [ass] parameter 'bar' is deprecated"),
    ]


# ---------------------------------------------------------------------------------- houdini


def test_houdini(make_task: Callable[..., EngineTask]) -> None:
    engine = prepared(
        make_task, "houdini", frames=(1, 2), input="/h/s.hip", parameters={"rop": "/out/m1"}
    )
    lines = [
        "[thresher] houdini frame 1 (1 of 2)",
        "ALF_PROGRESS 40%",
        "[thresher] houdini wrote /r/s.0001.exr",
        "[thresher] houdini frame 2 (2 of 2)",
        "[thresher] houdini error: frame 2: Error: Unable to open /r/s.0002.exr",
        "[thresher] houdini warning: missing asset definition",
        "Traceback (most recent call last):",
    ]
    assert feed(engine, lines) == [
        E.frame(1),
        E.progress(0.0),
        E.progress(20.0),
        E.output("/r/s.0001.exr"),
        E.progress(50.0),
        E.frame(2),
        E.error("frame 2: Error: Unable to open /r/s.0002.exr"),
        E.warning("missing asset definition"),
        E.error("Traceback (most recent call last):"),
    ]


# ---------------------------------------------------------------------------------- command


def test_command_progress_and_errors(make_task: Callable[..., EngineTask]) -> None:
    engine = prepared(
        make_task, "command", frames=(1, 2), parameters={"command": "sim", "per_frame": True}
    )
    lines = [
        "[thresher] step 2 of 2: frame 2",
        "progress: 50%",
        "PROGRESS 80",
        "error: solver diverged",
        "ordinary line",
    ]
    assert feed(engine, lines) == [
        E.frame(2),
        E.progress(50.0),
        E.progress(75.0),
        E.progress(90.0),
        E.error("error: solver diverged"),
    ]


def test_command_custom_patterns(make_task: Callable[..., EngineTask]) -> None:
    parameters = {
        "command": "sim",
        "progress_pattern": r"step (\d+)/100",
        "error_pattern": r"^FAILED",
    }
    engine = prepared(make_task, "command", parameters=parameters)
    assert feed(engine, ["step 42/100", "FAILED: boom", "error: ignored"]) == [
        E.progress(42.0),
        E.error("FAILED: boom"),
    ]


def test_ffmpeg_out_time_alone_gives_progress(
    make_task: Callable[..., EngineTask], tmp_path: Any
) -> None:
    engine = prepared(
        make_task,
        "ffmpeg",
        frames=tuple(range(1, 25)),
        input="/r/f_####.png",
        output=f"{tmp_path}/m.gif",
        parameters={"framerate": 12},
    )
    # 0.5 s at 12 fps shows frame 6 (from 0): 7 of 24 frames done
    assert feed(engine, ["out_time_ms=500000"]) == [E.progress(7 / 24 * 100)]


def test_progress_is_throttled_to_half_a_percent(
    make_task: Callable[..., EngineTask], tmp_path: Path
) -> None:
    engine = prepared(
        make_task, "povray", frames=(1,), input="/s/o.pov", output=f"{tmp_path}/o.png"
    )
    counter = "\r".join(f"Rendered {n} of 1000 pixels ({n // 10}%)" for n in range(0, 1001, 2))
    values = percents(feed(engine, [counter], "stderr"))
    assert values[0] == 0.0
    assert values[-1] == 100.0
    # 501 counter updates become at most one event per half percent
    assert 100 < len(values) <= 201
    assert all(b - a >= 0.5 for a, b in itertools.pairwise(values[:-1]))


def test_povray_output_file_wrapped_at_80_columns(
    make_task: Callable[..., EngineTask], tmp_path: Any
) -> None:
    engine = prepared(make_task, "povray", input="/s/o.pov", output=f"{tmp_path}/o.png")
    lines = [
        "  Output file........../tmp/eng/a_rather_long_directory_name_for_wrapping/",
        "and_another_level/orbit1.png, 24 bpp PNG",
        "Render Statistics",
    ]
    events = feed(engine, lines, "stderr")
    assert events[0] == E.output(
        "/tmp/eng/a_rather_long_directory_name_for_wrapping/and_another_level/orbit1.png"
    )
