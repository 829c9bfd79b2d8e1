"""The people's calls for sites, volumes and a job's sync per site (mixed into `Client`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from thresher.client._session import Session
from thresher.schemas import api


class SitesCalls(Session):
    """Sites and volumes: everyone reads, admins and wranglers change."""

    def sites(self) -> list[api.SiteOut]:
        return api.SiteList.model_validate(self._call("GET", "/api/v1/sites").json()).sites

    def set_site(self, name: str, **fields: Any) -> api.SiteOut:
        """Declare a site or change it: description, main, file_service_url, bandwidth_bps,
        parallel_streams."""
        body = api.SiteIn.model_validate(fields).model_dump()
        return api.SiteOut.model_validate(
            self._call("PUT", f"/api/v1/sites/{name}", json=body).json()
        )

    def delete_site(self, name: str) -> None:
        self._call("DELETE", f"/api/v1/sites/{name}")

    def volumes(self) -> list[api.VolumeOut]:
        return api.VolumeList.model_validate(self._call("GET", "/api/v1/volumes").json()).volumes

    def set_volume(
        self, name: str, roots: Mapping[str, Mapping[str, str]], *, description: str = ""
    ) -> api.VolumeOut:
        """Create a volume or set its roots: ``{site: {os: root}}`` (``*``: any OS)."""
        body = {"description": description, "roots": {s: dict(r) for s, r in roots.items()}}
        return api.VolumeOut.model_validate(
            self._call("PUT", f"/api/v1/volumes/{name}", json=body).json()
        )

    def delete_volume(self, name: str) -> None:
        self._call("DELETE", f"/api/v1/volumes/{name}")

    def job_sites(self, job_id: int) -> api.JobSiteList:
        return api.JobSiteList.model_validate(
            self._call("GET", f"/api/v1/jobs/{job_id}/sites").json()
        )

    def set_job_site(self, job_id: int, site: str, **settings: Any) -> api.JobSiteList:
        """Change a job's sync settings at a site: download, upload, speed_limit_bps,
        parallel_files, clear_output."""
        body = api.JobSiteIn.model_validate(settings).model_dump(exclude_none=True)
        return api.JobSiteList.model_validate(
            self._call("PUT", f"/api/v1/jobs/{job_id}/sites/{site}", json=body).json()
        )

    def file_access(self, job_id: int | None = None) -> api.FileAccessOut:
        """The main site's file service, to send files to (a token for this caller's
        uploads) or fetch a job's outputs from (`job_id`: a token for that job's files)."""
        params = {"job": job_id} if job_id is not None else None
        answer = self._call("GET", "/api/v1/files/access", params=params)
        return api.FileAccessOut.model_validate(answer.json())
