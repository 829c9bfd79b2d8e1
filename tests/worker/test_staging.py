"""An attempt's outputs appear in its output folder whole or not at all: it renders into its
staging folder (``.thresher-attempt-<id>`` in the output's folder), whose files the worker moves
into place once it succeeded; a failed one leaves nothing. The staging folder's place for each
kind of output, the move, the engine base pointing a command at it (or not, when the command
does not name its output), what a killed worker left, and a real worker running a real
command engine job on two lanes."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from thresher.client import Client
from thresher.controller.settings import ControllerSettings
from thresher.engines import EngineTask, Staging, load_builtin
from thresher.engines.output import staging_for
from thresher.schemas import api
from thresher.testing import serve_in_thread
from thresher.worker.agent import Agent, AgentConfig
from thresher.worker.staging import STALE_S, StagingLedger, commit, settle, sweep_stale

NAME = ".thresher-attempt-7"


@pytest.mark.parametrize(
    ("output", "folder", "staged_output"),
    [
        pytest.param(
            "/p/out/frame_####.png", "/p/out", f"/p/out/{NAME}/frame_####.png", id="pattern"
        ),
        pytest.param("/p/out/movie.mp4", "/p/out", f"/p/out/{NAME}/movie.mp4", id="file"),
        pytest.param("/p/out/", "/p/out", f"/p/out/{NAME}/", id="folder"),
        pytest.param("out/a.png", "/w/out", f"/w/out/{NAME}/a.png", id="relative"),
        pytest.param(
            "/p/out/####/beauty.exr", "/p/out", f"/p/out/{NAME}/####/beauty.exr", id="frame-dirs"
        ),
    ],
)
def test_the_staging_folder_lies_in_the_outputs_folder(
    output: str, folder: str, staged_output: str
) -> None:
    found = staging_for(output, workdir="/w", name=NAME)
    assert found == (Staging(folder=folder, staged=f"{folder}/{NAME}"), staged_output)
    assert found[0].final(f"{folder}/{NAME}/x/f1.png") == f"{folder}/x/f1.png"
    assert found[0].final("/elsewhere/f1.png") == "/elsewhere/f1.png"


def test_a_windows_or_blender_relative_output_is_not_staged() -> None:
    assert staging_for("P:\\out\\a.png", workdir="/w", name=NAME) is None
    assert staging_for("//render/f_####", workdir="/w", name=NAME) is None


def test_commit_moves_exactly_the_attempts_files_into_place(tmp_path: Path) -> None:
    out = tmp_path / "out"
    staging = Staging(folder=str(out), staged=str(out / NAME))
    (out / NAME / "sub").mkdir(parents=True)
    (out / NAME / "f1.png").write_bytes(b"one")
    (out / NAME / "sub" / "f1.exr").write_bytes(b"deep")
    (out / "f1.png").write_bytes(b"an older render")  # replaced
    (out / "other.png").write_bytes(b"another lane's")  # left alone, never answered
    moved = commit(staging)
    assert moved == [out / "f1.png", out / "sub" / "f1.exr"]
    assert (out / "f1.png").read_bytes() == b"one"
    assert sorted(p.name for p in out.iterdir()) == ["f1.png", "other.png", "sub"]


def test_a_move_that_fails_leaves_no_staging_folder_and_says_so(tmp_path: Path) -> None:
    out = tmp_path / "out"
    staging = Staging(folder=str(out), staged=str(out / NAME))
    (out / NAME).mkdir(parents=True)
    (out / NAME / "f1.png").write_bytes(b"one")
    (out / "f1.png").mkdir()  # a folder where the file goes: the rename fails
    ledger = StagingLedger(tmp_path / "work")
    ledger.note(7, staging)
    with pytest.raises(IsADirectoryError):
        settle(staging, succeeded=True, ledger=ledger, attempt_id=7)
    assert sorted(p.name for p in out.iterdir()) == ["f1.png"]
    assert list(ledger.root.iterdir()) == []


def _command_task(tmp_path: Path, command: list[str], output: str) -> EngineTask:
    return EngineTask(
        job_id="1",
        index=0,
        frames=(1,),
        workdir=str(tmp_path / "work"),
        output=output,
        parameters={"command": command},
        staging=NAME,
    )


def test_a_command_naming_its_output_writes_into_the_staging_folder(tmp_path: Path) -> None:
    engine = load_builtin("command")()
    out = tmp_path / "out"
    prepared = engine.prepare(_command_task(tmp_path, ["touch", "{output}/a.png"], f"{out}/"))
    assert prepared.staging == Staging(folder=str(out), staged=str(out / NAME))
    assert prepared.argv == ("touch", f"{out}/{NAME}//a.png")
    assert (out / NAME).is_dir()


def test_a_command_that_does_not_name_its_output_is_not_staged(tmp_path: Path) -> None:
    engine = load_builtin("command")()
    out = tmp_path / "out"
    prepared = engine.prepare(_command_task(tmp_path, ["touch", f"{out}/a.png"], f"{out}/"))
    assert prepared.staging is None
    assert prepared.task.output == f"{out}/"
    assert list(out.iterdir()) == []  # the folder output made, no staging folder left


def test_an_output_folder_that_cannot_be_made_is_left_to_the_application(tmp_path: Path) -> None:
    engine = load_builtin("povray")()
    task = EngineTask(
        job_id="1",
        index=0,
        frames=(1,),
        workdir=str(tmp_path),
        input=str(tmp_path / "a.pov"),
        output="/proc/thresher-no-such-dir/a.png",
        staging=NAME,
    )
    with pytest.raises(Exception, match="cannot create output folder"):
        engine.prepare(task)  # POV-Ray's own check, as without staging


def test_a_killed_workers_staging_folders_are_removed_by_the_next(tmp_path: Path) -> None:
    out = tmp_path / "out"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    ledgers = {}
    for pid, attempt in ((dead.pid, 1), (os.getpid(), 2)):
        staging = Staging(folder=str(out), staged=str(out / f".thresher-attempt-{attempt}"))
        Path(staging.staged).mkdir(parents=True)
        (Path(staging.staged) / "half.png").write_bytes(b"half")
        ledgers[attempt] = StagingLedger(tmp_path / "work", pid=pid)
        ledgers[attempt].note(attempt, staging)
    # the next worker of the work directory: the dead one's folder goes, a running one's stays
    assert StagingLedger(tmp_path / "work").sweep() == 1
    assert sorted(p.name for p in out.iterdir()) == [".thresher-attempt-2"]
    assert [p.name for p in (tmp_path / "work" / "staging").iterdir()] == [f"{os.getpid()}-2"]


def test_a_staging_folder_nothing_changed_in_for_days_is_removed(tmp_path: Path) -> None:
    out = tmp_path / "out"
    (out / ".thresher-attempt-1").mkdir(parents=True)
    (out / ".thresher-attempt-1" / "f.png").write_bytes(b"x")
    (out / ".thresher-other").mkdir()  # not a staging folder
    assert sweep_stale(out, now=time.time()) == 0
    assert sweep_stale(out, now=time.time() + STALE_S + 60) == 1
    assert sorted(p.name for p in out.iterdir()) == [".thresher-other"]


# ------------------------------------------------------------------- a real worker, two lanes

# Frame 1 succeeds, frame 2 fails. Each writes a transient file beside its frame (as POV-Ray
# does its .pov-state) and half its frame, lists the output folder meanwhile, then ends.
SCRIPT = """
set -e
dir="$1"; frame="$2"; out="$3"
echo transient > "$dir/frame$frame.pov-state"
echo half > "$dir/frame$frame.png"
ls -A "$out" > "$out/../seen-$frame.txt"
[ "$frame" = 1 ] || exit 3
echo whole > "$dir/frame$frame.png"
rm "$dir/frame$frame.pov-state"
"""


def _run(agent: Agent, until: Callable[[], bool], *, timeout: float) -> None:
    async def run() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(agent.run(stop))
        started = time.monotonic()
        try:
            while not await asyncio.to_thread(until):
                await asyncio.wait([task], timeout=0.05)
                assert not task.done(), "the agent stopped"
                assert time.monotonic() - started < timeout, "timed out"
        finally:
            stop.set()
            await task

    asyncio.run(run())


def test_a_failed_attempt_leaves_nothing_and_a_transient_file_is_never_seen(
    tmp_path: Path,
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    with (
        serve_in_thread(ControllerSettings(data_dir=tmp_path / "data")) as served,
        Client(served.url, served.admin_token) as client,
    ):
        job = client.submit_engine(
            "command",
            range="1-2",
            output=f"{out}/",
            parameters={"command": ["sh", "-c", SCRIPT, "sh", "{output}", "{frame}", str(out)]},
            retries=0,
        )
        facts = api.RegisterIn(
            name="w1", hostname="w1", os="linux", cores=2, ram_bytes=1 << 30, lanes=2
        )
        agent = Agent(
            AgentConfig(
                controller_url=served.url,
                token=served.admin_token,
                facts=facts,
                work_dir=tmp_path / "work",
            )
        )
        _run(agent, lambda: client.job(job.id).status in ("succeeded", "failed"), timeout=60)
        statuses = sorted((a.index, a.status) for a in client.attempts(job.id))
    assert statuses == [(0, "succeeded"), (1, "failed")]
    # only the succeeded attempt's frame, whole; no staging folder left
    assert sorted(p.name for p in out.iterdir()) == ["frame1.png"]
    assert (out / "frame1.png").read_text() == "whole\n"
    for frame in (1, 2):  # what the output folder held while each render ran
        seen = (tmp_path / f"seen-{frame}.txt").read_text().split()
        assert not [n for n in seen if n.endswith(".pov-state") or n == f"frame{frame}.png"]
        assert "frame2.png" not in seen
    assert list((tmp_path / "work" / "staging").iterdir()) == []
