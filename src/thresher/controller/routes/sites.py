"""Routes for sites, volumes and a job's sync per site: everyone reads (workers resolve share
paths with the volumes), admins and wranglers change."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from thresher.controller.routes.deps import CallerDep, FarmDep, JobIdPath
from thresher.core.volumes import Volume
from thresher.schemas import api
from thresher.schemas.base import MAX_INT64
from thresher.store.sites import JobSiteRecord, SiteRecord

router = APIRouter(prefix="/api/v1", tags=["sites"])


def site_out(site: SiteRecord, workers: int = 0) -> api.SiteOut:
    return api.SiteOut(
        name=site.name,
        description=site.description,
        main=site.main,
        file_service_url=site.file_service_url,
        bandwidth_bps=site.bandwidth_bps,
        parallel_streams=site.parallel_streams,
        workers=workers,
    )


def volume_out(volume: Volume) -> api.VolumeOut:
    roots = {s: dict(by_os) for s, by_os in volume.roots.items()}
    return api.VolumeOut(name=volume.name, description=volume.description, roots=roots)


def job_site_out(r: JobSiteRecord) -> api.JobSiteOut:
    return api.JobSiteOut(
        site=r.site,
        download=r.download,
        upload=r.upload,
        speed_limit_bps=r.speed_limit_bps,
        parallel_files=r.parallel_files,
        clear_output=r.clear_output,
        sync_state=r.sync_state,
        bytes_done=r.bytes_done,
        bytes_total=r.bytes_total,
        message=r.message,
    )


def job_sites_out(job_id: int, rows: list[JobSiteRecord]) -> api.JobSiteList:
    return api.JobSiteList(job_id=job_id, sites=[job_site_out(r) for r in rows])


@router.get("/sites", response_model=api.SiteList)
async def list_sites(farm: FarmDep, caller: CallerDep) -> api.SiteList:
    """Declared sites and the sites workers name, with their worker counts."""
    found = await farm.call(farm.sites.sites)
    return api.SiteList(sites=[site_out(s, n) for s, n in found])


@router.get("/sites/{name}", response_model=api.SiteOut)
async def show_site(name: str, farm: FarmDep, caller: CallerDep) -> api.SiteOut:
    return site_out(await farm.call(farm.sites.site, name))


@router.put("/sites/{name}", response_model=api.SiteOut)
async def set_site(name: str, body: api.SiteIn, farm: FarmDep, caller: CallerDep) -> api.SiteOut:
    """Declare a site or change it (admins and wranglers)."""
    return site_out(await farm.call(farm.sites.set_site, caller, name, body))


@router.delete("/sites/{name}", status_code=204)
async def delete_site(name: str, farm: FarmDep, caller: CallerDep) -> None:
    await farm.call(farm.sites.delete_site, caller, name)


@router.get("/volumes", response_model=api.VolumeList)
async def list_volumes(farm: FarmDep, caller: CallerDep) -> api.VolumeList:
    """Every volume with its roots per site and OS."""
    found = await farm.call(farm.sites.volumes)
    return api.VolumeList(volumes=[volume_out(v) for v in found.values()])


@router.get("/volumes/{name}", response_model=api.VolumeOut)
async def show_volume(name: str, farm: FarmDep, caller: CallerDep) -> api.VolumeOut:
    return volume_out(await farm.call(farm.sites.volume, name))


@router.put("/volumes/{name}", response_model=api.VolumeOut)
async def set_volume(
    name: str, body: api.VolumeIn, farm: FarmDep, caller: CallerDep
) -> api.VolumeOut:
    """Create a volume or set its roots (admins and wranglers)."""
    return volume_out(await farm.call(farm.sites.set_volume, caller, name, body))


@router.delete("/volumes/{name}", status_code=204)
async def delete_volume(name: str, farm: FarmDep, caller: CallerDep) -> None:
    await farm.call(farm.sites.delete_volume, caller, name)


@router.get("/jobs/{job_id}/sites", response_model=api.JobSiteList)
async def job_sites(job_id: JobIdPath, farm: FarmDep, caller: CallerDep) -> api.JobSiteList:
    """The job's sync at each site: settings and where it stands."""
    return job_sites_out(job_id, await farm.call(farm.sites.job_sites, caller, job_id))


@router.put("/jobs/{job_id}/sites/{site}", response_model=api.JobSiteList)
async def set_job_site(
    job_id: JobIdPath, site: str, body: api.JobSiteIn, farm: FarmDep, caller: CallerDep
) -> api.JobSiteList:
    """Change the job's sync settings at a site (its owner, admins, wranglers)."""
    return job_sites_out(
        job_id, await farm.call(farm.sites.set_job_site, caller, job_id, site, body)
    )


@router.get("/files/access", response_model=api.FileAccessOut)
async def file_access(
    farm: FarmDep,
    caller: CallerDep,
    job: Annotated[int | None, Query(ge=1, le=MAX_INT64, description="a job's files")] = None,
) -> api.FileAccessOut:
    """The main site's file service (URL and a token) and the volumes' roots there: where a
    submitter without shared storage sends its files and fetches its outputs. The token opens
    the caller's uploads, or with `job` that job's files only."""
    main, roots, token, uploads = await farm.call(farm.sites.file_access, caller, job)
    return api.FileAccessOut(
        site=main.name,
        url=main.file_service_url or "",
        token=token,
        volumes=roots,
        upload_folder=uploads,
    )


@router.get("/agent/sites", response_model=api.AgentSiteList)
async def agent_sites(farm: FarmDep, caller: CallerDep) -> api.AgentSiteList:
    """Sites with their file services' tokens (workers, admins)."""
    found = await farm.call(farm.sites.agent_sites, caller)
    return api.AgentSiteList(
        sites=[
            api.AgentSiteOut(
                name=s.name,
                main=s.main,
                file_service_url=s.file_service_url,
                file_service_token=s.file_service_token,
                bandwidth_bps=s.bandwidth_bps,
                parallel_streams=s.parallel_streams,
            )
            for s in found
        ]
    )


@router.post("/agent/sync/{job_id}/{site}", response_model=api.SyncClaimOut)
async def claim_sync(
    job_id: JobIdPath, site: str, farm: FarmDep, caller: CallerDep
) -> api.SyncClaimOut:
    """Whether the calling worker runs the job's download sync at `site` now (one does)."""
    run, row = await farm.call(farm.sites.claim_sync, caller, job_id, site)
    return api.SyncClaimOut(run=run, site=job_site_out(row))


@router.put("/agent/sync/{job_id}/{site}", response_model=api.JobSiteOut)
async def report_sync(
    job_id: JobIdPath, site: str, body: api.SyncReportIn, farm: FarmDep, caller: CallerDep
) -> api.JobSiteOut:
    """The running worker's word on the sync: progress, done or failed."""
    return job_site_out(await farm.call(farm.sites.report_sync, caller, job_id, site, body))
