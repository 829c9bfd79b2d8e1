"""Sites, volumes and each job's sync per site.

A site is a row of `sites` (name, whether it is the main site, its file service, transfer
settings); a worker at a site no row names still runs (a site need not be declared to filter on
it). A volume is a row of `volumes` with its roots per site and OS. `job_sites` holds a job's
sync settings and state at each site it runs at.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from thresher.core.errors import NotFound
from thresher.core.volumes import Volume
from thresher.store.base import Repository
from thresher.store.tables import job_sites, sites, volumes


@dataclass(frozen=True)
class SiteRecord:
    name: str
    description: str
    main: bool
    file_service_url: str | None
    bandwidth_bps: int | None
    parallel_streams: int
    updated_at: float
    file_service_token: str | None = None  # never shown to people; workers present it


@dataclass(frozen=True)
class JobSiteRecord:
    """A job's sync at one site: the settings people set and where it stands."""

    job_id: int
    site: str
    download: bool = True
    upload: bool = True
    speed_limit_bps: int | None = None
    parallel_files: int = 4
    clear_output: bool = False
    sync_state: str = "none"  # none | pending | running | done | failed
    bytes_done: int = 0
    bytes_total: int = 0
    message: str | None = None
    claimed_by: str | None = None
    updated_at: float = 0.0


SETTINGS = ("download", "upload", "speed_limit_bps", "parallel_files", "clear_output")


def _site(row: Any) -> SiteRecord:
    return SiteRecord(
        name=row.name,
        description=row.description,
        main=bool(row.main),
        file_service_url=row.file_service_url,
        bandwidth_bps=row.bandwidth_bps,
        parallel_streams=row.parallel_streams,
        updated_at=row.updated_at,
        file_service_token=row.file_service_token,
    )


def _volume(row: Any) -> Volume:
    roots = {str(s): {str(o): str(p) for o, p in by_os.items()} for s, by_os in row.roots.items()}
    return Volume(name=row.name, roots=roots, description=row.description)


def _job_site(row: Any) -> JobSiteRecord:
    return JobSiteRecord(**{k: getattr(row, k) for k in JobSiteRecord.__dataclass_fields__})


class Sites(Repository):
    # -- sites ---------------------------------------------------------------------------------

    def set_site(self, record: SiteRecord) -> None:
        """Create or change a site; a new main site makes the others not main."""
        values = {k: getattr(record, k) for k in SiteRecord.__dataclass_fields__ if k != "name"}
        with self.db.begin() as conn:
            if record.main:
                conn.execute(sites.update().where(sites.c.name != record.name).values(main=False))
            if not conn.execute(
                sites.update().where(sites.c.name == record.name).values(**values)
            ).rowcount:
                conn.execute(sites.insert().values(name=record.name, **values))

    def delete_site(self, name: str) -> None:
        with self.db.begin() as conn:
            if conn.execute(sites.delete().where(sites.c.name == name)).rowcount != 1:
                raise NotFound(f"site {name!r} does not exist", field="name")

    def sites(self) -> list[SiteRecord]:
        with self.db.connect() as conn:
            return [_site(r) for r in conn.execute(sa.select(sites).order_by(sites.c.name))]

    def site(self, name: str) -> SiteRecord:
        with self.db.connect() as conn:
            row = conn.execute(sa.select(sites).where(sites.c.name == name)).first()
        if row is None:
            raise NotFound(f"site {name!r} does not exist", field="name")
        return _site(row)

    # -- volumes -------------------------------------------------------------------------------

    def set_volume(self, volume: Volume, *, now: float) -> None:
        values = {
            "description": volume.description,
            "roots": {s: dict(by_os) for s, by_os in volume.roots.items()},
            "updated_at": now,
        }
        with self.db.begin() as conn:
            if not conn.execute(
                volumes.update().where(volumes.c.name == volume.name).values(**values)
            ).rowcount:
                conn.execute(volumes.insert().values(name=volume.name, **values))

    def delete_volume(self, name: str) -> None:
        with self.db.begin() as conn:
            if conn.execute(volumes.delete().where(volumes.c.name == name)).rowcount != 1:
                raise NotFound(f"volume {name!r} does not exist", field="name")

    def volumes(self) -> dict[str, Volume]:
        with self.db.connect() as conn:
            rows = conn.execute(sa.select(volumes).order_by(volumes.c.name)).all()
        return {r.name: _volume(r) for r in rows}

    def volume(self, name: str) -> Volume:
        found = self.volumes().get(name)
        if found is None:
            raise NotFound(f"volume {name!r} does not exist", field="name")
        return found

    # -- a job's sync per site -----------------------------------------------------------------

    def job_sites(self, job_id: int) -> list[JobSiteRecord]:
        with self.db.connect() as conn:
            rows = conn.execute(
                sa.select(job_sites).where(job_sites.c.job_id == job_id).order_by(job_sites.c.site)
            ).all()
        return [_job_site(r) for r in rows]

    def set_job_site(
        self, job_id: int, site: str, changes: Mapping[str, Any], *, now: float
    ) -> None:
        """Create a job's row for a site (defaults for what `changes` leaves out) or change it."""
        values = {**changes, "updated_at": now}
        where = (job_sites.c.job_id == job_id) & (job_sites.c.site == site)
        with self.db.begin() as conn:
            if conn.execute(job_sites.update().where(where).values(**values)).rowcount:
                return
            base = JobSiteRecord(job_id=job_id, site=site)
            row = {k: getattr(base, k) for k in JobSiteRecord.__dataclass_fields__}
            conn.execute(job_sites.insert().values({**row, **values}))

    def claim_sync(
        self, job_id: int, site: str, worker: str, *, now: float, stale_s: float
    ) -> bool:
        """Whether `worker` runs the job's sync at `site` now: yes when nobody ran it, it
        failed, or its runner went silent for `stale_s`; no while another runs it or once it
        is done. Atomic: of two workers asking at once, one is told yes."""
        where = (job_sites.c.job_id == job_id) & (job_sites.c.site == site)
        with self.db.begin() as conn:
            if conn.execute(sa.select(job_sites.c.job_id).where(where)).first() is None:
                base = JobSiteRecord(job_id=job_id, site=site, updated_at=now)
                conn.execute(
                    job_sites.insert().values(
                        {k: getattr(base, k) for k in JobSiteRecord.__dataclass_fields__}
                    )
                )
            free = job_sites.c.sync_state.in_(("none", "pending", "failed")) | (
                (job_sites.c.sync_state == "running") & (job_sites.c.updated_at < now - stale_s)
            )
            taken = conn.execute(
                job_sites.update()
                .where(where & free)
                .values(sync_state="running", claimed_by=worker, updated_at=now, message=None)
            ).rowcount
            return bool(taken)

    def report_sync(
        self, job_id: int, site: str, worker: str, changes: Mapping[str, Any], *, now: float
    ) -> bool:
        """The runner's word on the sync (False: it is not this worker's any more)."""
        where = (
            (job_sites.c.job_id == job_id)
            & (job_sites.c.site == site)
            & (job_sites.c.claimed_by == worker)
        )
        with self.db.begin() as conn:
            done = conn.execute(
                job_sites.update().where(where).values(**changes, updated_at=now)
            ).rowcount
            return bool(done)

    def delete_job(self, job_id: int) -> None:
        with self.db.begin() as conn:
            conn.execute(job_sites.delete().where(job_sites.c.job_id == job_id))
