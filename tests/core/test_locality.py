"""Site-aware dispatch's decision, on its own."""

from __future__ import annotations

from thresher.core.locality import JobData, SiteLanes, may_take

JOB = JobData(frozenset({"hq"}), bytes_total=100 * 2**20, first_seen=10.0)
BPS = 50 * 2**20  # 2 s to move the job's data


def _may(sites: dict[str, SiteLanes], mean: float | None, *, now: float = 11.0) -> bool:
    return may_take("sthlm", JOB, sites=sites, mean_runtime_s=mean, remaining=10, bps=BPS, now=now)


def test_a_site_holding_the_data_or_a_job_without_data_always_takes() -> None:
    assert may_take("hq", JOB, sites={}, mean_runtime_s=None, remaining=1, bps=None, now=0)
    nothing = JobData(frozenset())
    assert may_take("sthlm", nothing, sites={}, mean_runtime_s=None, remaining=1, bps=None, now=0)


def test_a_free_lane_where_the_data_is_holds_other_sites_back_until_it_declined() -> None:
    free_before = {"hq": SiteLanes(free=1, lanes=2, reported_at=9.0)}
    declined = {"hq": SiteLanes(free=1, lanes=2, reported_at=10.5)}  # polled since, took nothing
    assert not _may(free_before, 100.0)
    assert _may(declined, 100.0)


def test_with_the_data_sites_busy_the_wait_is_weighed_against_the_transfer() -> None:
    busy = {"hq": SiteLanes(free=0, lanes=2, reported_at=10.5)}
    assert not _may(busy, None)  # no run time known yet: the first tasks tell
    assert not _may(busy, 0.2)  # 0.2 s x 10 / 2 = 1 s < 2 s
    assert _may(busy, 1.0)  # 5 s > 2 s
    assert _may(busy, None, now=10.0 + 121)  # never held back past MAX_HOLD_S
