"""The HTTP contract of sites, volumes and a job's sync per site (docs/sites.md)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field, StringConstraints

from thresher.schemas.base import MAX_INT64, MAX_PATH, Strict

SiteName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]{1,100}$")]
OsName = Annotated[str, StringConstraints(pattern=r"^(linux|mac|windows|\*)$")]
RootPath = Annotated[str, StringConstraints(min_length=1, max_length=MAX_PATH)]
Description = Annotated[str, StringConstraints(max_length=300)]
Bps = Annotated[int, Field(ge=1, le=MAX_INT64, description="bytes per second at most")]


class SiteIn(Strict):
    description: Description = ""
    main: bool = Field(default=False, description="outputs go back here; one main site")
    file_service_url: Annotated[str, StringConstraints(max_length=500)] | None = Field(
        default=None, description="the site's file service, http(s)://host:port"
    )
    bandwidth_bps: Bps | None = Field(default=None, description="cap on this site's transfers")
    parallel_streams: int = Field(default=4, ge=1, le=64)
    file_service_token: Annotated[str, StringConstraints(max_length=500)] | None = Field(
        default=None, description="the token its file service takes (kept if left out; never shown)"
    )


class SiteOut(BaseModel):
    name: str
    description: str
    main: bool
    file_service_url: str | None
    bandwidth_bps: int | None
    parallel_streams: int
    workers: int = Field(default=0, description="workers at this site")


class SiteList(BaseModel):
    sites: list[SiteOut]


class VolumeIn(Strict):
    description: Description = ""
    roots: dict[SiteName, dict[OsName, RootPath]] = Field(
        description="root per site and OS ('*': any OS): {site: {linux: /mnt/proj}}",
        max_length=1000,
    )


class VolumeOut(BaseModel):
    name: str
    description: str
    roots: dict[str, dict[str, str]]


class VolumeList(BaseModel):
    volumes: list[VolumeOut]


class JobSiteIn(Strict):
    """A job's sync settings at one site; what is left out keeps its value."""

    download: bool | None = Field(default=None, description="sync inputs to the site first")
    upload: bool | None = Field(default=None, description="send outputs back after each task")
    speed_limit_bps: Bps | None = None
    parallel_files: int | None = Field(default=None, ge=1, le=64)
    clear_output: bool | None = Field(
        default=None, description="empty the output folder before the site's first task"
    )


class JobSiteOut(BaseModel):
    site: str
    download: bool
    upload: bool
    speed_limit_bps: int | None
    parallel_files: int
    clear_output: bool
    sync_state: str
    bytes_done: int
    bytes_total: int
    message: str | None


class JobSiteList(BaseModel):
    job_id: int
    sites: list[JobSiteOut]


class AgentSiteOut(BaseModel):
    """A site as workers see it: with its file service's token, to move files."""

    name: str
    main: bool
    file_service_url: str | None
    file_service_token: str | None
    bandwidth_bps: int | None
    parallel_streams: int


class AgentSiteList(BaseModel):
    sites: list[AgentSiteOut]


class SyncReportIn(Strict):
    """A worker's word on a job's sync at its site."""

    state: Literal["running", "done", "failed"]
    bytes_done: int = Field(default=0, ge=0, le=MAX_INT64)
    bytes_total: int = Field(default=0, ge=0, le=MAX_INT64)
    message: Annotated[str, StringConstraints(max_length=1000)] | None = None


class SyncClaimOut(BaseModel):
    """Whether the asking worker runs the sync (`run`), and the job's settings there."""

    run: bool
    site: JobSiteOut


class FileAccessOut(BaseModel):
    """The main site's file service, for a submitter without shared storage to send its files
    to and fetch its outputs from."""

    site: str
    url: str
    token: str = Field(description="scoped: the caller's uploads, or one job's files")
    volumes: dict[str, str] = Field(description="each volume's root there (by volume name)")
    upload_folder: str = Field(
        default="uploads/", description="uploads go in folders whose paths start with this"
    )
