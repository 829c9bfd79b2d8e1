"""A job's output read the same way by every engine: folder, file or frame pattern."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from thresher.engines import EngineSetupError, EngineTask, load_engine_source
from thresher.engines.output import OutputKind, in_folder, input_stem, output_kind

FOLDER, FILE, PATTERN = OutputKind.FOLDER, OutputKind.FILE, OutputKind.PATTERN


@pytest.mark.parametrize(
    ("path", "kind"),
    [
        # no extension and no frame pattern: a folder
        ("/x/out", FOLDER),
        ("/proj/render/shot10", FOLDER),
        ("/r/f_", FOLDER),
        ("out", FOLDER),
        ("/x/.cache", FOLDER),  # a dot file's name is no extension
        ("/x/out.", FOLDER),
        ("P:\\proj\\render", FOLDER),
        ("\\\\server\\share\\render", FOLDER),
        # a trailing separator: a folder, whatever the name
        ("/x/out/", FOLDER),
        ("/x/renders.v2/", FOLDER),
        ("P:\\proj\\render.v2\\", FOLDER),
        # an extension: a file
        ("/x/movie.mp4", FILE),
        ("/x/renders.v2", FILE),
        ("/x/shot.0001.exr", FILE),
        ("P:\\proj\\movie.mov", FILE),
        ("relative/scene.png", FILE),
        # a frame pattern, with an extension or without: a pattern
        ("/r/shot_####", PATTERN),
        ("/r/shot_####.png", PATTERN),
        ("/r/shot.%04d.exr", PATTERN),
        ("/r/shot.%d", PATTERN),
        ("/r/shot.$F4.exr", PATTERN),
        ("/r/shot.$F", PATTERN),
        ("/r/shot.${F4}.exr", PATTERN),
        ("/r/shot_{frame}", PATTERN),
        ("/r/shot_{frame:04d}.png", PATTERN),
        ("P:\\r\\shot_####", PATTERN),
    ],
)
def test_output_kind(path: str, kind: OutputKind) -> None:
    assert output_kind(path) is kind


@pytest.mark.parametrize("path", ["/x/movie.mp4", "/r/shot_####", "/x/out"])
def test_an_existing_directory_is_a_folder_whatever_its_name(path: str) -> None:
    assert output_kind(path, is_directory=True) is FOLDER


@pytest.mark.parametrize(
    ("path", "stem"),
    [
        ("/p/shot.blend", "shot"),
        ("/p/shot10.v2.blend", "shot10.v2"),
        ("/a/shot.####.ass", "shot"),
        ("/ifd/shot_$F4.ifd", "shot"),
        ("/ifd/shot.${F4}.ifd", "shot"),
        ("/r/frame_%04d.png", "frame"),
        ("/r/frame-####.png", "frame"),
        ("P:\\proj\\shot.hip", "shot"),
        ("/r/####.png", "output"),
        ("", "output"),
        (None, "output"),
    ],
)
def test_input_stem(path: str | None, stem: str) -> None:
    assert input_stem(path) == stem


def test_in_folder_keeps_the_folder_separator() -> None:
    assert in_folder("/x/out", "a_####") == "/x/out/a_####"
    assert in_folder("/x/out/", "a_####") == "/x/out/a_####"
    assert in_folder("P:\\r\\out", "a.exr") == "P:\\r\\out\\a.exr"


# -------------------------------------------------------------------- prepare() applies it

PUBLISHED = """
from thresher.engines import Engine as Base


class Engine(Base):
    def get_executable(self):
        return "myrender"

    def get_commandline(self, task):
        return [self.executable(task), "--out", task.output or "-", task.input]
"""


def _published(extra: str = "") -> Callable[[EngineTask], tuple[str, ...]]:
    engine_class = load_engine_source("myrender", PUBLISHED + extra)
    return lambda task: engine_class().prepare(task, base_env={}).argv


def test_a_published_engine_writes_inside_a_folder_output(
    make_task: Callable[..., EngineTask], tmp_path: Path
) -> None:
    # GIVEN a published engine that only passes task.output through, and a folder output
    run = _published()
    out = tmp_path / "render" / "shot10"
    # WHEN it prepares a task
    argv = run(make_task(input="/p/shot10.scene", output=str(out)))
    # THEN it was handed the input's stem and a frame pattern inside the folder, now created
    assert argv == ("myrender", "--out", f"{out}/shot10_####", "/p/shot10.scene")
    assert out.is_dir()


def test_a_published_engine_names_its_own_file_in_a_folder(
    make_task: Callable[..., EngineTask], tmp_path: Path
) -> None:
    run = _published('    OUTPUT_NAME = "{stem}.####.tif"\n')
    argv = run(make_task(input="/p/a.scene", output=str(tmp_path)))
    assert argv[2] == f"{tmp_path}/a.####.tif"


@pytest.mark.parametrize("name", ["movie.mp4", "shot_####", "shot_####.png", "f.%04d.exr"])
def test_files_and_patterns_are_left_as_they_are(
    make_task: Callable[..., EngineTask], tmp_path: Path, name: str
) -> None:
    argv = _published()(make_task(input="/p/a.scene", output=str(tmp_path / "r" / name)))
    assert argv[2] == str(tmp_path / "r" / name)
    assert not (tmp_path / "r").exists()  # creating a file's folder is the engine's business


def test_an_existing_directory_with_a_dot_is_a_folder(
    make_task: Callable[..., EngineTask], tmp_path: Path
) -> None:
    out = tmp_path / "renders.v2"
    out.mkdir()
    argv = _published()(make_task(input="/p/a.scene", output=str(out)))
    assert argv[2] == f"{out}/a_####"


def test_a_relative_folder_is_made_in_the_work_directory(
    make_task: Callable[..., EngineTask],
) -> None:
    task = make_task(input="/p/a.scene", output="frames")
    argv = _published()(task)
    assert argv[2] == "frames/a_####"
    assert (Path(task.workdir) / "frames").is_dir()


def test_a_mapped_folder_output_is_made_on_this_machine(
    make_task: Callable[..., EngineTask], tmp_path: Path
) -> None:
    # GIVEN a Windows submitter's folder output and a rule mapping its share here
    rules = [{"remote": "P:\\proj", "local": str(tmp_path / "proj")}]
    task = make_task(
        input="P:\\proj\\shot.scene",
        output="P:\\proj\\render\\shot",
        parameters={"mapped_share_paths": rules},
    )
    # WHEN prepared THEN the mapped folder exists and holds the output
    argv = _published()(task)
    assert argv[2] == f"{tmp_path}/proj/render/shot/shot_####"
    assert (tmp_path / "proj" / "render" / "shot").is_dir()


def test_an_unmapped_windows_folder_is_not_made_here(
    make_task: Callable[..., EngineTask],
) -> None:
    task = make_task(input="/p/a.scene", output="P:\\proj\\render")
    argv = _published()(task)
    assert argv[2] == "P:\\proj\\render\\a_####"
    assert list(Path(task.workdir).iterdir()) == []


def test_an_uncreatable_folder_fails_before_running(
    make_task: Callable[..., EngineTask],
) -> None:
    task = make_task(input="/p/a.scene", output="/proc/thresher-no-such-dir/out")
    with pytest.raises(EngineSetupError, match="cannot create output folder"):
        _published()(task)
