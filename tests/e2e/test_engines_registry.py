"""End to end: published engines reach real workers by revision, and engine code that raises
fails only its own task.

The engines here are small scripts over the built-in command engine, so these tests need no
renderer.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from tests.e2e.conftest import Farm
from thresher.testing import wait_until

pytestmark = pytest.mark.e2e

# A command engine that tells its revision to the process through the environment.
REVISION_ENGINE = """
from thresher.engines.builtin.command import Engine as CommandEngine


class Engine(CommandEngine):
    def get_envs(self):
        return {"ENGINE_REVISION_SAYS": "%s"}
"""

# Frame 1: prepare raises. Frame 2: the parser raises on a line. Frame 3: runs fine.
BROKEN_ENGINE = """
from thresher.engines.builtin.command import Engine as CommandEngine


class Engine(CommandEngine):
    def get_commandline(self, task):
        if task.first_frame == 1:
            raise RuntimeError("boom in get_commandline")
        return super().get_commandline(task)

    def parse_line(self, line, stream):
        if "explode" in line:
            raise ValueError("the parser met " + line)
        return super().parse_line(line, stream)
"""


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _log(farm: Farm, job_id: int, index: int = 0) -> str:
    with farm.client() as client:
        return "\n".join(line.text for line in client.log(job_id, index))


def test_new_tasks_use_revision_2_while_a_running_task_finishes_on_revision_1(
    farm: Farm, tmp_path: Path
) -> None:
    farm.controller()
    farm.worker("w1", lanes=2)
    gate = tmp_path / "gate"
    gate.mkdir()
    script = (
        "echo revision=$ENGINE_REVISION_SAYS; touch {gate}/started-{frame}; "
        "while [ ! -e {gate}/go ]; do sleep 0.05; done"
    ).replace("{gate}", str(gate))
    first = REVISION_ENGINE % "one"
    second = REVISION_ENGINE % "two"
    with farm.client() as client:
        assert client.publish_engine("gated", first).revision == 1
        # GIVEN a task of revision 1 running
        old = client.submit_engine(
            "gated", range="1", parameters={"command": ["sh", "-c", script]}, retries=0
        )
        wait_until(
            lambda: (gate / "started-1").exists(), timeout=30, what="the revision 1 task started"
        )
        # WHEN revision 2 is published and a new job submitted
        published = client.publish_engine("gated", second)
        assert (published.revision, published.latest_revision) == (2, 2)
        new = client.submit_engine(
            "gated", range="2", parameters={"command": ["sh", "-c", script]}, retries=0
        )
        wait_until(
            lambda: (gate / "started-2").exists(), timeout=30, what="the revision 2 task started"
        )
        (gate / "go").touch()
        wait_until(
            lambda: all(client.job(j.id).status == "succeeded" for j in (old, new)),
            timeout=30,
            what="both jobs done",
        )
        old_attempts, new_attempts = client.attempts(old.id), client.attempts(new.id)
    # THEN the running task finished on revision 1 and the new one ran revision 2
    assert [a.engine_revision for a in old_attempts] == [1]
    assert [a.engine_revision for a in new_attempts] == [2]
    assert "revision=one" in _log(farm, old.id)
    assert "revision=two" in _log(farm, new.id)
    # AND the worker fetched each revision once and keeps it under its hash
    cache = farm.tmp / "work-w1" / "engines"
    assert {p.name for p in cache.iterdir()} == {f"{_sha(first)}.py", f"{_sha(second)}.py"}


def test_engine_code_that_raises_fails_its_task_and_the_worker_goes_on(sqlite_farm: Farm) -> None:
    farm = sqlite_farm
    farm.controller()
    farm.worker("w1")
    with farm.client() as client:
        client.publish_engine("broken", BROKEN_ENGINE)
        command = ["sh", "-c", "echo frame {frame}; if [ {frame} = 2 ]; then echo explode; fi"]
        job = client.submit_engine(
            "broken", range="1-3", bucketsize=1, parameters={"command": command}, retries=0
        )
        wait_until(
            lambda: client.job(job.id).counts.waiting + client.job(job.id).counts.running == 0,
            timeout=60,
            what="every task ended",
        )
        tasks = {t.index: t.status for t in client.tasks(job.id).tasks}
        attempts = {a.index: a for a in client.attempts(job.id)}
        workers = client.workers()
    assert tasks == {0: "failed", 1: "failed", 2: "succeeded"}
    # prepare raised: the traceback is in the log, the message names the error
    assert "RuntimeError: boom in get_commandline" in (attempts[0].message or "")
    prepare_log = _log(farm, job.id, 0)
    assert "Traceback (most recent call last)" in prepare_log
    assert "boom in get_commandline" in prepare_log
    # parse_output raised: same, and the process was stopped
    assert "ValueError: the parser met explode" in (attempts[1].message or "")
    assert "Traceback (most recent call last)" in _log(farm, job.id, 1)
    # the worker is still there and ran the healthy task
    assert attempts[2].status == "succeeded"
    assert [w.status for w in workers] == ["online"]
