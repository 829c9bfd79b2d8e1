"""A site's file service: its chunk store over HTTP, and transfers with its peers.

Every route but ``/healthz`` needs ``Authorization: Bearer <token>``: the service's token
(compared in constant time), or a token scoped to one job's (or submitter's) manifests and
folders, made from it by the controller (`thresher.files.scope`): with that, only those
manifests, the chunks they list and those folders, and no pull. Under ``/files/v1``:

- ``POST /missing`` ``{"hashes": [...]}``: which of these chunks the store lacks.
- ``POST /chunks``: a framed batch of chunks (`thresher.files.frames`), each verified before
  it is kept; a wrong one is a 422 naming it and nothing after it is read.
- ``POST /chunks/read`` ``{"hashes": [...]}``: those chunks, framed, streamed in order (one
  that is not here, or no longer right, is left out: the reader asks again or elsewhere).
- ``PUT|GET /manifests/{name}``: a manifest's canonical JSON.
- ``POST /checkin`` ``{"volume", "path", "name"}``: the files under a folder of a volume
  (this site's root for it) become manifest `name`, served from where they lie.
- ``POST /pull`` ``{"source_url", "source_token", "manifest", "volume", "path", ...}``: bring
  a manifest's files from a peer file service into a folder of a volume here (verified,
  resumable); answers what moved.

Data goes between file services directly; whoever calls ``/pull`` only says what to move.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import os
import threading
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from thresher.files.chunking import chunk_hash
from thresher.files.download import LocalSource, TransferError, download
from thresher.files.follow import follow
from thresher.files.frames import HEADER, FrameError, decode, frame
from thresher.files.manifest import Manifest, ManifestError, safe_rel
from thresher.files.peer import Peer, PeerError
from thresher.files.progress import MAX_FILES, Checkin, Checkins
from thresher.files.scope import Scope
from thresher.files.scope import check as scope_of
from thresher.files.store import MANIFEST_NAME, BadChunk, ChunkStore
from thresher.files.upload import DigestCache, check_inside, list_files, upload_local

MAX_HASHES = 100_000
#: Bytes of chunks read from disk per hand-off to a thread when serving a batch.
READ_GROUP = 4 * 1024 * 1024
Name = Annotated[str, Field(pattern=MANIFEST_NAME.pattern)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class HashesIn(_Body):
    hashes: list[Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]] = Field(max_length=MAX_HASHES)


class CheckinIn(_Body):
    volume: str = Field(max_length=100)
    path: str = Field(default="", max_length=4096)
    paths: list[Annotated[str, Field(max_length=4096)]] | None = Field(
        default=None, max_length=100_000, description="these files (or folders) only"
    )
    name: Name
    background: bool = Field(
        default=False,
        description="answer once the files are listed; a pull may follow the checkin (its run)",
    )


class CheckoutIn(_Body):
    manifest: Name
    volume: str = Field(max_length=100)
    path: str = Field(default="", max_length=4096)
    existing: Literal["overwrite", "skip", "copy"] = "overwrite"


class PullIn(_Body):
    source_url: str = Field(max_length=500, pattern=r"^https?://")
    source_token: str = Field(max_length=500)
    manifest: Name
    volume: str = Field(max_length=100)
    path: str = Field(default="", max_length=4096)
    streams: int = Field(default=4, ge=1, le=64)
    parallel_files: int = Field(default=4, ge=1, le=64)
    bps: int | None = Field(default=None, ge=1)
    existing: Literal["overwrite", "skip", "copy"] = "overwrite"
    follow: str | None = Field(
        default=None,
        pattern=r"^[0-9a-f]{16}$",
        description="the run of a checkin in progress at the source: its files come as it goes",
    )


class FileService:
    """What the routes act on: the store, the volumes' roots at this site, the token."""

    def __init__(
        self,
        store: ChunkStore,
        *,
        token: str,
        site: str,
        roots: Mapping[str, Path] | Callable[[str], Path | None],
    ) -> None:
        """`roots`: each volume's root at this site, or a function answering it (the embedded
        service asks the farm's store, so volumes set later are found)."""
        self.store, self.token, self.site = store, token, site
        self._roots = roots if callable(roots) else dict(roots).get
        self.bps: int | None = None  # this site's cap, applied to the pulls it runs
        self.checkins = Checkins()  # running and recent, for pulls that follow them

    def folder(self, volume: str, path: str) -> Path:
        """A folder of a volume here (blocking: the roots may be read from a database)."""
        root = self._roots(volume)
        if root is None:
            raise HTTPException(422, f"volume {volume!r} has no root at site {self.site!r}")
        if not path:
            return root
        try:
            return root / safe_rel(path)
        except ManifestError as exc:
            raise HTTPException(422, {"message": str(exc), "field": "path"}) from None


async def _service(request: Request) -> FileService:
    service: FileService = request.app.state.files
    return service


async def _authorised(request: Request) -> Scope | None:
    """The caller's scope (None: the service's own token, which opens everything)."""
    service = await _service(request)
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    given = given.strip()
    if scheme.lower() == "bearer" and hmac.compare_digest(given, service.token):
        return None
    scope = scope_of(service.token, given) if scheme.lower() == "bearer" else None
    if scope is None:
        raise HTTPException(401, "this needs 'Authorization: Bearer <file service token>'")
    return scope


ServiceDep = Annotated[FileService, Depends(_service)]
ScopeDep = Annotated[Scope | None, Depends(_authorised)]
router = APIRouter(prefix="/files/v1", dependencies=[Depends(_authorised)])


def _may_name(scope: Scope | None, name: str) -> None:
    if scope is not None and not scope.may_name(name):
        raise HTTPException(403, {"message": f"this token is not for {name!r}", "field": "name"})


def _may_folder(scope: Scope | None, volume: str, path: str) -> None:
    if scope is not None and not scope.may_folder(volume, path):
        raise HTTPException(
            403, {"message": f"this token is not for {volume}/{path}", "field": "path"}
        )


def create_files_app(service: FileService) -> FastAPI:
    """The file service's ASGI app over `service`."""
    app = FastAPI(title="Thresher file service", docs_url=None, redoc_url=None)
    app.state.files = service
    app.include_router(router)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "site": service.site}

    return app


@router.post("/missing")
async def missing(body: HashesIn, service: ServiceDep) -> dict[str, list[str]]:
    return {"missing": await asyncio.to_thread(service.store.missing, body.hashes)}


@router.post("/chunks")
async def put_chunks(request: Request, service: ServiceDep) -> dict[str, int]:
    stored = n = 0
    try:
        async for digest, data in decode(request.stream()):
            if await asyncio.to_thread(service.store.put, digest, data):
                stored += len(data)
            n += 1
    except (BadChunk, FrameError) as exc:
        raise HTTPException(422, {"message": str(exc), "field": f"chunks[{n}]"}) from None
    return {"chunks": n, "stored_bytes": stored}


def _chunks_allowed(service: FileService, scope: Scope, running: list[Checkin]) -> frozenset[str]:
    """(In a thread: a checkin of many files lists many chunks.) The chunks a scoped token
    may read: those of its manifests and of its names' checkins in progress."""
    allowed = service.store.manifest_chunks(scope.names)
    for checkin in running:
        allowed |= checkin.hashes()
    return allowed


@router.post("/chunks/read")
async def read_chunks(body: HashesIn, service: ServiceDep, scope: ScopeDep) -> StreamingResponse:
    """The chunks here of those asked for, framed, with the batch's length said first. A chunk
    that turns out wrong when it is read (corrupted on disk, its source file changed) is sent
    as zeros of its size: the reader's check fails, and it asks again or elsewhere. A scoped
    token reads only the chunks of its manifests."""
    if scope is not None:
        running = [c for c in service.checkins.running() if scope.may_name(c.name)]
        allowed = await asyncio.to_thread(_chunks_allowed, service, scope, running)
        if not allowed.issuperset(body.hashes):
            raise HTTPException(
                403, {"message": "chunks of other manifests than this token's", "field": "hashes"}
            )
    sizes = await asyncio.to_thread(service.store.sizes, body.hashes)
    present = [(d, n) for d, n in zip(body.hashes, sizes, strict=True) if n is not None]

    async def frames() -> AsyncIterator[bytes | memoryview]:
        # Read in groups of about READ_GROUP bytes, one hand-off to a thread per group.
        start = 0
        while start < len(present):
            end, size = start, 0
            while end < len(present) and (end == start or size + present[end][1] <= READ_GROUP):
                size += present[end][1]
                end += 1
            group = present[start:end]
            got = await asyncio.to_thread(service.store.get_many, group)
            for (digest, _), data in zip(group, got, strict=True):
                yield frame(digest, data)
                yield data
            start = end

    length = sum(HEADER + n for _, n in present)
    return StreamingResponse(
        frames(),
        media_type="application/octet-stream",
        headers={"Content-Length": str(length)},
    )


@router.put("/manifests/{name}")
async def put_manifest(
    name: Name, request: Request, service: ServiceDep, scope: ScopeDep
) -> dict[str, str]:
    _may_name(scope, name)
    body = await request.body()
    try:
        manifest = Manifest.from_json(body)
    except ManifestError as exc:
        raise HTTPException(422, {"message": str(exc), "field": "manifest"}) from None
    await asyncio.to_thread(service.store.put_manifest, name, manifest)
    return {"hash": manifest.hash}


@router.get("/manifests/{name}")
async def get_manifest(name: Name, service: ServiceDep, scope: ScopeDep) -> Response:
    _may_name(scope, name)
    manifest = await asyncio.to_thread(service.store.get_manifest, name)
    if manifest is None:
        raise HTTPException(404, f"no manifest {name!r}")
    return Response(manifest.to_json(), media_type="application/json")


@router.post("/checkin")
async def checkin(body: CheckinIn, service: ServiceDep, scope: ScopeDep) -> dict[str, Any]:
    """Check the files in; with `background`, answer their count and bytes once they are
    listed, and go on reading them (a pull follows with the answer's `run`)."""
    _may_name(scope, body.name)
    _may_folder(scope, body.volume, body.path)
    folder = await asyncio.to_thread(service.folder, body.volume, body.path)
    try:
        rels = [safe_rel(p) for p in body.paths] if body.paths is not None else None
        files, size = await asyncio.to_thread(_listing, folder, rels, body.background)
    except FileNotFoundError as exc:
        raise HTTPException(404, f"{exc.filename} is not at site {service.site}") from None
    except ManifestError as exc:
        raise HTTPException(422, {"message": str(exc), "field": "paths"}) from None
    if len(service.checkins.running()) >= service.checkins.max_running:
        message = f"{service.checkins.max_running} checkins are running here: try again later"
        raise HTTPException(429, {"message": message, "field": "name"})
    progress = service.checkins.start(body.name, service.store)
    if body.background:
        thread = threading.Thread(
            target=_in_background,
            args=(service, folder, body.name, files, progress),
            daemon=True,
            name=f"checkin-{progress.run}",
        )
        thread.start()
        return {"run": progress.run, "files": len(files), "bytes": size}
    try:
        manifest = await asyncio.to_thread(_checkin, service, folder, body.name, files, progress)
    except FileNotFoundError as exc:
        raise HTTPException(404, f"{exc.filename} is not at site {service.site}") from None
    except ManifestError as exc:
        raise HTTPException(422, {"message": str(exc), "field": "paths"}) from None
    return {
        "run": progress.run,
        "hash": manifest.hash,
        "files": len(manifest.files),
        "bytes": manifest.total_bytes,
    }


@router.get("/checkins/{name}")
async def checkin_progress(
    name: Name,
    service: ServiceDep,
    scope: ScopeDep,
    run: Annotated[str, Query(pattern=r"^[0-9a-f]{16}$")],
    files: Annotated[int, Query(ge=0)] = 0,
    chunks: Annotated[int, Query(ge=0)] = 0,
    want_bytes: Annotated[int, Query(ge=0, le=2**30)] = 0,
    want_files: Annotated[int, Query(ge=1, le=MAX_FILES)] = 1,
    wait: Annotated[float, Query(ge=0, le=60)] = 20.0,
) -> dict[str, Any]:
    """What checkin `run` found after `files` whole files and `chunks` chunks of the file it
    reads next, once that is `want_bytes` bytes or `want_files` whole files (or a file of
    several chunks whole, or the end), else after `wait` seconds: whole files, the chunks so
    far of the file being read, and at the end `done` with the manifest's hash (or `error`)."""
    _may_name(scope, name)
    progress = service.checkins.get(run)
    if progress is None or progress.name != name:
        raise HTTPException(404, {"message": f"no checkin {run} of {name!r}", "field": "run"})
    return await progress.wait(files, chunks, want_bytes, want_files, wait)


@router.post("/pull")
async def pull(body: PullIn, service: ServiceDep, scope: ScopeDep) -> dict[str, Any]:
    if scope is not None:
        raise HTTPException(403, "a pull between sites needs the file service's own token")
    folder = await asyncio.to_thread(service.folder, body.volume, body.path)
    caps = [x for x in (body.bps, service.bps) if x]
    async with Peer(body.source_url, body.source_token) as peer:
        try:
            if body.follow is not None:
                followed, stats = await follow(
                    peer,
                    body.manifest,
                    body.follow,
                    folder,
                    streams=body.streams,
                    parallel_files=body.parallel_files,
                    bps=min(caps) if caps else None,
                    existing=body.existing,
                    cache=DigestCache(_cache_path(service, folder)),
                )
                return {"hash": followed.hash, **stats.as_dict()}
            manifest = await peer.manifest(body.manifest)
            if manifest is None:
                raise HTTPException(404, f"{body.source_url} has no manifest {body.manifest!r}")
            stats = await download(
                manifest,
                folder,
                peer,
                streams=body.streams,
                parallel_files=body.parallel_files,
                bps=min(caps) if caps else None,
                existing=body.existing,
                cache=DigestCache(_cache_path(service, folder)),
            )
        except (PeerError, TransferError) as exc:
            raise HTTPException(502, str(exc)) from None
    return {"hash": manifest.hash, **stats.as_dict()}


@router.post("/checkout")
async def checkout(body: CheckoutIn, service: ServiceDep, scope: ScopeDep) -> dict[str, Any]:
    """Write a manifest this store holds (an upload) into a folder of a volume here."""
    _may_name(scope, body.manifest)
    _may_folder(scope, body.volume, body.path)
    folder = await asyncio.to_thread(service.folder, body.volume, body.path)
    manifest = await asyncio.to_thread(service.store.get_manifest, body.manifest)
    if manifest is None:
        raise HTTPException(404, f"no manifest {body.manifest!r}")
    try:
        stats = await download(
            manifest,
            folder,
            LocalSource(service.store),
            existing=body.existing,
            cache=DigestCache(_cache_path(service, folder)),
        )
    except TransferError as exc:
        raise HTTPException(409, str(exc)) from None
    return {"hash": manifest.hash, **stats.as_dict()}


def _cache_path(service: FileService, folder: Path) -> Path:
    return service.store.root / "digests" / f"{chunk_hash(str(folder).encode())[:32]}.json"


def _listing(folder: Path, rels: list[str] | None, sized: bool) -> tuple[list[str], int]:
    """The files a checkin reads, and their bytes when `sized` (0 otherwise)."""
    if rels is None:
        files = list_files(folder)
    else:
        files = []
        for rel in rels:
            if (folder / rel).is_dir():
                files.extend(f"{rel}/{f}" for f in list_files(folder / rel))
            else:
                check_inside(folder, rel)
                files.append(rel)
    if not sized:
        return files, 0
    base = os.fspath(folder)
    return files, sum(os.stat(os.path.join(base, f)).st_size for f in files)


def _in_background(
    service: FileService, folder: Path, name: str, files: list[str], progress: Checkin
) -> None:
    """A background checkin: what went wrong is told to its followers (`progress.error`)."""
    with contextlib.suppress(Exception):
        _checkin(service, folder, name, files, progress)


def _checkin(
    service: FileService, folder: Path, name: str, files: list[str], progress: Checkin
) -> Manifest:
    """Read the files (those the digest cache knows are not read), serve their chunks from
    where they lie, keep their manifest; `progress` tells followers as it goes."""
    try:
        manifest = upload_local(
            folder, files, cache=DigestCache(_cache_path(service, folder)), progress=progress
        )
        service.store.add_sources(name, folder, manifest)
        service.store.put_manifest(name, manifest)
    except Exception as exc:
        progress.finish(None, f"{type(exc).__name__}: {exc}")
        raise
    progress.finish(manifest)
    return manifest
