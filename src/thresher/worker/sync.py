"""Sync as visible work, on a worker away from the main site.

Before the first task of a job runs at a site that is not the main site, that site needs the
job's inputs and dependencies (its share paths under ``input``, ``inputs`` and
``dependencies``). One worker of the site is told to run the download sync
(``POST /api/v1/agent/sync/{job}/{site}``: the controller lets one through); it asks the main
site's file service to check those files in, then its own site's file service to pull them
from there, and reports progress and the end (``PUT``), which people see as the job's sync at
that site (``thresher sites job JOB``, ``GET /api/v1/jobs/{id}/sites``). The site's other tasks of
the job wait for it. After each task that succeeded, the files it moved into its output
folder from its staging folder (`worker.staging`) go back the same way: this site's file
service checks them in, and the output site's pulls them: the main site's, or the site the
job names (``settings.output_site``: the submitter's site, say; a worker at the main site then
sends its outputs there too).

The data moves between the two file services; this worker and the controller only say what
moves where. The job's settings at the site (download, upload, speed limit, parallel files,
clear the output folder first) come with the claim.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

import httpx

from thresher.core.volumes import (
    ShareRef,
    Volume,
    VolumeError,
    find_refs,
    input_refs,
    join_root,
    to_share,
)
from thresher.schemas import api

#: Seconds between looks at a sync another worker of the site runs.
WAIT_STEP_S = 0.5
#: How long a task waits for another worker's sync before it fails.
WAIT_MAX_S = 3600.0


class SyncError(Exception):
    """The sync could not be done: the task fails with this message."""


class SyncApi(Protocol):
    async def sites(self) -> api.AgentSiteList: ...

    async def claim_sync(self, job_id: int, site: str) -> api.SyncClaimOut: ...

    async def report_sync(
        self, job_id: int, site: str, body: api.SyncReportIn
    ) -> api.JobSiteOut: ...


async def _files_call(site: api.AgentSiteOut, path: str, body: dict[str, Any]) -> Any:
    if not site.file_service_url:
        raise SyncError(f"site {site.name!r} has no file service")
    headers = {"Authorization": f"Bearer {site.file_service_token or ''}"}
    try:
        async with httpx.AsyncClient(timeout=3600) as http:
            response = await http.post(
                f"{site.file_service_url}/files/v1{path}", json=body, headers=headers
            )
    except httpx.HTTPError as exc:
        raise SyncError(f"{site.name}'s file service: {type(exc).__name__}: {exc}") from None
    if not response.is_success:
        raise SyncError(f"{site.name}'s file service: {response.status_code} {response.text[:300]}")
    return response.json()


async def move(
    source: api.AgentSiteOut,
    target: api.AgentSiteOut,
    *,
    volume: str,
    paths: list[str],
    name: str,
    settings: api.JobSiteOut | None = None,
    checked: Callable[[int], Awaitable[None]] | None = None,
) -> dict[str, Any]:
    """Check `paths` of `volume` in at `source` as manifest `name` (`checked` hears its size),
    and have `target` pull them: the bytes go from one file service to the other. The pull
    follows the checkin as it goes (its files, and each file's chunks as they are hashed), so
    the two overlap: `source` answers once the files are listed."""
    body: dict[str, Any] = {"volume": volume, "paths": paths, "name": name, "background": True}
    found = await _files_call(source, "/checkin", body)
    if checked is not None:
        await checked(int(found.get("bytes", 0)))
    caps = [x for x in (settings and settings.speed_limit_bps, target.bandwidth_bps) if x]
    body = {
        "source_url": source.file_service_url,
        "source_token": source.file_service_token or "",
        "manifest": name,
        "follow": found["run"],
        "volume": volume,
        "streams": target.parallel_streams,
        "parallel_files": settings.parallel_files if settings else 4,
        "bps": min(caps) if caps else None,
    }
    answer: dict[str, Any] = await _files_call(target, "/pull", body)
    return answer


class SiteSync:
    """The download sync before a job's first task here, the upload after each task."""

    def __init__(self, client: SyncApi, *, site: str, os_name: str, ttl_s: float = 10.0) -> None:
        self.client, self.site, self.os_name, self.ttl_s = client, site, os_name, ttl_s
        self._sites: dict[str, api.AgentSiteOut] = {}
        self._read_at = -1e9
        self._done: set[int] = set()  # jobs synced here, as far as this worker knows
        self._settings: dict[int, api.JobSiteOut] = {}

    async def sites(self) -> dict[str, api.AgentSiteOut]:
        if time.monotonic() - self._read_at > self.ttl_s:
            self._sites = {s.name: s for s in (await self.client.sites()).sites}
            self._read_at = time.monotonic()
        return self._sites

    async def main_site(self) -> api.AgentSiteOut | None:
        sites = await self.sites()
        return next((s for s in sites.values() if s.main), sites.get("hq"))

    async def before(
        self,
        a: api.AssignmentOut,
        say: Callable[[str], None],
        volumes: dict[str, Volume] | None = None,
    ) -> bool:
        """Make sure the job's inputs are at this site (run or wait for its download sync);
        whether this task's outputs are to go back to another site (`output_site`)."""
        main = await self.main_site()
        if main is None or main.name == self.site:
            return await self._output_site(a) not in (None, self.site)
        refs = input_refs(a.payload)
        if a.job_id in self._done or not refs:
            return self._uploads(a.job_id) and await self._output_site(a) != self.site
        started = time.monotonic()
        while True:
            claim = await self.client.claim_sync(a.job_id, self.site)
            self._settings[a.job_id] = claim.site
            if not claim.site.download or claim.site.sync_state == "done":
                break
            if claim.run:
                if claim.site.clear_output and volumes is not None:
                    cleared = await asyncio.to_thread(self._clear_output, a, volumes)
                    say(f"[sync] cleared the output folder: {cleared} files removed")
                await self._download(a, refs, main, claim.site, say)
                break
            if time.monotonic() - started > WAIT_MAX_S:
                raise SyncError(f"the download sync of job {a.job_id} at {self.site} never ended")
            await asyncio.sleep(WAIT_STEP_S)
        self._done.add(a.job_id)
        return self._uploads(a.job_id) and await self._output_site(a) != self.site

    def _clear_output(self, a: api.AssignmentOut, volumes: dict[str, Volume]) -> int:
        """Remove the files of the job's output folder at this site (its first task here)."""
        output = a.payload.get("output")
        refs = find_refs(output) if isinstance(output, str) else []
        volume = volumes.get(refs[0].volume) if refs else None
        root = volume.root_for(self.site, self.os_name) if volume else None
        if not refs or root is None or not refs[0].rel:
            return 0
        target = Path(join_root(root, refs[0].rel))
        folder = target if target.is_dir() else target.parent
        removed = 0
        if folder.is_dir() and os.path.realpath(folder).startswith(os.path.realpath(root)):
            for entry in os.scandir(folder):
                if entry.is_file(follow_symlinks=False):
                    os.unlink(entry.path)
                    removed += 1
        return removed

    async def _output_site(self, a: api.AssignmentOut) -> str | None:
        """Where the task's outputs go back to: the job's `output_site` (the submitter's
        site, say), else the main site."""
        settings = a.payload.get("settings")
        chosen = settings.get("output_site") if isinstance(settings, dict) else None
        if isinstance(chosen, str) and chosen:
            return chosen
        main = await self.main_site()
        return main.name if main else None

    def _uploads(self, job_id: int) -> bool:
        settings = self._settings.get(job_id)
        return settings is None or settings.upload

    async def _download(
        self,
        a: api.AssignmentOut,
        refs: list[ShareRef],
        main: api.AgentSiteOut,
        settings: api.JobSiteOut,
        say: Callable[[str], None],
    ) -> None:
        here = (await self.sites()).get(self.site)
        if here is None:
            raise SyncError(f"site {self.site!r} is not declared (no file service)")
        by_volume: dict[str, list[str]] = {}
        for ref in refs:
            by_volume.setdefault(ref.volume, []).append(ref.rel)
        say(f"[sync] download sync of job {a.job_id} to site {self.site}: {len(refs)} paths")
        moved = total = refetched = resumed = 0

        async def checked(size: int) -> None:  # shown while the bytes move
            await self._report(a.job_id, "running", total, total + size, "moving")

        try:
            for volume, paths in sorted(by_volume.items()):
                name = f"job-{a.job_id}-{volume}-inputs"
                answer = await move(
                    main,
                    here,
                    volume=volume,
                    paths=paths,
                    name=name,
                    settings=settings,
                    checked=checked,
                )
                moved += int(answer.get("bytes_moved", 0))
                total += int(answer.get("bytes_total", 0))
                refetched += int(answer.get("chunks_refetched", 0))
                resumed += int(answer.get("files_resumed", 0))
        except SyncError as exc:
            await self._report(a.job_id, "failed", moved, total, str(exc))
            raise
        said = f"{moved} bytes moved"
        if refetched:  # came corrupted, were asked for again
            said += f", {refetched} chunks fetched again"
        if resumed:  # an earlier try was cut: went on from its checkpoint
            said += f", {resumed} files resumed"
        say(f"[sync] done: {moved} of {total} bytes moved")
        await self._report(a.job_id, "done", total, total, said)

    async def _report(self, job_id: int, state: str, done: int, total: int, message: str) -> None:
        body = api.SyncReportIn.model_validate(
            {"state": state, "bytes_done": done, "bytes_total": total, "message": message[:1000]}
        )
        with contextlib.suppress(Exception):  # the sync's state is shown, never load-bearing
            await self.client.report_sync(job_id, self.site, body)

    async def after(
        self,
        a: api.AssignmentOut,
        volumes: dict[str, Volume],
        started: float,
        say: Callable[[str], None],
        *,
        written: Sequence[Path] | None = None,
    ) -> None:
        """Send the task's outputs back to the job's output site (the main site unless the job
        names another): `written`, the files its attempt moved into the output folder from its
        staging folder (`worker.staging`); else (a command that does not write where its
        output says) the files of its output folder changed since it `started`."""
        sites = await self.sites()
        name = await self._output_site(a)
        target = sites.get(name) if name else None
        here = sites.get(self.site)
        output = a.payload.get("output")
        if name is None or name == self.site or here is None or not isinstance(output, str):
            return
        if target is None:
            raise SyncError(f"the job's output site {name!r} is not declared")
        refs = find_refs(output)
        if not refs:
            return
        ref = refs[0]
        volume = volumes.get(ref.volume)
        root = volume.root_for(self.site, self.os_name) if volume else None
        if root is None:
            raise SyncError(f"volume {ref.volume!r} has no root at {self.site}")
        if written is None:
            output_path = Path(join_root(root, ref.rel))
            written = await asyncio.to_thread(_written_since, output_path, started)
        paths: list[str] = []
        for path in written:
            share = to_share(str(path), volumes, site=self.site, os_name=self.os_name)
            if share is not None:
                paths.extend(r.rel for r in find_refs(share) if r.volume == ref.volume)
        if not paths:
            return
        manifest = f"job-{a.job_id}-task-{a.block}-{a.index}-{a.attempt_id}"
        answer = await move(here, target, volume=ref.volume, paths=paths, name=manifest)
        say(f"[sync] {len(paths)} outputs back to {name}: {answer.get('bytes_moved', 0)} bytes")


def _written_since(output: Path, started: float) -> list[Path]:
    """Files in the output's folder changed since the task started."""
    folder = output if output.is_dir() else output.parent
    if not folder.is_dir():
        return []
    found = []
    for entry in os.scandir(folder):
        if (
            entry.is_file()
            and not entry.name.startswith(".")
            and entry.stat().st_mtime >= started - 1
        ):
            found.append(Path(entry.path))
    return sorted(found)


__all__ = ["SiteSync", "SyncError", "VolumeError", "input_refs", "move"]
