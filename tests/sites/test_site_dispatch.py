"""Site-aware dispatch over HTTP, workers played by the test: the job's data is at the main
site A; lanes at A and at B. B is held back while A has lanes free or soon free (short
tasks: waiting beats moving the data), and takes work, starting its sync, once waiting for A's
lanes would take longer than the transfer (long tasks). A job that reads no share paths goes
anywhere."""

from __future__ import annotations

from collections import Counter

from tests.controller.test_dispatch import SimWorker, ended
from thresher.client import Client
from thresher.schemas import api
from thresher.testing import ServedController


class SiteWorker(SimWorker):
    def __init__(self, served: ServedController, name: str, site: str, lanes: int) -> None:
        super().__init__(served.url, served.admin_token, name, lanes=lanes)
        self.site = site

    def register(self) -> SiteWorker:
        body = api.RegisterIn(
            name=self.name,
            hostname=self.name,
            os="linux",
            cores=4,
            ram_bytes=1 << 30,
            site=self.site,
            lanes=self.lanes,
        )
        out = self._call(lambda c: c.register(body))
        self.token, self.id = out.token, out.worker_id
        return self

    def step(self, duration_s: float) -> list[api.AssignmentOut]:
        """Finish what it runs (each took `duration_s`) and take what it is given."""
        done = [ended(a, duration_s=duration_s) for a in self.running.values()]
        return self.poll(wait_s=0, finished=done).assignments


def _farm(served: ServedController, admin: Client) -> tuple[SiteWorker, SiteWorker]:
    admin.set_site("hq", main=True)
    admin.set_site("sthlm", bandwidth_bps=50 * 2**20)
    admin.set_volume("proj", {"hq": {"linux": "/mnt/proj"}, "sthlm": {"linux": "/data/proj"}})
    a = SiteWorker(served, "a1", "hq", lanes=2).register()
    b = SiteWorker(served, "b1", "sthlm", lanes=2).register()
    a.poll(wait_s=0)  # both idle before the job comes
    b.poll(wait_s=0)
    return a, b


def _engine_job(admin: Client, tasks: int, **fields: object) -> int:
    body = {
        "name": "orbit",
        "engine": "povray",
        "input": "share=proj/scene.pov",
        "dependencies": ["share=proj/tex/wood.png"],
        "range": f"1-{tasks}",
        "chunk": 1,
        **fields,
    }
    return admin.submit_job(api.JobIn.model_validate(body)).id


def _run(admin: Client, job: int, a: SiteWorker, b: SiteWorker, duration_s: float) -> Counter[str]:
    """B polls first each round (the worst case for A), until the job is done."""
    where: Counter[str] = Counter()
    for _ in range(100):
        where.update("B" for _ in b.step(duration_s))
        where.update("A" for _ in a.step(duration_s))
        if admin.job(job).status == "succeeded":
            break
    return where


def test_short_tasks_stay_at_the_site_holding_the_data(
    served: ServedController, admin: Client
) -> None:
    a, b = _farm(served, admin)
    job = _engine_job(admin, 20)

    where = _run(admin, job, a, b, duration_s=0.2)

    assert where["A"] + where["B"] == 20
    assert where["A"] >= 18  # at least 90 % where the data is
    assert admin.job_sites(job).sites == []  # B never started a sync


def test_long_tasks_start_a_second_sites_sync_once_waiting_costs_more(
    served: ServedController, admin: Client
) -> None:
    a, b = _farm(served, admin)
    job = _engine_job(admin, 20)

    first_b = b.step(600.0)  # A's lanes are free: B waits
    where = _run(admin, job, a, b, duration_s=600.0)

    assert first_b == []
    assert where["B"] > 0  # 600 s x 18 tasks / 2 lanes at A >> 100 MB at 50 MB/s


def test_a_job_reading_no_share_paths_goes_anywhere(
    served: ServedController, admin: Client
) -> None:
    _, b = _farm(served, admin)
    admin.submit("plain", ["true"], frames="1-4")

    assert len(b.step(1.0)) == 2
