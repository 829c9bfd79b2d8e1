"""What site-aware dispatch knows (`core.locality` decides): the free lanes each site's workers
reported on their last poll, and where each job's data is (the main site, and the sites whose
download sync is done), read from the store and kept for a moment.

Jobs without share paths among their inputs and dependencies are never held back, and cost a
lookup in a dictionary after their first poll.
"""

from __future__ import annotations

from dataclasses import dataclass

from thresher.core.locality import JobData, SiteLanes, may_take
from thresher.core.model import JobRecord
from thresher.core.volumes import input_refs
from thresher.store.store import Store

#: Seconds the sites and a job's sync states are read again after.
TTL_S = 1.0
#: A worker's report of free lanes counts while it is this fresh (a held poll lasts 20 s).
FRESH_S = 30.0


@dataclass
class _Report:
    site: str
    free: int
    lanes: int
    at: float


class Locality:
    """Per controller: workers' free lanes by site, and jobs' data sites."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._reports: dict[int, _Report] = {}
        self._reads_inputs: dict[int, bool] = {}  # job -> whether it has share inputs
        self._jobs: dict[int, tuple[float, JobData]] = {}
        self._first_seen: dict[int, float] = {}
        self._sites: tuple[float, str, dict[str, int | None]] = (-1e9, "hq", {})

    def note_poll(self, worker_id: int, site: str, *, free: int, lanes: int, now: float) -> None:
        """A worker's lanes left free after its poll was served."""
        self._reports[worker_id] = _Report(site, free, lanes, now)

    def _site_lanes(self, now: float) -> dict[str, SiteLanes]:
        out: dict[str, SiteLanes] = {}
        for report in self._reports.values():
            if now - report.at > FRESH_S:
                continue
            seen = out.get(report.site, SiteLanes())
            at = max(seen.reported_at, report.at) if report.free else seen.reported_at
            out[report.site] = SiteLanes(seen.free + report.free, seen.lanes + report.lanes, at)
        return out

    def _main(self, now: float) -> tuple[str, dict[str, int | None]]:
        read_at, main, bps = self._sites
        if now - read_at > TTL_S * 5:
            sites = self.store.sites.sites()
            main = next((s.name for s in sites if s.main), "hq")
            bps = {s.name: s.bandwidth_bps for s in sites}
            self._sites = (now, main, bps)
        return main, bps

    def know_job(self, job: JobRecord) -> None:
        """A job being submitted, its record as written: whether it reads share paths is
        known from it, not read back at its first claim (a record of a submission that does not
        commit is never asked for: ids are not reused)."""
        if len(self._reads_inputs) > 100_000:
            self._reads_inputs.clear()
        self._reads_inputs[job.id] = bool(input_refs(job.spec.payload))

    def job_data(self, job_id: int, now: float) -> JobData | None:
        """Where the job's data is, or None for a job that reads no share paths."""
        reads = self._reads_inputs.get(job_id)
        if reads is None:
            if len(self._reads_inputs) > 100_000:
                self._reads_inputs.clear()
            payload = self.store.jobs.payload(job_id)
            reads = self._reads_inputs[job_id] = bool(input_refs(payload))
        if not reads:
            return None
        cached = self._jobs.get(job_id)
        if cached is not None and now - cached[0] <= TTL_S:
            return cached[1]
        main, _ = self._main(now)
        rows = self.store.sites.job_sites(job_id)
        done = {r.site for r in rows if r.sync_state == "done"}
        sizes = [r.bytes_total for r in rows if r.bytes_total]
        first = self._first_seen.setdefault(job_id, now)
        data = JobData(frozenset({main, *done}), max(sizes) if sizes else None, first)
        self._jobs[job_id] = (now, data)
        return data

    def allows(
        self,
        site: str,
        job_id: int,
        *,
        mean_runtime_s: float | None,
        remaining: int,
        now: float,
    ) -> bool:
        """Whether a worker at `site` may take a task of the job now (`core.locality`)."""
        data = self.job_data(job_id, now)
        if data is None or site in data.sites:
            return True
        _, bps = self._main(now)
        return may_take(
            site,
            data,
            sites=self._site_lanes(now),
            mean_runtime_s=mean_runtime_s,
            remaining=remaining,
            bps=bps.get(site),
            now=now,
        )
