"""The common base: parameters, path mapping, input conversion and environment in prepare()."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import pytest

from thresher.engines import (
    Engine,
    EngineConfigError,
    EngineEvent,
    EngineTask,
    EventKind,
    load_builtin,
    split_arguments,
)


class Echo(Engine):
    """A minimal engine: prints its input file."""

    SETTINGS: ClassVar[dict[str, Any]] = {
        "filename_extensions": [".txt", ".bin"],
        "binary_filename_extensions": [".bin"],
    }
    PARAMETERS: ClassVar[dict[str, Any]] = {"greeting": "hello"}

    def get_executable(self) -> str:
        return "cat"

    def get_envs(self) -> dict[str, str]:
        return {"ECHO_HOME": "/srv/share/echo"}

    def get_commandline(self, task: EngineTask) -> list[str]:
        return [self.executable(task), *self.arguments(task), task.input or "-"]


def test_settings_and_parameters_merge_along_the_hierarchy() -> None:
    settings = Echo.settings()
    assert settings["binary_filename_extensions"] == [".bin"]
    assert settings["items"] == "frames"  # from the base
    assert Echo.default_parameters()["greeting"] == "hello"
    assert Echo.default_parameters()["input_conversion"] == "never"


def test_merge_parameters_puts_the_job_over_the_defaults() -> None:
    merged = Echo.merge_parameters({"greeting": "hi", "remote_os": "darwin"})
    assert merged["greeting"] == "hi"
    assert merged["remote_os"] == "mac"
    assert merged["mapped_share_paths"] == []


@pytest.mark.parametrize(
    ("parameters", "name"),
    [
        ({"input_conversion": "sometimes"}, "input_conversion"),
        ({"remote_os": "amiga"}, "remote_os"),
        ({"arguments": "unbalanced 'quote"}, "arguments"),
        ({"arguments": {"a": 1}}, "arguments"),
        ({"mapped_share_paths": [{"remote": "/a"}]}, "mapped_share_paths"),
        ({"envs": ["A=1"]}, "envs"),
    ],
)
def test_bad_parameters_are_refused_with_their_name(parameters: dict[str, Any], name: str) -> None:
    with pytest.raises(EngineConfigError) as caught:
        Echo.merge_parameters(parameters)
    assert caught.value.parameter == name


def test_prepare_builds_argv_env_and_cwd(make_task: Callable[..., EngineTask]) -> None:
    task = make_task(input="/tmp/in.txt", parameters={"arguments": "-n"})
    prepared = Echo().prepare(task, base_env={"PATH": "/usr/bin"})
    assert prepared.argv == ("cat", "-n", "/tmp/in.txt")
    assert prepared.env == {"PATH": "/usr/bin", "ECHO_HOME": "/srv/share/echo"}
    assert prepared.cwd == task.workdir
    assert prepared.converted_input is None
    assert prepared.task.parameters["greeting"] == "hello"


def test_arguments_keep_windows_backslashes_and_quotes_group() -> None:
    assert split_arguments('a "b c" P:\\x\\y') == ["a", "b c", "P:\\x\\y"]
    assert split_arguments(["-t", 4]) == ["-t", "4"]


@pytest.mark.parametrize(
    ("os_name", "expected"),
    [("linux", "/opt/echo/bin/cat"), ("windows", "C:\\echo\\cat.exe"), ("mac", "cat")],
)
def test_executable_parameter_per_os(
    make_task: Callable[..., EngineTask], os_name: str, expected: str
) -> None:
    executable = {"linux": "/opt/echo/bin/cat", "windows": "C:\\echo\\cat.exe"}
    task = make_task(os_name=os_name, input="/x.txt", parameters={"executable": executable})
    assert Echo().prepare(task, base_env={}).argv[0] == expected


PER_OS_ENVS = {
    "common": {"SCENES": "/srv/share/scenes"},
    "linux": {"PATH": "/opt/echo:${PATH}"},
    "windows": {"ECHO_LICENSE": "5053@lic"},
}


@pytest.mark.parametrize(
    ("os_name", "expected"),
    [
        (
            "linux",
            {
                "PATH": "/opt/echo:/usr/bin",
                "SCENES": "/net/share/scenes",
                "ECHO_HOME": "/net/share/echo",
            },
        ),
        (
            "windows",
            {
                "PATH": "/usr/bin",
                "SCENES": "S:\\scenes",
                "ECHO_HOME": "S:\\echo",
                "ECHO_LICENSE": "5053@lic",
            },
        ),
    ],
)
def test_env_per_os_with_mapped_values(
    make_task: Callable[..., EngineTask], os_name: str, expected: dict[str, str]
) -> None:
    # GIVEN per-OS envs and mapping rules for Linux and Windows workers
    rules = [
        {"remote": "/srv/share", "local": "/net/share", "os": "linux"},
        {"remote": "/srv/share", "local": "S:\\", "os": "windows"},
    ]
    task = make_task(
        os_name=os_name,
        input="/x.txt",
        parameters={"envs": PER_OS_ENVS, "mapped_share_paths": rules},
    )
    # WHEN prepared on that OS THEN the OS section applies over common, values mapped
    assert Echo().prepare(task, base_env={"PATH": "/usr/bin"}).env == expected


def test_path_mapping_applies_to_input_output_arguments_and_argv(
    make_task: Callable[..., EngineTask],
) -> None:
    rules = [{"remote": "P:\\proj", "local": "/mnt/proj"}]
    task = make_task(
        input="P:\\proj\\scene.txt",
        inputs=("P:\\proj\\extra.txt",),
        output="P:\\proj\\out\\f_####.png",
        parameters={"mapped_share_paths": rules, "arguments": "--lib=P:\\proj\\lib -v"},
    )
    prepared = Echo().prepare(task, base_env={})
    assert prepared.argv == ("cat", "--lib=/mnt/proj/lib", "-v", "/mnt/proj/scene.txt")
    assert prepared.task.input == "/mnt/proj/scene.txt"
    assert prepared.task.inputs == ("/mnt/proj/extra.txt",)
    assert prepared.task.output == "/mnt/proj/out/f_####.png"


@pytest.fixture
def share(tmp_path: Path) -> Path:
    """A 'local' share holding an ASCII scene that refers to the 'remote' share path."""
    folder = tmp_path / "share"
    folder.mkdir()
    (folder / "scene.txt").write_bytes(b"texture P:\\proj\\tex\\wood.png\r\nother line\r\n")
    (folder / "scene.bin").write_bytes(b"P:\\proj\\tex\\wood.png")
    (folder / "nul.txt").write_bytes(b"P:\\proj\\x\x00\x01")
    return folder


def _conversion_task(
    make_task: Callable[..., EngineTask], share: Path, *, name: str, **parameters: Any
) -> EngineTask:
    rules = [{"remote": "P:\\proj", "local": str(share)}]
    return make_task(
        input=f"P:\\proj\\{name}",
        parameters={"mapped_share_paths": rules, **parameters},
    )


@pytest.mark.parametrize(
    ("mode", "remote_os", "converted"),
    [
        ("always", None, True),
        ("always", "linux", True),
        ("platform", "windows", True),
        ("platform", "linux", False),
        ("platform", None, False),
        ("never", "windows", False),
    ],
)
def test_input_conversion_modes(
    make_task: Callable[..., EngineTask],
    share: Path,
    mode: str,
    remote_os: str | None,
    converted: bool,
) -> None:
    task = _conversion_task(
        make_task, share, name="scene.txt", input_conversion=mode, remote_os=remote_os
    )
    prepared = Echo().prepare(task, base_env={})
    copy = Path(task.workdir) / "converted" / "scene.txt"
    if converted:
        assert prepared.converted_input == str(copy)
        assert prepared.argv[-1] == str(copy)
        # the mapped path is rewritten inside the copy, line endings kept
        assert copy.read_bytes() == f"texture {share}/tex/wood.png\r\nother line\r\n".encode()
    else:
        assert prepared.converted_input is None
        assert prepared.argv[-1] == str(share / "scene.txt")
        assert not copy.exists()
    # the original is never touched
    assert (share / "scene.txt").read_bytes().startswith(b"texture P:\\proj")


@pytest.mark.parametrize(
    ("name", "note"),
    [
        ("scene.bin", "binary file type"),
        ("nul.txt", "is not a text file"),
        ("missing.txt", "does not exist"),
    ],
)
def test_inputs_that_cannot_be_converted_are_used_as_they_are(
    make_task: Callable[..., EngineTask], share: Path, name: str, note: str
) -> None:
    task = _conversion_task(make_task, share, name=name, input_conversion="always")
    prepared = Echo().prepare(task, base_env={})
    assert prepared.converted_input is None
    assert prepared.argv[-1] == str(share / name)
    assert any(note in n for n in prepared.notes)
    assert (share / "scene.bin").read_bytes() == b"P:\\proj\\tex\\wood.png"


def test_sequence_inputs_convert_every_frame(
    make_task: Callable[..., EngineTask], tmp_path: Path
) -> None:
    # GIVEN an IFD sequence referring to the remote share
    ifds = tmp_path / "ifd"
    ifds.mkdir()
    for frame in (3, 4):
        (ifds / f"shot.{frame:04d}.ifd").write_text(f'ray_image "/srv/out/shot.{frame}.exr"\n')
    rules = [
        {"remote": "/srv/ifd", "local": str(ifds)},
        {"remote": "/srv/out", "local": "/net/out"},
    ]
    task = make_task(
        frames=(3, 4),
        input="/srv/ifd/shot.$F4.ifd",
        parameters={"mapped_share_paths": rules, "input_conversion": "always"},
    )
    # WHEN the mantra engine prepares the chunk
    prepared = load_builtin("mantra")().prepare(task, base_env={})
    # THEN every frame's IFD has a converted copy, and the pattern points at the copies
    converted = Path(task.workdir) / "converted"
    assert prepared.converted_input == str(converted / "shot.$F4.ifd")
    assert (converted / "shot.0004.ifd").read_text() == 'ray_image "/net/out/shot.4.exr"\n'
    assert str(converted / "shot.0003.ifd") in prepared.argv[-1]


def test_get_commandline_must_return_strings(make_task: Callable[..., EngineTask]) -> None:
    class Broken(Echo):
        def get_commandline(self, task: EngineTask) -> list[str]:
            return ["cat", 3]  # type: ignore[list-item]

    with pytest.raises(EngineConfigError, match="non-empty list of str"):
        Broken().prepare(make_task(), base_env={})


def test_parse_output_splits_carriage_returns_and_reads_sequence_markers(
    make_task: Callable[..., EngineTask],
) -> None:
    class Counter(Echo):
        def parse_line(self, line: str, stream: str) -> list[EngineEvent]:
            return [EngineEvent.status(f"{stream}:{line}")]

    engine = Counter()
    engine.prepare(make_task(frames=(5, 6)), base_env={})
    events = engine.parse_output("a\rb\r\n", "stderr")
    assert [e.value for e in events] == ["stderr:a", "stderr:b"]
    events = engine.parse_output("[thresher] step 2 of 2: frame 6\n")
    assert events == [EngineEvent.frame(6), EngineEvent.progress(50.0)]
    assert engine.chunk_progress(0.5).value == 75.0


def test_events_validate_their_values() -> None:
    assert EngineEvent.progress(140).value == 100.0
    assert EngineEvent.progress(-3).value == 0.0
    assert EngineEvent(EventKind.FRAME, 3).value == 3
    with pytest.raises(TypeError):
        EngineEvent(EventKind.FRAME, "3")
    with pytest.raises(TypeError):
        EngineEvent(EventKind.PROGRESS, True)


def test_task_normalizes_its_fields() -> None:
    # Lists, as decoded JSON has them: the task keeps tuples.
    decoded: Any = {"frames": [3, 4, 5], "inputs": ["a"]}
    task = EngineTask(
        "j",
        1,
        decoded["frames"],
        "/w",
        inputs=decoded["inputs"],
        os_name="darwin",
        job_range=(1, 9),
    )
    assert task.frames == (3, 4, 5)
    assert task.inputs == ("a",)
    assert task.os_name == "mac"
    assert (task.first_frame, task.last_frame, task.range_first, task.range_last) == (3, 5, 1, 9)
    empty = EngineTask("j", 2, (), "/w")
    with pytest.raises(ValueError, match="has no frames"):
        _ = empty.first_frame
