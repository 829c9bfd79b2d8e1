"""Sites and volumes as people set them, and the share paths a submission carries.

Everyone may read sites and volumes (workers too: they resolve share paths with them); admins
and wranglers change them. Each change is one transaction (`UnitOfWork.change`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from pathlib import PurePosixPath
from typing import Any

from thresher.controller.auth import ADMIN, ARTIST, WORKER, WRANGLER, Caller
from thresher.controller.unit import UnitOfWork
from thresher.controller.visibility import check_may_change, check_visible
from thresher.core.clock import Clock
from thresher.core.errors import Conflict, InvalidInput, NotFound
from thresher.core.volumes import ShareRef, Volume, check_name, check_refs, find_refs
from thresher.files.scope import issue as scoped_token
from thresher.schemas import api
from thresher.store.sites import SETTINGS, JobSiteRecord, SiteRecord
from thresher.store.store import Store

#: Who may change sites and volumes.
EDITORS = (ADMIN, WRANGLER)
#: A sync whose runner said nothing for this long may be taken over by another worker.
SYNC_STALE_S = 60.0


class Sites:
    """Sites, volumes and each job's sync per site."""

    def __init__(self, store: Store, clock: Clock, unit: UnitOfWork) -> None:
        self.store, self.clock, self.unit = store, clock, unit
        # Told of the bytes a job's sync moved since its runner's last report (/metrics).
        self.sync_bytes: Callable[[int], None] | None = None

    # -- sites ---------------------------------------------------------------------------------

    def sites(self) -> list[tuple[SiteRecord, int]]:
        """Every declared site, and every site a worker names, with its worker count."""
        declared = {s.name: s for s in self.store.sites.sites()}
        counts: dict[str, int] = {}
        for w in self.store.workers.all():
            counts[w.site] = counts.get(w.site, 0) + 1
        for name in counts.keys() - declared.keys():
            declared[name] = SiteRecord(name, "", False, None, None, 4, 0.0)
        return [(declared[n], counts.get(n, 0)) for n in sorted(declared)]

    def site(self, name: str) -> SiteRecord:
        return self.store.sites.site(check_name(name, what="site"))

    def set_site(self, caller: Caller, name: str, body: api.SiteIn) -> SiteRecord:
        caller.require(*EDITORS)
        check_name(name, what="site")
        url = body.file_service_url
        if url is not None and not url.startswith(("http://", "https://")):
            raise InvalidInput(
                "file_service_url must be http(s)://host:port", field="file_service_url"
            )
        token = body.file_service_token
        if token is None:  # kept unless given
            token = next(
                (s.file_service_token for s in self.store.sites.sites() if s.name == name), None
            )
        record = SiteRecord(
            name=name,
            file_service_token=token,
            description=body.description,
            main=body.main,
            file_service_url=url,
            bandwidth_bps=body.bandwidth_bps,
            parallel_streams=body.parallel_streams,
            updated_at=self.clock.now(),
        )
        with self.unit.change():
            self.store.sites.set_site(record)
            return self.store.sites.site(name)

    def delete_site(self, caller: Caller, name: str) -> None:
        caller.require(*EDITORS)
        check_name(name, what="site")
        with self.unit.change():
            self.store.sites.delete_site(name)

    def main_site(self) -> str:
        """The main site's name: the one marked main, else ``hq``."""
        return next((s.name for s in self.store.sites.sites() if s.main), "hq")

    # -- volumes -------------------------------------------------------------------------------

    def volumes(self) -> dict[str, Volume]:
        return self.store.sites.volumes()

    def volume(self, name: str) -> Volume:
        return self.store.sites.volume(check_name(name, what="volume"))

    def set_volume(self, caller: Caller, name: str, body: api.VolumeIn) -> Volume:
        caller.require(*EDITORS)
        check_name(name, what="volume")
        for site, by_os in body.roots.items():
            for os_name, root in by_os.items():
                if not (root.startswith(("/", "\\\\")) or root[1:3] in (":\\", ":/")):
                    raise InvalidInput(
                        f"root {root!r} must be an absolute path", field=f"roots.{site}.{os_name}"
                    )
        volume = Volume(name=name, roots=body.roots, description=body.description)
        with self.unit.change():
            self.store.sites.set_volume(volume, now=self.clock.now())
            return self.store.sites.volume(name)

    def delete_volume(self, caller: Caller, name: str) -> None:
        caller.require(*EDITORS)
        check_name(name, what="volume")
        with self.unit.change():
            self.store.sites.delete_volume(name)

    def check_shares(self, fields: Mapping[str, Any]) -> list[ShareRef]:
        """The share paths in a submission's fields, each checked (a 422 naming the field)."""
        return check_refs(fields, self.store.sites.volumes())

    # -- a job's sync per site -----------------------------------------------------------------

    def job_sites(self, caller: Caller, job_id: int) -> list[JobSiteRecord]:
        job = self.store.jobs.get(job_id)  # a 404 for a job that is not there
        check_visible(self.store, caller, job_id, job.spec.owner)
        return self.store.sites.job_sites(job_id)

    def set_job_site(
        self, caller: Caller, job_id: int, site: str, body: api.JobSiteIn
    ) -> list[JobSiteRecord]:
        """Change a job's sync settings at a site (its owner, an admin or a wrangler)."""
        check_name(site, what="site", field_name="site")
        with self.unit.change():
            job = self.store.jobs.get(job_id)
            check_may_change(self.store, caller, job_id, job.spec.owner)
            changes = {k: getattr(body, k) for k in SETTINGS if getattr(body, k) is not None}
            self.store.sites.set_job_site(job_id, site, changes, now=self.clock.now())
            return self.store.sites.job_sites(job_id)

    def file_access(
        self, caller: Caller, job_id: int | None = None
    ) -> tuple[SiteRecord, dict[str, str], str, str]:
        """The main site's file service, the volumes' roots there (people who submit), a token
        for it and the folder uploads go to. The token is never the service's own: without a
        job it opens this caller's uploads only (manifests ``uploads-<caller>-...``, folders
        ``uploads/<caller>-...``); with one, that job's manifests (``job-<id>-...``), the
        chunks they list and its output folder (the job must be visible to the caller)."""
        caller.require(ADMIN, WRANGLER, ARTIST)
        sites = self.store.sites.sites()
        main = next((s for s in sites if s.main), None)
        if main is None or not main.file_service_url:
            raise NotFound("the main site has no file service", field="site")
        roots = {}
        for volume in self.store.sites.volumes().values():
            by_os = volume.roots.get(main.name) or {}
            root = by_os.get("linux") or by_os.get("*") or next(iter(by_os.values()), None)
            if root:
                roots[volume.name] = root
        who = re.sub(r"[^A-Za-z0-9_.-]", "_", caller.name)[:80]
        uploads = f"uploads/{who}-"
        if job_id is None:
            names, folders = f"uploads-{who}-", [(v, uploads) for v in roots]
        else:
            job = self.store.jobs.get(job_id)
            check_visible(self.store, caller, job_id, job.spec.owner)
            output = job.spec.payload.get("output")
            refs = find_refs(output) if isinstance(output, str) else []
            if not refs:
                raise InvalidInput(f"job {job_id}'s output is not a share path", field="job")
            rel = PurePosixPath(refs[0].rel)
            folder = str(rel.parent if rel.suffix else rel).removeprefix(".")
            names, folders = f"job-{job_id}-", [(refs[0].volume, folder)]
        token = scoped_token(
            main.file_service_token or "", names=names, folders=folders, now=self.clock.now()
        )
        return main, roots, token, uploads

    # -- workers: the sites' file services, and a job's sync at their site --------------------

    def agent_sites(self, caller: Caller) -> list[SiteRecord]:
        """Sites with their file services' tokens (workers and admins only)."""
        caller.require(WORKER, ADMIN)
        return self.store.sites.sites()

    def claim_sync(self, caller: Caller, job_id: int, site: str) -> tuple[bool, JobSiteRecord]:
        """Whether the calling worker runs the job's download sync at `site` now, and the
        job's settings there."""
        caller.require(WORKER, ADMIN)
        check_name(site, what="site", field_name="site")
        with self.unit.change(soft=True):
            self.store.jobs.get(job_id)
            run = self.store.sites.claim_sync(
                job_id, site, caller.name, now=self.clock.now(), stale_s=SYNC_STALE_S
            )
            row = next(r for r in self.store.sites.job_sites(job_id) if r.site == site)
            return run, row

    def report_sync(
        self, caller: Caller, job_id: int, site: str, body: api.SyncReportIn
    ) -> JobSiteRecord:
        caller.require(WORKER, ADMIN)
        check_name(site, what="site", field_name="site")
        changes = {
            "sync_state": body.state,
            "bytes_done": body.bytes_done,
            "bytes_total": body.bytes_total,
            "message": body.message,
        }
        with self.unit.change(soft=True):
            before = self._bytes_done(job_id, site)
            if not self.store.sites.report_sync(
                job_id, site, caller.name, changes, now=self.clock.now()
            ):
                raise Conflict(f"the sync of job {job_id} at {site} is not this worker's")
            row = next(r for r in self.store.sites.job_sites(job_id) if r.site == site)
        if self.sync_bytes is not None and row.bytes_done > before:  # counted once committed
            self.sync_bytes(row.bytes_done - before)
        return row

    def _bytes_done(self, job_id: int, site: str) -> int:
        return next((r.bytes_done for r in self.store.sites.job_sites(job_id) if r.site == site), 0)


def submission_fields(body: api.JobIn) -> dict[str, Any]:
    """The fields of a submission that may hold share paths, by the name a 422 gives them."""
    fields: dict[str, Any] = {
        "input": body.input,
        "inputs": body.inputs,
        "output": body.output,
        "dependencies": body.dependencies,
        "parameters": body.parameters,
        "command": body.command,
        "cwd": body.cwd,
        "env": body.env,
    }
    for i, block in enumerate(body.blocks or ()):
        fields[f"blocks[{i}].command"] = block.command
    return {k: v for k, v in fields.items() if v}
