"""The worker's side of engines: finding a revision's class by hash, and reading a run's output
lines as events. The controller is played by a fetcher that hands out sources."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from thresher.engines import EngineTask, builtin_engines, load_builtin, source_hash
from thresher.schemas import engines
from thresher.worker.engines import EngineRun, EngineTaskError, WorkerEngines

ECHO = """
from thresher.engines import Engine as Base


class Engine(Base):
    def get_executable(self):
        return "echo"

    def get_commandline(self, task):
        return [self.executable(task), "hi"]
"""


class Fetcher:
    """Hands out sources by (name, revision), counting the fetches."""

    def __init__(self, sources: dict[tuple[str, int], str]) -> None:
        self.sources = sources
        self.fetched: list[tuple[str, int]] = []

    async def engine_source(self, name: str, revision: int) -> engines.EngineSourceOut:
        self.fetched.append((name, revision))
        text = self.sources[(name, revision)]
        return engines.EngineSourceOut(
            name=name, revision=revision, source_hash=source_hash(text), source=text
        )


def test_a_built_in_hash_loads_the_workers_own_module_without_fetching(tmp_path: Path) -> None:
    fetcher = Fetcher({})
    digest = source_hash(builtin_engines()["blender"])
    found = asyncio.run(WorkerEngines(fetcher, tmp_path).engine_class("blender", 0, digest))
    assert found is load_builtin("blender")
    assert fetcher.fetched == []


def test_a_published_revision_is_fetched_once_and_cached_by_hash(tmp_path: Path) -> None:
    fetcher = Fetcher({("echo", 3): ECHO})
    digest = source_hash(ECHO)

    async def twice(worker_engines: WorkerEngines) -> None:
        first = await worker_engines.engine_class("echo", 3, digest)
        again = await worker_engines.engine_class("echo", 3, digest)
        assert first is again

    asyncio.run(twice(WorkerEngines(fetcher, tmp_path)))
    assert fetcher.fetched == [("echo", 3)]
    assert (tmp_path / f"{digest}.py").read_text() == ECHO
    # a restarted worker finds it on disk
    restarted = Fetcher({})
    asyncio.run(WorkerEngines(restarted, tmp_path).engine_class("echo", 3, digest))
    assert restarted.fetched == []


def test_a_source_that_does_not_match_the_hash_is_refused(tmp_path: Path) -> None:
    fetcher = Fetcher({("echo", 1): ECHO + "# changed\n"})
    with pytest.raises(EngineTaskError, match="not the source this task was given"):
        asyncio.run(WorkerEngines(fetcher, tmp_path).engine_class("echo", 1, source_hash(ECHO)))
    assert list(tmp_path.iterdir()) == []


def test_an_assignment_without_a_revision_is_refused(tmp_path: Path) -> None:
    with pytest.raises(EngineTaskError, match="no current revision"):
        asyncio.run(WorkerEngines(Fetcher({}), tmp_path).engine_class("gone", None, None))


class Sink:
    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []
        self.progress_seen: list[float] = []
        self.outputs: list[str] = []

    def line(self, stream: str, text: str) -> None:
        self.lines.append((stream, text))

    def progress(self, percent: float) -> None:
        self.progress_seen.append(percent)

    def output(self, path: str) -> None:
        self.outputs.append(path)


def _blender_run(tmp_path: Path, sink: Sink) -> EngineRun:
    engine = load_builtin("blender")()
    task = EngineTask(
        job_id="1",
        index=0,
        frames=(1, 2),
        workdir=str(tmp_path),
        input="/s.blend",
        output="/r/f_####",
        os_name="linux",
    )
    return EngineRun(name="blender", engine=engine, prepared=engine.prepare(task), sink=sink)


def test_output_lines_become_progress_outputs_and_log_lines(tmp_path: Path) -> None:
    sink = Sink()
    run = _blender_run(tmp_path, sink)
    for line in [
        "Fra:1 Mem:10M | Time:00:00.10 | Scene, ViewLayer | Sample 2/4",
        "Saved: '/r/f_0001.png'",
        "Fra:2 Mem:10M | Time:00:00.20 | Scene, ViewLayer | Sample 4/4",
        "Warning: a texture is missing",
    ]:
        run.on_line("stdout", line)
    assert sink.progress_seen == [25.0, 50.0, 100.0]
    assert sink.outputs == ["/r/f_0001.png"]
    assert ("system", "[engine] frame 2") in sink.lines
    assert ("system", "[engine] wrote /r/f_0001.png") in sink.lines
    assert ("system", "[engine] warning: a texture is missing") in sink.lines
    assert run.outcome("succeeded", None) == ("succeeded", None)


def test_a_failed_run_names_the_applications_last_error(tmp_path: Path) -> None:
    sink = Sink()
    run = _blender_run(tmp_path, sink)
    run.on_line("stdout", "Error: Cannot read file '/s.blend': No such file or directory")
    assert run.outcome("failed", "exit code 1") == (
        "failed",
        "exit code 1: Cannot read file '/s.blend': No such file or directory",
    )


def test_a_parser_that_raises_fails_the_run_and_stops_the_process(tmp_path: Path) -> None:
    sink = Sink()
    run = _blender_run(tmp_path, sink)
    stopped: list[bool] = []
    run.cancel = lambda: stopped.append(True)

    def explode(line: str, stream: str) -> list[object]:
        raise KeyError(line)

    run.engine.parse_line = explode  # type: ignore[method-assign,assignment]
    run.on_line("stdout", "Fra:1 something")
    run.on_line("stdout", "Fra:1 more")  # after a failure the parser is not called again
    assert stopped == [True]
    assert run.failure == "engine 'blender' raised in parse_output: KeyError: 'Fra:1 something'"
    assert sink.lines[0] == ("system", "Traceback (most recent call last):")
    # the process ended as cancelled by us; the task fails with the engine's error
    assert run.outcome("canceled", "canceled") == ("failed", run.failure)
