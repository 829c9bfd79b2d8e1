"""Transfers between two file services on this machine (each its own folder and port): what
moves is verified, only changed chunks move again, an interrupted file resumes, a chunk that
comes corrupted is asked for again, nothing moves when nothing changed."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from thresher.files import follow as follow_module
from thresher.files import progress, sendfile
from thresher.files.chunking import AVG_CHUNK
from thresher.files.download import download
from thresher.files.follow import follow
from thresher.files.frames import HEADER
from thresher.files.manifest import Manifest
from thresher.files.partfile import BATCH_BYTES
from thresher.files.peer import Peer
from thresher.files.scope import issue
from thresher.files.server import serve_in_thread
from thresher.files.service import FileService, create_files_app
from thresher.files.store import ChunkStore
from thresher.files.upload import DigestCache, upload
from thresher.testing import wait_until

TOKEN = "files-token"


@dataclass
class Site:
    url: str
    root: Path  # the volume "proj" at this site
    service: FileService

    def call(self, path: str, body: dict[str, Any]) -> Any:
        headers = {"Authorization": f"Bearer {TOKEN}"}
        response = httpx.post(f"{self.url}/files/v1{path}", json=body, headers=headers, timeout=60)
        response.raise_for_status()
        return response.json()

    def pull_from(self, other: Site, manifest: str, **extra: Any) -> dict[str, Any]:
        body = {
            "source_url": other.url,
            "source_token": TOKEN,
            "manifest": manifest,
            "volume": "proj",
            **extra,
        }
        answer: dict[str, Any] = self.call("/pull", body)
        return answer


@pytest.fixture
def sites(tmp_path: Path) -> Iterator[tuple[Site, Site]]:
    with contextlib.ExitStack() as stack:
        found = []
        for name in ("a", "b"):
            root = tmp_path / f"{name}-proj"
            root.mkdir()
            service = FileService(
                ChunkStore(tmp_path / f"{name}-store"), token=TOKEN, site=name, roots={"proj": root}
            )
            url = stack.enter_context(serve_in_thread(service))
            found.append(Site(url, root, service))
        yield found[0], found[1]


def _random(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


def test_a_folder_arrives_whole_and_only_changed_chunks_move_again(
    sites: tuple[Site, Site],
) -> None:
    a, b = sites
    big = _random(12 * AVG_CHUNK, 1)
    (a.root / "scene").mkdir()
    (a.root / "scene" / "big.bin").write_bytes(big)
    for i in range(50):
        (a.root / "scene" / f"tex{i}.txt").write_text(f"texture {i}\n")
    (a.root / "scene" / ".thresher-attempt-3").mkdir()  # a render's staging folder: unlisted
    (a.root / "scene" / ".thresher-attempt-3" / "frame1.png").write_bytes(b"half")
    a.call("/checkin", {"volume": "proj", "name": "job-1-inputs"})

    first = b.pull_from(a, "job-1-inputs")
    again = b.pull_from(a, "job-1-inputs")
    changed = big[: 6 * AVG_CHUNK] + b"inserted" * 128 + big[6 * AVG_CHUNK :]
    (a.root / "scene" / "big.bin").write_bytes(changed)
    a.call("/checkin", {"volume": "proj", "name": "job-1-inputs"})
    edited = b.pull_from(a, "job-1-inputs")

    assert (b.root / "scene" / "big.bin").read_bytes() == changed
    assert (b.root / "scene" / "tex49.txt").read_text() == "texture 49\n"
    assert not (b.root / "scene" / ".thresher-attempt-3").exists()
    assert first["bytes_moved"] == len(big) + sum(len(f"texture {i}\n") for i in range(50))
    assert again["bytes_moved"] == 0
    assert again["files_skipped"] == 51
    assert 0 < edited["bytes_moved"] <= 3 * 4 * AVG_CHUNK  # one or two chunks, never the file
    assert edited["bytes_reused"] >= len(big) - 3 * 4 * AVG_CHUNK


def test_escaping_paths_are_refused_by_the_service(
    sites: tuple[Site, Site], tmp_path: Path
) -> None:
    a, _ = sites
    (tmp_path / "secret.txt").write_text("secret")
    (a.root / "link.txt").symlink_to(tmp_path / "secret.txt")
    (a.root / "ok.txt").write_text("ok")
    with pytest.raises(httpx.HTTPStatusError) as refused:
        a.call("/checkin", {"volume": "proj", "path": "../x", "name": "n"})
    with pytest.raises(httpx.HTTPStatusError) as linked:
        a.call("/checkin", {"volume": "proj", "paths": ["link.txt"], "name": "n"})
    whole = a.call("/checkin", {"volume": "proj", "name": "all"})
    assert refused.value.response.status_code == 422
    assert linked.value.response.status_code == 422
    assert whole["files"] == 1  # ok.txt; the link out of the root is left out


def test_chunk_reads_served_with_sendfile_answer_as_the_route(
    sites: tuple[Site, Site], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A chunk read is served off the ASGI stack (`files.sendfile`) with the route's very
    bytes (a chunk not here left out); on the same kept connection the next request of
    another kind goes to the app; a request the fast path does not take (a bad token) gets the
    route's answer; a chunk whose file got shorter comes as zeros in the same framing."""
    a, _ = sites
    data = _random(3 * AVG_CHUNK, 8)
    (a.root / "big.bin").write_bytes(data)
    a.call("/checkin", {"volume": "proj", "name": "m"})
    manifest = a.service.store.get_manifest("m")
    assert manifest is not None
    hashes = [c.hash for c in manifest.files[0].chunks] + ["0" * 64]
    served = []
    answer = sendfile._answer

    def counted(*args: Any) -> None:
        served.append(1)
        answer(*args)

    monkeypatch.setattr(sendfile, "_answer", counted)

    async def by_route() -> bytes:
        transport = httpx.ASGITransport(app=create_files_app(a.service))
        async with httpx.AsyncClient(transport=transport, base_url="http://a") as client:
            answer = await client.post(
                "/files/v1/chunks/read", json={"hashes": hashes}, headers=_auth(TOKEN)
            )
            return answer.content

    expected = asyncio.run(by_route())
    with httpx.Client(base_url=a.url, headers=_auth(TOKEN), timeout=30) as client:
        fast = client.post("/files/v1/chunks/read", json={"hashes": hashes})
        after = client.get("/files/v1/manifests/m")  # the same connection, handed back
    with httpx.Client(base_url=a.url, headers=_auth("wrong"), timeout=30) as client:
        refused = client.post("/files/v1/chunks/read", json={"hashes": hashes[:1]})
    with (a.root / "big.bin").open("r+b") as f:
        f.truncate(len(data) - 10)
    with httpx.Client(base_url=a.url, headers=_auth(TOKEN), timeout=30) as client:
        short = client.post("/files/v1/chunks/read", json={"hashes": hashes[-2:]})
    assert fast.status_code == 200
    assert fast.content == expected
    assert len(expected) == len(data) + HEADER * (len(hashes) - 1)  # the unknown one left out
    assert after.status_code == 200
    assert Manifest.from_json(after.content).hash == manifest.hash
    assert refused.status_code == 401
    assert short.content[:-10] == expected[-len(short.content) : -10]
    assert short.content[-10:] == bytes(10)
    assert len(served) == 2  # the first read and the short one; the refusal went to the route


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class _Flaky(httpx.AsyncBaseTransport):
    """The network edge, faked: flips a byte in the first chunk read, or cuts the connection
    after `cut_after` chunk reads (what a killed transfer looks like to the receiver)."""

    def __init__(self, *, corrupt: bool = False, cut_after: int | None = None) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.corrupt, self.cut_after, self.reads = corrupt, cut_after, 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        first = False
        if request.url.path.endswith("/chunks/read"):
            self.reads += 1
            first = self.reads == 1
            if self.cut_after is not None and self.reads > self.cut_after:
                raise httpx.ReadError("connection cut", request=request)
        response = await self.inner.handle_async_request(request)
        if self.corrupt and first:
            return httpx.Response(
                response.status_code, headers=response.headers, stream=_Flipped(response)
            )
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


class _Flipped(httpx.AsyncByteStream):
    def __init__(self, response: httpx.Response) -> None:
        self.response, self.done = response, False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for piece in self.response.stream:  # type: ignore[union-attr]
            if not self.done and len(piece) > 100:
                piece = piece[:90] + bytes([piece[90] ^ 0xFF]) + piece[91:]
                self.done = True
            yield piece

    async def aclose(self) -> None:
        await self.response.aclose()


def _peer(url: str, transport: httpx.AsyncBaseTransport) -> Peer:
    return Peer(url, TOKEN, transport=transport)


def test_a_corrupted_chunk_is_fetched_again_and_a_cut_transfer_resumes(
    sites: tuple[Site, Site], tmp_path: Path
) -> None:
    a, _ = sites
    data = _random(40 * AVG_CHUNK, 2)
    (a.root / "big.bin").write_bytes(data)
    a.call("/checkin", {"volume": "proj", "name": "m"})
    dest = tmp_path / "dest"

    async def run() -> tuple[Any, Any, Any]:
        async with _peer(a.url, _Flaky(corrupt=True)) as peer:
            manifest = await peer.manifest("m")
            assert manifest is not None
            healed = await download(manifest, tmp_path / "healed", peer)
        async with _peer(a.url, _Flaky(cut_after=2)) as peer:
            with pytest.raises(Exception, match="connection cut"):
                await download(manifest, dest, peer, streams=1)
        async with Peer(a.url, TOKEN) as peer:
            resumed = await download(manifest, dest, peer, streams=1)
        return manifest, healed, resumed

    _, healed, resumed = asyncio.run(run())
    assert (tmp_path / "healed" / "big.bin").read_bytes() == data
    assert healed.chunks_refetched == 1
    assert (dest / "big.bin").read_bytes() == data
    assert resumed.files_resumed == 1
    assert resumed.bytes_moved < len(data) - AVG_CHUNK  # what came before the cut stayed
    assert not [p for p in os.listdir(dest) if "thresher-part" in p]


def test_a_download_brings_its_own_copies_up_to_date_and_keeps_anyone_elses(
    sites: tuple[Site, Site], tmp_path: Path
) -> None:
    """`existing="skip"` keeps a different file only when it is someone's: a file an earlier
    pass wrote and nobody changed since (a frame fetched mid-render) is brought up to date."""
    a, _ = sites
    out = a.root / "out"
    out.mkdir()
    big = _random(3 * AVG_CHUNK, 5)
    first = {"f1.png": b"half", "f2.png": b"half", "f3.png": b"v1", "big.exr": big}
    for name, data in first.items():
        (out / name).write_bytes(data)
    dest = tmp_path / "dest"
    (dest / "out").mkdir(parents=True)
    (dest / "out" / "f3.png").write_bytes(b"mine")  # there before: no transfer wrote it

    async def fetch(name: str) -> Any:
        a.call("/checkin", {"volume": "proj", "path": "out", "name": name})
        async with Peer(a.url, TOKEN) as peer:
            manifest = await peer.manifest(name)
            assert manifest is not None
            cache = DigestCache(dest / ".thresher-download.json")
            return await download(manifest, dest / "out", peer, existing="skip", cache=cache)

    assert asyncio.run(fetch("pass-1")).files_kept == 1  # f3.png, someone's own
    (dest / "out" / "f2.png").write_bytes(b"changed here")  # ours once, someone's now
    bigger = big[: len(big) // 2] + b"whole frame" + big[len(big) // 2 :]
    second = {"f1.png": b"whole frame", "f2.png": b"whole", "f3.png": b"v2", "big.exr": bigger}
    for name, data in second.items():
        (out / name).write_bytes(data)
    stats = asyncio.run(fetch("pass-2"))
    assert (dest / "out" / "f1.png").read_bytes() == b"whole frame"
    assert (dest / "out" / "big.exr").read_bytes() == bigger
    assert (dest / "out" / "f2.png").read_bytes() == b"changed here"
    assert (dest / "out" / "f3.png").read_bytes() == b"mine"
    assert stats.files_kept == 2


def test_upload_sends_only_what_the_service_lacks(sites: tuple[Site, Site], tmp_path: Path) -> None:
    a, _ = sites
    src = tmp_path / "local"
    src.mkdir()
    (src / "a.bin").write_bytes(_random(5 * AVG_CHUNK, 3))
    (src / "b.txt").write_text("b\n")

    async def run() -> tuple[Any, Any]:
        async with Peer(a.url, TOKEN) as peer:
            _, first = await upload(src, ["a.bin", "b.txt"], peer, name="up")
            _, second = await upload(src, ["a.bin", "b.txt"], peer, name="up")
        return first, second

    first, second = asyncio.run(run())
    assert first.bytes_moved == 5 * AVG_CHUNK + 2
    assert second.bytes_moved == 0
    assert a.service.store.get_manifest("up") is not None


def test_a_token_scoped_to_one_job_opens_that_jobs_files_only(sites: tuple[Site, Site]) -> None:
    a, b = sites
    for job in (1, 2):
        (a.root / f"out{job}").mkdir()
        (a.root / f"out{job}" / "frame.exr").write_bytes(_random(1000, job))
        a.call("/checkin", {"volume": "proj", "path": f"out{job}", "name": f"job-{job}-outputs"})
    token = issue(TOKEN, names="job-1-", folders=[("proj", "out1")])
    stale = issue(TOKEN, names="job-1-", folders=[("proj", "out1")], lifetime_s=-1)
    forged = issue("another service's token", names="job-2-", folders=[("proj", "out2")])
    hashes = {
        job: a.service.store.get_manifest(f"job-{job}-outputs").files[0].chunks[0].hash  # type: ignore[union-attr]
        for job in (1, 2)
    }

    def ask(method: str, path: str, given: str, body: dict[str, Any] | None = None) -> int:
        headers = {"Authorization": f"Bearer {given}"}
        url = f"{a.url}/files/v1{path}"
        return httpx.request(method, url, json=body, headers=headers, timeout=30).status_code

    mine = [
        ask("GET", "/manifests/job-1-outputs", token),
        ask("POST", "/chunks/read", token, {"hashes": [hashes[1]]}),
        ask("POST", "/checkin", token, {"volume": "proj", "path": "out1", "name": "job-1-x"}),
    ]
    theirs = [
        ask("GET", "/manifests/job-2-outputs", token),
        ask("POST", "/chunks/read", token, {"hashes": [hashes[1], hashes[2]]}),
        ask("POST", "/checkin", token, {"volume": "proj", "path": "out2", "name": "job-1-y"}),
        ask("POST", "/checkin", token, {"volume": "proj", "path": "out1", "name": "job-2-y"}),
        ask(
            "POST",
            "/pull",
            token,
            {
                "source_url": b.url,
                "source_token": TOKEN,
                "manifest": "job-1-outputs",
                "volume": "proj",
            },
        ),
    ]
    refused = [
        ask("GET", "/manifests/job-1-outputs", stale),
        ask("GET", "/manifests/job-2-outputs", forged),
        ask("GET", "/manifests/job-1-outputs", token[:-1] + ("1" if token[-1] == "0" else "0")),
    ]
    assert mine == [200, 200, 200]
    assert theirs == [403, 403, 403, 403, 403]
    assert refused == [401, 401, 401]


def test_a_pull_follows_a_checkin_in_progress_and_heals_a_corrupted_chunk(
    sites: tuple[Site, Site], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """B writes the first chunks of a file while A is still reading it (A's checkin is held
    half way until B's part file has grown), a chunk that comes corrupted is fetched again,
    and the file ends byte-identical, renamed once A's checkin gave its whole entry."""
    a, _ = sites
    data = _random(40 * AVG_CHUNK, 5)
    (a.root / "big.bin").write_bytes(data)
    (a.root / "small.txt").write_text("small\n")
    release = threading.Event()
    told = progress.Checkin.chunk

    def held(self: progress.Checkin, path: str, mode: int, chunk: Any) -> None:
        told(self, path, mode, chunk)
        if not release.is_set() and sum(c.size for c in self.chunks) >= 2 * BATCH_BYTES:
            release.wait(60)  # held until B has written its first batch

    monkeypatch.setattr(progress.Checkin, "chunk", held)
    monkeypatch.setattr(follow_module, "WANT_BYTES", 1)  # answers as soon as a chunk comes
    run = a.call("/checkin", {"volume": "proj", "name": "m", "background": True})["run"]
    dest = tmp_path / "dest"
    part = dest / ".big.bin.thresher-part"

    async def pull() -> tuple[Any, Any]:
        async with _peer(a.url, _Flaky(corrupt=True)) as peer:
            task = asyncio.create_task(follow(peer, "m", run, dest, streams=2))
            deadline = asyncio.get_running_loop().time() + 60
            while not (part.is_file() and part.stat().st_size > 0) and not task.done():
                assert asyncio.get_running_loop().time() < deadline
                await asyncio.sleep(0.01)
            held_then = a.service.checkins.get(run).seconds is None  # type: ignore[union-attr]
            release.set()
            return held_then, await task

    held_then, (manifest, stats) = asyncio.run(pull())
    assert held_then  # B had written part of the file while A's checkin was still reading it
    assert (dest / "big.bin").read_bytes() == data
    assert (dest / "small.txt").read_text() == "small\n"
    assert manifest.hash == a.service.store.get_manifest("m").hash  # type: ignore[union-attr]
    assert stats.chunks_refetched == 1
    assert stats.bytes_total == len(data) + 6
    assert not [p for p in os.listdir(dest) if "thresher-part" in p]


def test_checkins_running_at_once_are_bounded(
    sites: tuple[Site, Site], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A caller cannot start reading threads without end: past the service's limit a checkin
    is a 429 naming the field, and one is accepted again once a running one ended."""
    a, _ = sites
    (a.root / "big.bin").write_bytes(_random(4 * AVG_CHUNK, 7))
    release = threading.Event()
    told = progress.Checkin.chunk

    def held(self: progress.Checkin, path: str, mode: int, chunk: Any) -> None:
        told(self, path, mode, chunk)
        release.wait(60)

    monkeypatch.setattr(progress.Checkin, "chunk", held)
    a.service.checkins.max_running = 2
    body = {"volume": "proj", "name": "m", "background": True}
    runs = [a.call("/checkin", body)["run"] for _ in range(2)]
    headers = {"Authorization": f"Bearer {TOKEN}"}
    refused = httpx.post(f"{a.url}/files/v1/checkin", json=body, headers=headers, timeout=60)
    assert refused.status_code == 429
    assert refused.json()["detail"]["field"] == "name"
    release.set()
    wait_until(lambda: not a.service.checkins.running(), timeout=60, what="the checkins ended")
    assert all(a.service.checkins.get(run).seconds is not None for run in runs)  # type: ignore[union-attr]
    assert a.call("/checkin", body)["files"] == 1
