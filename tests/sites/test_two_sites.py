"""Two sites on one machine, end to end: a controller, a file service per site (each its own
folder as the volume's root, its own port) and a worker at each. A POV-Ray job whose scene and
include are on the main site renders partly at each site; the remote site's download sync runs
once, before its first task; every frame ends in the main site's output folder."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.engines.support import EXAMPLES, require
from thresher.client import APIError, Client
from thresher.controller.settings import ControllerSettings
from thresher.files import sendfile
from thresher.files.chunking import digest_file
from thresher.files.server import serve_in_thread as serve_files
from thresher.files.service import FileService
from thresher.files.store import ChunkStore
from thresher.schemas import api
from thresher.testing import ServedController, serve_in_thread
from thresher.worker.agent import Agent, AgentConfig

pytestmark = [pytest.mark.e2e, pytest.mark.renderers]

TOKENS = {"hq": "hq-files-token", "sthlm": "sthlm-files-token"}


@dataclass
class TwoSites:
    controller: ServedController
    roots: dict[str, Path]
    urls: dict[str, str]
    tmp: Path
    services: dict[str, FileService]

    def agent(self, site: str) -> Agent:
        facts = api.RegisterIn(
            name=f"{site}-1",
            hostname=f"{site}-1",
            os="linux",
            cores=2,
            ram_bytes=1 << 30,
            site=site,
            lanes=1,
        )
        config = AgentConfig(
            controller_url=self.controller.url,
            token=self.controller.admin_token,
            facts=facts,
            work_dir=self.tmp / f"work-{site}",
        )
        return Agent(config)


@pytest.fixture
def two_sites(tmp_path: Path) -> Iterator[TwoSites]:
    with contextlib.ExitStack() as stack:
        controller = stack.enter_context(
            serve_in_thread(ControllerSettings(data_dir=tmp_path / "data"))
        )
        roots, urls, services = {}, {}, {}
        for site in ("hq", "sthlm"):
            roots[site] = tmp_path / f"{site}-proj"
            roots[site].mkdir()
            service = FileService(
                ChunkStore(tmp_path / f"{site}-store"),
                token=TOKENS[site],
                site=site,
                roots={"proj": roots[site]},
            )
            urls[site] = stack.enter_context(serve_files(service))
            services[site] = service
        with Client(controller.url, controller.admin_token) as admin:
            for site in ("hq", "sthlm"):
                admin.set_site(
                    site,
                    main=site == "hq",
                    file_service_url=urls[site],
                    file_service_token=TOKENS[site],
                    # a fast link: once hq's lane is busy, sthlm's sync pays off at once
                    bandwidth_bps=None if site == "hq" else 10**10,
                )
            admin.set_volume("proj", {s: {"linux": str(r)} for s, r in roots.items()})
        yield TwoSites(controller, roots, urls, tmp_path, services)


def run_agents(agents: list[Agent], until: Callable[[], bool], *, timeout: float) -> None:
    async def run() -> None:
        stop = asyncio.Event()
        running = [asyncio.create_task(a.run(stop)) for a in agents]
        started = time.monotonic()
        try:
            while not await asyncio.to_thread(until):
                await asyncio.wait(running, timeout=0.05)
                assert not any(t.done() for t in running), "an agent stopped"
                assert time.monotonic() - started < timeout, "timed out"
        finally:
            stop.set()
            await asyncio.gather(*running)

    asyncio.run(run())


def test_a_povray_job_renders_at_both_sites_and_every_frame_comes_home(
    two_sites: TwoSites,
) -> None:
    require("povray")
    hq = two_sites.roots["hq"]
    (hq / "inc").mkdir()
    (hq / "inc" / "ball.inc").write_text("#declare BallColor = rgb <1, 0.5, 0>;\n")
    scene = (EXAMPLES / "orbit.pov").read_text()
    scene = scene.replace(
        '#include "colors.inc"', '#include "colors.inc"\n#include "inc/ball.inc"'
    ).replace("color Red", "color BallColor")
    (hq / "scene.pov").write_text(scene)
    stale = two_sites.roots["sthlm"] / "out" / "orbit9.png"  # from an older run at sthlm
    stale.parent.mkdir()
    stale.write_bytes(b"old")
    with Client(two_sites.controller.url, two_sites.controller.admin_token) as client:
        job = client.submit_job(
            api.JobIn.model_validate(
                {
                    "name": "orbit",
                    "engine": "povray",
                    "input": "share=proj/scene.pov",
                    "dependencies": ["share=proj/inc/ball.inc"],
                    "output": "share=proj/out/orbit.png",
                    "range": "1-6",
                    "chunk": 1,
                    "parameters": {"width": 32, "height": 18},
                    "paused": True,
                    "sites": {"sthlm": {"clear_output": True, "parallel_files": 2}},
                }
            )
        )
        agents = [two_sites.agent("hq"), two_sites.agent("sthlm")]

        def progress() -> bool:
            if client.job(job.id).status == "paused" and len(client.workers()) == 2:
                client.resume(job.id)
            return client.job(job.id).status in ("succeeded", "failed")

        run_agents(agents, progress, timeout=120)
        status = client.job(job.id).status
        attempts = client.attempts(job.id)
        sites = {s.site: s for s in client.job_sites(job.id).sites}
        logs = "\n".join(
            line.text for i in {a.index for a in attempts} for line in client.log(job.id, i)
        )
    assert status == "succeeded", logs
    workers = {a.worker for a in attempts}
    assert workers == {"hq-1", "sthlm-1"}  # it rendered at both sites
    assert sorted(p.name for p in (hq / "out").iterdir()) == [f"orbit{n}.png" for n in range(1, 7)]
    assert sites["sthlm"].sync_state == "done"
    assert sites["sthlm"].parallel_files == 2  # as set at submit
    assert not stale.exists()  # cleared before the site's first task
    assert "hq" not in sites  # the main site holds the inputs: no sync there
    assert logs.count("[sync] download sync of job") == 1
    assert (two_sites.roots["sthlm"] / "inc" / "ball.inc").is_file()


def _thresher(*args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    argv = [sys.executable, "-c", "from thresher.cli.main import main; main()", *args]
    return subprocess.Popen(
        argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def test_a_roaming_submitter_uploads_its_files_and_downloads_every_frame(
    two_sites: TwoSites,
) -> None:
    require("povray")
    laptop = two_sites.tmp / "laptop"  # no shared storage: its own files only
    (laptop / "inc").mkdir(parents=True)
    (laptop / "inc" / "ball.inc").write_text("#declare BallColor = rgb <0, 1, 0>;\n")
    scene = (EXAMPLES / "orbit.pov").read_text()
    scene = scene.replace(
        '#include "colors.inc"', '#include "colors.inc"\n#include "inc/ball.inc"'
    ).replace("color Red", "color BallColor")
    (laptop / "scene.pov").write_text(scene)
    env = {
        **os.environ,
        "THRESHER_URL": two_sites.controller.url,
        "THRESHER_TOKEN": two_sites.controller.admin_token,
    }
    submit = _thresher(
        "submit",
        "--engine",
        "povray",
        "--input",
        str(laptop / "scene.pov"),
        "--parse-deps",
        "--upload-deps",
        "--range",
        "1-3",
        "--bucket",
        "1",
        "--param",
        "width=32",
        "--param",
        "height=18",
        "--output",
        str(laptop / "frames" / "orbit.png"),
        env=env,
    )
    out, err = submit.communicate(timeout=60)
    assert submit.returncode == 0, err
    job_id = int(out.strip())
    assert f"thresher download {job_id}" in err
    follow = _thresher(
        "download", str(job_id), "--follow", "--dest", str(laptop / "frames"), env=env
    )
    with Client(two_sites.controller.url, two_sites.controller.admin_token) as client:
        run_agents(
            [two_sites.agent("hq")],
            lambda: client.job(job_id).status in ("succeeded", "failed"),
            timeout=120,
        )
        status = client.job(job_id).status
        job = client.job(job_id)
    _, follow_err = follow.communicate(timeout=60)
    assert status == "succeeded"
    assert follow.returncode == 0, follow_err
    assert job.payload["input"].startswith("share=proj/uploads/")
    assert sorted(p.name for p in (laptop / "frames").iterdir() if not p.name.startswith(".")) == [
        "orbit1.png",
        "orbit2.png",
        "orbit3.png",
    ]
    # the laptop's frames are the main site's, byte for byte
    out_dir = two_sites.roots["hq"] / job.payload["output"].removeprefix("share=proj/")
    for n in (1, 2, 3):
        assert (laptop / "frames" / f"orbit{n}.png").read_bytes() == (
            out_dir.parent / f"orbit{n}.png"
        ).read_bytes()


def _faults_at(service: FileService, path: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Make `service` serve the last chunk of the file at `path` wrongly: its first 3 reads
    break off the batch (a transfer killed in the middle of the file: the pull gives up after 3
    tries), the 4th sends it corrupted (one byte flipped), the rest right. What was done, in
    order. Both ways a service sends chunks are faulted: `sendfile` (chunk reads on their own
    threads) and the route's (`get_many`)."""
    store = service.store
    real_get_many = store.get_many
    chunks = digest_file(path).chunks
    last = chunks[-1].hash
    where = (os.stat(path).st_ino, sum(c.size for c in chunks[:-1]), chunks[-1].size)
    done: list[str] = []

    def fault() -> str | None:
        if len(done) >= 4:
            return None
        done.append("cut" if len(done) < 3 else "corrupted")
        if done[-1] == "cut":
            raise OSError("the transfer was killed")
        return done[-1]

    def get_many(wanted: list[tuple[str, int]]) -> list[bytes | memoryview]:
        found = real_get_many(wanted)
        for i, (digest, _) in enumerate(wanted):
            if digest == last and fault():
                found[i] = bytes([found[i][0] ^ 0xFF]) + bytes(found[i][1:])
        return found

    real_send = sendfile._send_range

    def send_range(sock: socket.socket, fd: int, offset: int, size: int) -> int:
        if (os.fstat(fd).st_ino, offset, size) != where or not fault():
            return real_send(sock, fd, offset, size)
        sock.sendall(bytes([os.pread(fd, 1, offset)[0] ^ 0xFF]))
        return 1 + real_send(sock, fd, offset + 1, size - 1)

    store.get_many = get_many  # type: ignore[method-assign]
    monkeypatch.setattr(sendfile, "_send_range", send_range)
    return done


def test_a_changed_dependency_is_all_a_second_sync_moves(
    two_sites: TwoSites, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Also: the first sync is killed in the middle of a file and the task's next try resumes
    it (byte for byte), and a chunk that comes corrupted is detected and fetched again."""
    require("povray")
    hq = two_sites.roots["hq"]
    (hq / "inc").mkdir()
    (hq / "inc" / "ball.inc").write_text("#declare BallColor = rgb <1, 0, 0>;\n")
    tex = random.Random(7).randbytes(6 * 2**20)  # 6 MiB the scene does not use: many chunks
    (hq / "tex.bin").write_bytes(tex)
    faults = _faults_at(two_sites.services["hq"], hq / "tex.bin", monkeypatch)
    scene = (EXAMPLES / "orbit.pov").read_text()
    scene = scene.replace(
        '#include "colors.inc"', '#include "colors.inc"\n#include "inc/ball.inc"'
    ).replace("color Red", "color BallColor")
    (hq / "scene.pov").write_text(scene)
    body = {
        "engine": "povray",
        "input": "share=proj/scene.pov",
        "dependencies": ["share=proj/inc/ball.inc", "share=proj/tex.bin"],
        "output": "share=proj/out/orbit.png",
        "range": "1-4",
        "chunk": 1,
        "parameters": {"width": 16, "height": 9},
    }
    moved = []
    with Client(two_sites.controller.url, two_sites.controller.admin_token) as client:
        for n, color in enumerate(("<1, 0, 0>", "<0, 0, 1>")):
            (hq / "inc" / "ball.inc").write_text(f"#declare BallColor = rgb {color};\n")
            job = client.submit_job(api.JobIn.model_validate({**body, "name": f"j{n}"}))
            # no lane at hq: sthlm takes the job, and syncs it first
            sthlm = two_sites.agent("sthlm")
            job_id = job.id

            def ended(job_id: int = job_id) -> bool:
                return client.job(job_id).status in ("succeeded", "failed")

            run_agents([sthlm], ended, timeout=90)
            (row,) = client.job_sites(job.id).sites
            moved.append(row.message)
    new = len((hq / "inc" / "ball.inc").read_bytes())
    assert faults == ["cut", "cut", "cut", "corrupted"]
    # the second try went on from the first's checkpoint: less than all of tex.bin moved
    assert moved[0] is not None
    assert moved[0].endswith("1 chunks fetched again, 1 files resumed")
    assert int(moved[0].split(" ")[0]) < len(tex)
    assert (two_sites.roots["sthlm"] / "tex.bin").read_bytes() == tex
    assert moved[1] == f"{new} bytes moved"  # the scene and tex.bin were there already


def test_outputs_go_back_to_the_site_the_job_names(two_sites: TwoSites) -> None:
    require("povray")
    hq = two_sites.roots["hq"]
    (hq / "scene.pov").write_text((EXAMPLES / "orbit.pov").read_text())
    # another lane's frame, being written while these tasks run, and another's staging folder
    (hq / "out" / ".thresher-attempt-999").mkdir(parents=True)
    (hq / "out" / ".thresher-attempt-999" / "orbit7.png").write_bytes(b"half")
    (hq / "out" / "orbit8.png").write_bytes(b"half")
    soon = time.time() + 600
    os.utime(hq / "out" / "orbit8.png", (soon, soon))
    body = {
        "name": "to-sthlm",
        "engine": "povray",
        "input": "share=proj/scene.pov",
        "output": "share=proj/out/orbit.png",
        "range": "1-2",
        "chunk": 1,
        "parameters": {"width": 16, "height": 9},
    }
    with Client(two_sites.controller.url, two_sites.controller.admin_token) as client:
        with pytest.raises(APIError) as refused:  # a site nobody declared
            client.submit_job(api.JobIn.model_validate({**body, "settings": {"output_site": "x"}}))
        assert refused.value.status == 422
        assert refused.value.field == "settings.output_site"
        # rendered at the main site, its outputs go to the submitter's site (sthlm)
        job = client.submit_job(
            api.JobIn.model_validate({**body, "settings": {"output_site": "sthlm"}})
        )
        run_agents(
            [two_sites.agent("hq")],
            lambda: client.job(job.id).status in ("succeeded", "failed"),
            timeout=60,
        )
        status = client.job(job.id).status
        indexes = {a.index for a in client.attempts(job.id)}
        logs = "\n".join(line.text for i in indexes for line in client.log(job.id, i))
    assert status == "succeeded", logs
    for n in (1, 2):
        frame = f"out/orbit{n}.png"
        assert (two_sites.roots["sthlm"] / frame).read_bytes() == (hq / frame).read_bytes()
    assert logs.count(" outputs back to sthlm: ") == 2  # once per task
    # each task sent the frames it moved into place, nothing else of the folder
    assert sorted(p.name for p in (two_sites.roots["sthlm"] / "out").iterdir()) == [
        "orbit1.png",
        "orbit2.png",
    ]
    assert logs.count(" 1 outputs back to sthlm: ") == 2
