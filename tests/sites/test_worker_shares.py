"""Share paths on a real worker: resolved to its site's root before the task runs; a symbolic
link that leads out of the root fails the task (checked where the files are, at run time)."""

from __future__ import annotations

from pathlib import Path

from tests.worker.test_agent_faults import run_agent
from thresher.client import Client
from thresher.controller.settings import ControllerSettings
from thresher.schemas import api
from thresher.testing import serve_in_thread
from thresher.worker.agent import Agent, AgentConfig


def test_share_paths_resolve_to_the_sites_root_and_links_out_of_it_fail(tmp_path: Path) -> None:
    root = tmp_path / "sthlm-proj"
    root.mkdir()
    (root / "in.txt").write_text("scene\n")
    outside = tmp_path / "secret.txt"
    outside.write_text("secret\n")
    (root / "link.txt").symlink_to(outside)
    copy = ["sh", "-c", 'cat "$1" > "$2"', "sh"]
    with (
        serve_in_thread(ControllerSettings(data_dir=tmp_path / "data")) as served,
        Client(served.url, served.admin_token) as client,
    ):
        client.set_volume("proj", {"hq": {"linux": "/nowhere"}, "sthlm": {"linux": str(root)}})
        good = client.submit("copy", [*copy, "share=proj/in.txt", "share=proj/o.txt"])
        bad = client.submit(
            "leak", [*copy, "share=proj/link.txt", "share=proj/leak.txt"], retries=0
        )
        facts = api.RegisterIn(
            name="w1", hostname="w1", os="linux", cores=2, ram_bytes=1 << 30, site="sthlm", lanes=1
        )
        config = AgentConfig(
            controller_url=served.url,
            token=served.admin_token,
            facts=facts,
            work_dir=tmp_path / "w",
        )
        ended = ("succeeded", "failed")
        run_agent(
            Agent(config),
            lambda: all(client.job(j).status in ended for j in (good.id, bad.id)),
            timeout=60,
        )
        statuses = (client.job(good.id).status, client.job(bad.id).status)
        attempts = client.attempts(bad.id)
    assert statuses == ("succeeded", "failed")
    assert (root / "o.txt").read_text() == "scene\n"
    assert not (root / "leak.txt").exists()
    assert attempts
    assert all("leaves its volume root" in (a.message or "") for a in attempts)
