"""What a task sees and what is reported of it, through a real agent and controller: its `$PWD`
is its own working directory, and its peak memory is its own, never the worker's."""

from __future__ import annotations

import resource
from pathlib import Path

from tests.worker.test_agent_faults import facts, run_agent
from thresher.client import Client
from thresher.controller.settings import ControllerSettings
from thresher.testing import serve_in_thread
from thresher.worker.agent import Agent, AgentConfig


def test_pwd_is_the_tasks_directory_and_peak_memory_the_tasks_own(tmp_path: Path) -> None:
    settings = ControllerSettings(data_dir=tmp_path / "data")
    cwd = tmp_path / "shot"
    cwd.mkdir()
    with (
        serve_in_thread(settings) as served,
        Client(served.url, served.admin_token) as client,
    ):
        in_work_dir = client.submit("pwd", ["sh", "-c", 'echo "$PWD"'], frames="1")
        in_cwd = client.submit("pwd", ["sh", "-c", 'echo "$PWD"'], frames="1", cwd=str(cwd))
        small = client.submit("small", ["true"], frames="1")
        jobs = (in_work_dir.id, in_cwd.id, small.id)
        config = AgentConfig(
            controller_url=served.url,
            token=served.admin_token,
            facts=facts(1),
            work_dir=tmp_path / "work",
        )
        run_agent(
            Agent(config),
            lambda: all(client.job(job).status == "succeeded" for job in jobs),
            timeout=60,
        )
        printed = [client.log(job, 0)[0].text for job in jobs[:2]]
        (attempt,) = client.attempts(small.id)
    # The agent ran in this process: what Linux charges a child with at its exec.
    worker_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    assert printed == [str(tmp_path / "work" / "jobs" / str(in_work_dir.id)), str(cwd)]
    assert attempt.peak_rss_bytes is None or attempt.peak_rss_bytes < worker_peak // 4
