"""Short tasks held ahead: known short from a block's first successes, lanes topped up."""

from __future__ import annotations

from thresher.client import Client
from thresher.core.ahead import AHEAD_CAP
from thresher.schemas import api
from thresher.testing import ServedController

from .conftest import Serve
from .test_dispatch import SimWorker, ended, worker


def poll(
    sim: SimWorker, *, lanes: list[int], ahead: list[int], finished: list[api.FinishIn]
) -> list[api.AssignmentOut]:
    done = {f.attempt_id for f in finished}
    body = api.PollIn(
        lanes=lanes,
        ahead_lanes=ahead,
        wait_s=0,
        running=[
            api.RunningIn(attempt_id=a.attempt_id, token=a.token)
            for a in sim.running.values()
            if a.attempt_id not in done
        ],
        finished=finished,
    )
    out = sim._call(lambda c: c.poll(body))
    for attempt_id in done:
        sim.running.pop(attempt_id)
    sim.running.update({a.attempt_id: a for a in out.assignments})
    return out.assignments


def test_first_successes_make_a_block_short_without_a_rebuild(serve: Serve) -> None:
    """GIVEN a dispatch index that is not rebuilt for an hour WHEN a block's first task
    succeeds in 1 ms THEN the next poll of a lane asking for tasks ahead gets a batch."""
    served: ServedController = serve(index_max_age_s=3600.0)
    with Client(served.url, served.admin_token) as admin:
        admin.submit("short", ["true", "{frame}"], frames="1-200")
    sim = worker(served, "w1")
    first = poll(sim, lanes=[0], ahead=[0], finished=[])
    assert len(first) == 1  # nothing known about the block's run time yet
    got = poll(sim, lanes=[0], ahead=[0], finished=[ended(first[0], duration_s=0.001)])
    assert len(got) == 1 + AHEAD_CAP
    assert {a.lane for a in got} == {0}


def test_a_busy_lane_is_topped_up_not_handed_a_whole_batch_again(serve: Serve) -> None:
    served: ServedController = serve(index_max_age_s=3600.0)
    with Client(served.url, served.admin_token) as admin:
        admin.submit("short", ["true", "{frame}"], frames="1-200")
    sim = worker(served, "w1")
    first = poll(sim, lanes=[0], ahead=[0], finished=[])
    batch = poll(sim, lanes=[0], ahead=[0], finished=[ended(first[0], duration_s=0.001)])
    # Half of it ended: the lane holds 1 running and 15 ahead, and asks to be topped up.
    half = [ended(a, duration_s=0.001) for a in batch[: len(batch) - 16]]
    got = poll(sim, lanes=[], ahead=[0], finished=half)
    assert len(got) == AHEAD_CAP - 15
    assert len(sim.running) == 1 + AHEAD_CAP
