"""Scheduling over HTTP on a real controller (SQLite and PostgreSQL): filters, lanes, capacity,
limits, caps, priorities and fair share, pools (dedicated, exclusive, preemption), dependencies,
error hosts, sick hosts, minimum run time, preview order and NIMBY.

Workers are played by the test through the real `AgentClient`: each registers with the facts the
test gives it and polls naming its free lanes, as the agent does.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, TypeVar

import pytest

from thresher.client import AgentClient, Client, Forbidden, InvalidRequest
from thresher.schemas import api
from thresher.testing import FakeClock, ServedController

T = TypeVar("T")
GB = 1024**3


class Sim:
    """A worker played by the test. It polls with its free lanes: those not holding a task."""

    def __init__(
        self,
        served: ServedController,
        name: str,
        *,
        lanes: int = 1,
        token: str | None = None,
        **facts: Any,
    ):
        """Enrol with the admin token, or re-attach with the worker's own `token`."""
        self.url, self.name, self.lanes = served.url, name, lanes
        self.token = token or served.admin_token
        body = {
            "name": name,
            "hostname": name,
            "os": "linux",
            "cores": 8,
            "ram_bytes": 16 * GB,
            "lanes": lanes,
            **facts,
        }
        out = self._call(lambda c: c.register(api.RegisterIn.model_validate(body)))
        self.token = out.token
        self.held: dict[int, api.AssignmentOut] = {}

    def _call(self, call: Callable[[AgentClient], Awaitable[T]]) -> T:
        async def run() -> T:
            client = AgentClient(self.url, self.token)
            try:
                return await call(client)
            finally:
                await client.aclose()

        return asyncio.run(run())

    def busy(self) -> set[int]:
        return {a.lane for a in self.held.values() if a.lane is not None}

    def poll(
        self,
        *,
        finished: Sequence[api.FinishIn] = (),
        lanes: Sequence[int] | None = None,
        nimby: str | None = None,
    ) -> api.PollOut:
        done = {f.attempt_id for f in finished}
        for attempt_id in done:
            self.held.pop(attempt_id, None)
        free = [n for n in range(self.lanes) if n not in self.busy()] if lanes is None else lanes
        body = api.PollIn(
            lanes=list(free),
            running=[api.RunningIn(attempt_id=a, token=x.token) for a, x in self.held.items()],
            finished=list(finished),
            nimby=nimby,  # type: ignore[arg-type]
        )
        out = self._call(lambda c: c.poll(body))
        for attempt_id in out.stale:
            self.held.pop(attempt_id, None)
        self.held.update({a.attempt_id: a for a in out.assignments})
        return out

    def take(self) -> list[api.AssignmentOut]:
        return self.poll().assignments

    def end(
        self, *held: api.AssignmentOut, status: str = "succeeded", **values: Any
    ) -> api.PollOut:
        """Report the attempts' ends without asking for more work."""
        return self.poll(finished=[ended(a, status, **values) for a in held], lanes=[])


def ended(a: api.AssignmentOut, status: str = "succeeded", **values: Any) -> api.FinishIn:
    values.setdefault("exit_code", 0 if status == "succeeded" else 1)
    return api.FinishIn(attempt_id=a.attempt_id, token=a.token, status=status, **values)  # type: ignore[arg-type]


def jobs_of(assignments: Iterable[api.AssignmentOut]) -> list[int]:
    return [a.job_id for a in assignments]


def job(admin: Client, name: str, frames: str = "1", **options: Any) -> int:
    return admin.submit(name, ["true"], frames=frames, **options).id


# -- filters ------------------------------------------------------------------------------------


def test_jobs_with_filters_land_only_where_allowed(served: ServedController, admin: Client) -> None:
    big = Sim(served, "big", ram_bytes=128 * GB, pools=["render"], gpus=2)
    small = Sim(served, "small", site="sthlm", attributes={"rack": "b2"})
    win = Sim(served, "win", os="windows", cores=32)
    wants = {
        job(admin, "ram", filters="ram:>60GB"): {"big"},
        job(admin, "site", filters="site:-sthlm,os:linux"): {"big"},
        job(admin, "os", filters="os:windows"): {"win"},
        job(admin, "cores", filters="cores:=32"): {"win"},
        job(admin, "gpu", filters="gpu:>0"): {"big"},
        job(admin, "label", filters="label:rack=b2"): {"small"},
        job(admin, "host", filters="hostname:sthlm/small+win"): {"small", "win"},
        job(admin, "pool", filters="pool:+render"): {"big"},
        job(admin, "never", filters="pool:-render,ram:<32g"): {"small", "win"},
    }
    landed: dict[int, set[str]] = {j: set() for j in wants}
    for _ in range(20):
        for sim in (big, small, win):
            got = sim.take()
            for a in got:
                landed[a.job_id].add(sim.name)
            sim.end(*got)
    assert all(landed[j] and landed[j] <= wants[j] for j in wants), (landed, wants)


@pytest.mark.parametrize(
    ("filters", "problem"),
    [
        ("ram:>lots", "bad number"),
        ("colour:red", "unknown key"),
        ("pool:~a@b", "bad pool name"),
        ("ram:>2XB", "unknown unit"),
    ],
)
def test_a_bad_filter_is_refused_naming_it(admin: Client, filters: str, problem: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        job(admin, "bad", filters=filters)
    assert info.value.field == "filters"
    assert filters.split(",")[0] in str(info.value)
    assert problem in str(info.value)
    assert admin.jobs() == []


# -- lanes and capacity -------------------------------------------------------------------------


def test_lanes_run_only_their_engines_and_the_controller_can_change_that(
    served: ServedController, admin: Client
) -> None:
    sim = Sim(served, "w", lanes=2, lane_engines={0: ["povray"]})
    job(admin, "cmd", frames="1-10")

    (a,) = sim.take()
    assert a.lane == 1  # lane 0 runs povray only; a command job is kind "command"
    assert sim.poll(lanes=[0]).assignments == []

    shown = admin.set_lane("w", 0, ["povray", "command"])
    assert [(x.index, x.engines, x.overridden) for x in shown.lanes_detail] == [
        (0, ["command", "povray"], True),
        (1, None, False),
    ]
    (b,) = sim.poll(lanes=[0]).assignments
    assert b.lane == 0

    admin.set_lane("w", 1, ["blender"])
    sim.end(a)
    assert sim.poll(lanes=[1]).assignments == []
    admin.reset_lane("w", 1)
    assert len(sim.poll(lanes=[1]).assignments) == 1
    with pytest.raises(InvalidRequest):
        admin.set_lane("w", 2, None)


def test_admins_move_workers_between_pools_and_the_choice_outlives_restarts(
    served: ServedController, admin: Client
) -> None:
    sim = Sim(served, "w", pools=["office"])
    render = job(admin, "render", filters="pool:+render")
    assert sim.poll().assignments == []

    shown = admin.set_pools("w", ["render", "gpu"])
    assert (shown.pools, shown.pools_declared) == (["render", "gpu"], ["office"])
    assert jobs_of(sim.take()) == [render]  # counts at the next poll

    # The worker restarts, declaring anew; it re-attaches with its own token.
    again = Sim(served, "w", token=sim.token, pools=["office", "sim"])
    shown = admin.worker("w")
    assert (shown.pools, shown.pools_declared) == (["render", "gpu"], ["office", "sim"])
    assert [p.name for p in admin.pools() if "w" in p.workers] == ["gpu", "render"]

    shown = admin.reset_pools("w")
    assert (shown.pools, shown.pools_declared) == (["office", "sim"], None)
    job(admin, "more render", frames="1-2", filters="pool:+render")
    assert again.poll().assignments == []
    with pytest.raises(InvalidRequest) as info:
        admin.set_pools("w", ["render", "bad pool"])
    assert info.value.field is not None
    assert info.value.field.startswith("pools")
    assert admin.worker("w").pools == ["office", "sim"]  # refused: nothing changed


def test_a_task_starts_only_where_capacity_is_free(served: ServedController, admin: Client) -> None:
    sim = Sim(served, "w", lanes=3, capacity=1500)
    heavy = job(admin, "heavy", frames="1-4", capacity=1000)

    first = sim.take()
    assert jobs_of(first) == [heavy]  # 1000 + 1000 > 1500: one at a time
    assert admin.worker("w").capacity_used == 1000
    light = job(admin, "light", frames="1-4", capacity=250, priority=10)

    more = sim.take()
    assert jobs_of(more) == [light, light]  # 1000 + 250 + 250 fit; a third would not
    sim.end(*first)
    assert jobs_of(sim.take()) == [heavy]  # 1000 freed: heavy (priority 50) goes first again


def test_lanes_bound_concurrency_with_default_capacity(
    served: ServedController, admin: Client
) -> None:
    sim = Sim(served, "w", lanes=2)
    job(admin, "many", frames="1-10")

    assert len(sim.take()) == 2
    assert sim.take() == []
    assert admin.worker("w").capacity == 2000


# -- limits and caps ----------------------------------------------------------------------------


def test_a_limit_is_never_exceeded_and_its_usage_is_visible(
    served: ServedController, admin: Client
) -> None:
    admin.set_limit("nuke", max_total=2)
    sims = [Sim(served, f"w{i}", lanes=2) for i in range(3)]
    comp = job(admin, "comp", frames="1-6", limits=["nuke"])

    got = [a for sim in sims for a in sim.take()]
    assert len(got) == 2
    usage = admin.limit("nuke")
    assert (usage.in_use, sum(usage.hosts.values())) == (2, 2)
    holder = next(s for s in sims if s.held)
    holder.end(next(iter(holder.held.values())))
    assert admin.limit("nuke").in_use == 1
    assert len([a for sim in sims for a in sim.take()]) == 1
    assert admin.limit("nuke").in_use == 2
    assert admin.job(comp).blocks[0].limits == ["nuke"]


def test_limit_per_host_and_max_hosts(served: ServedController, admin: Client) -> None:
    admin.set_limit("arnold", max_per_host=1, max_hosts=2)
    sims = [Sim(served, f"w{i}", lanes=2) for i in range(3)]
    job(admin, "render", frames="1-10", limits=["arnold"])

    per_sim = [len(sim.take()) for sim in sims]
    assert per_sim == [1, 1, 0]
    assert admin.limit("arnold").hosts == {"w0": 1, "w1": 1}


def test_an_unknown_limit_is_refused(admin: Client) -> None:
    with pytest.raises(InvalidRequest) as info:
        job(admin, "x", limits=["houdini"])
    assert (info.value.field, "houdini" in str(info.value)) == ("limits", True)


def test_caps_per_job_per_host_and_per_user(served: ServedController, admin: Client) -> None:
    a, b = Sim(served, "a", lanes=3), Sim(served, "b", lanes=3)
    capped = job(admin, "capped", frames="1-20", max_running=4, max_running_per_host=2)

    assert jobs_of(a.take()) == [capped, capped]  # per host
    assert jobs_of(b.take()) == [capped, capped]  # the job's cap of 4 is reached
    assert a.take() == []
    assert b.take() == []
    admin.cancel(capped)
    a.end(*a.held.values(), status="canceled")
    b.end(*b.held.values(), status="canceled")

    admin.set_user("admin", max_running=1)
    job(admin, "mine", frames="1-5")
    assert len(a.take()) == 1
    assert b.take() == []
    assert [(u.name, u.max_running, u.running) for u in admin.users()] == [("admin", 1, 1)]


# -- order: priorities, users, fair share, dedicated pools --------------------------------------


def user_client(served: ServedController, admin: Client, name: str) -> Client:
    return Client(served.url, admin.create_token(name).token)


def test_user_priority_then_fair_share_at_equal_job_priority(
    served: ServedController, admin: Client
) -> None:
    alice, bob = user_client(served, admin, "alice"), user_client(served, admin, "bob")
    sim = Sim(served, "w", lanes=1)
    a_job = job(alice, "a", frames="1-10")
    b_job = job(bob, "b", frames="1-10")

    (first,) = sim.take()
    assert first.job_id == a_job  # equal everything: the older job
    (second,) = Sim(served, "w2").take()
    assert second.job_id == b_job  # fair share: alice runs 1, bob 0

    admin.set_user("alice", priority=10)
    (third,) = Sim(served, "w3").take()
    assert third.job_id == a_job  # alice's user priority beats fair share
    alice.close()
    bob.close()


def test_a_dedicated_job_takes_its_pools_workers_before_a_higher_priority_job(
    served: ServedController, admin: Client
) -> None:
    high = job(admin, "high", frames="1-10", priority=90)
    dedicated = job(admin, "dedicated", frames="1-10", priority=10, filters="pool:@render")
    render, other = Sim(served, "render", pools=["render"]), Sim(served, "other")

    assert jobs_of(render.take()) == [dedicated]
    assert jobs_of(other.take()) == [high]
    admin.cancel(high)
    other.end(*other.held.values(), status="canceled")
    assert jobs_of(other.take()) == [dedicated]  # it may use other workers too


def test_preempt_cancels_lower_jobs_on_the_pool_without_counting_a_failure(
    served: ServedController, admin: Client
) -> None:
    render = Sim(served, "render", lanes=2, pools=["render"])
    low = job(admin, "low", frames="1-10", priority=90)
    running = render.take()
    assert jobs_of(running) == [low, low]

    urgent = job(admin, "urgent", frames="1-2", filters="pool:@render", preempt=True)
    out = render.poll(lanes=[])

    assert sorted(out.stop) == sorted(a.attempt_id for a in running)
    render.end(*running, status="canceled")
    assert jobs_of(render.take()) == [urgent, urgent]
    history = [(a.status, a.cancel_reason) for a in admin.attempts(low)]
    assert history == [("preempted", "preempted")] * 2
    assert [admin.task(low, i).failures for i in (0, 1)] == [0, 0]


def test_without_preempt_a_dedicated_job_waits_for_the_lane(
    served: ServedController, admin: Client
) -> None:
    render = Sim(served, "render", pools=["render"])
    low = job(admin, "low", frames="1-3")
    (a,) = render.take()
    dedicated = job(admin, "dedicated", filters="pool:@render")

    assert render.poll(lanes=[]).stop == []
    render.end(a)
    assert jobs_of(render.take()) == [dedicated]
    assert low != dedicated


def test_an_exclusive_pool_waits_while_another_active_job_includes_it(
    served: ServedController, admin: Client
) -> None:
    render = Sim(served, "render", pools=["render"])
    other = job(admin, "other", filters="pool:+render")
    exclusive = job(admin, "exclusive", filters="pool:~render", priority=100)

    (a,) = render.take()
    assert a.job_id == other
    render.end(a)  # `other` is done: nobody else includes render
    assert jobs_of(render.take()) == [exclusive]
    assert [p.name for p in admin.pools()] == ["render"]


# -- dependencies -------------------------------------------------------------------------------


def block(name: str, frames: str, **fields: Any) -> api.BlockIn:
    return api.BlockIn.model_validate({"name": name, "frames": frames, "chunk": 1, **fields})


def test_a_block_waits_for_the_blocks_it_names(served: ServedController, admin: Client) -> None:
    sim = Sim(served, "w", lanes=4)
    blocks = [block("render", "1-2"), block("encode", "1", after=["render"])]
    job_id = admin.submit_job(api.JobIn(name="pipe", command=["true"], blocks=blocks)).id

    first = sim.take()
    assert sorted((a.block, a.index) for a in first) == [(0, 0), (0, 1)]
    sim.end(first[0])
    assert sim.take() == []
    sim.end(first[1])
    assert [(a.block, a.index) for a in sim.take()] == [(1, 0)]
    assert admin.job(job_id).blocks[1].after == [0]


def test_frame_by_frame_starts_downstream_frames_before_the_upstream_block_ends(
    served: ServedController, admin: Client
) -> None:
    sim = Sim(served, "w", lanes=4)
    blocks = [block("render", "1-3"), block("comp", "1-3", after_frames=[0])]
    job_id = admin.submit_job(api.JobIn(name="comp", command=["true"], blocks=blocks)).id

    render = sim.take()
    assert [(a.block, a.frames) for a in render] == [(0, [1]), (0, [2]), (0, [3])]
    sim.end(render[1])  # frame 2 rendered; frames 1 and 3 still render
    (comp,) = sim.take()
    assert (comp.block, comp.frames) == (1, [2])
    assert admin.job(job_id).blocks[0].counts.running == 2
    sim.end(render[2])
    assert [(a.block, a.frames) for a in sim.take()] == [(1, [3])]


def test_a_retried_downstream_task_waits_again_for_its_retried_upstream_frames(
    served: ServedController, admin: Client
) -> None:
    sim = Sim(served, "w", lanes=2)
    blocks = [block("render", "1"), block("comp", "1", after_frames=[0])]
    job_id = admin.submit_job(api.JobIn(name="redo", command=["true"], blocks=blocks)).id
    (render,) = sim.take()
    sim.end(render)
    (comp,) = sim.take()
    sim.end(comp)

    admin.retry_task(job_id, 0, block=0)  # the frame is rendered again...
    admin.retry_task(job_id, 0, block=1)  # ...and composited again, after it

    assert [(a.block, a.index) for a in sim.take()] == [(0, 0)]  # not the comp, yet
    (again,) = sim.held.values()
    sim.end(again)
    assert [(a.block, a.index) for a in sim.take()] == [(1, 0)]


def test_a_dependency_cycle_is_refused(admin: Client) -> None:
    blocks = [block("a", "1", after=["c"]), block("b", "1", after=["a"]), block("c", "1")]
    blocks[2] = block("c", "1", after_frames=["b"])
    with pytest.raises(InvalidRequest) as info:
        admin.submit_job(api.JobIn(name="loop", command=["true"], blocks=blocks))
    assert "dependency cycle: a -> c -> b -> a" in str(info.value)
    assert admin.jobs() == []


def test_after_name_waits_on_the_owners_matching_jobs_or_everyones(
    served: ServedController, admin: Client
) -> None:
    alice = user_client(served, admin, "alice")
    mine = job(admin, "shot010_render")
    theirs = job(alice, "shot010_sim")
    job(admin, "shot020_render")

    comp = admin.submit("shot010_comp", ["true"], after_name="shot010_*")
    everyone = admin.submit("all", ["true"], after_name="shot010_[rs][ie][mn]*", after_global=True)

    assert (comp.after, comp.status) == ([mine], "waiting")
    assert sorted(everyone.after) == sorted([mine, theirs])
    with pytest.raises(InvalidRequest) as info:
        admin.submit("bad", ["true"], after_name="shot[01")
    assert info.value.field == "after_name"
    alice.close()


def test_a_job_waiting_on_a_failed_job_says_so(served: ServedController, admin: Client) -> None:
    sim = Sim(served, "w")
    first = job(admin, "first", retries=0)
    second = job(admin, "second", after=[first])
    (a,) = sim.take()
    sim.end(a, status="failed")

    shown = admin.job(second)
    assert (shown.status, shown.status_reason) == (
        "waiting",
        f"waiting on job {first}, which failed",
    )


# -- errors: error hosts, sick hosts, minimum run time ------------------------------------------


def test_a_failing_host_is_avoided_then_forgiven(serve: Any) -> None:
    clock = FakeClock()
    served: ServedController = serve(clock=clock)
    with Client(served.url, served.admin_token) as admin:
        sim = Sim(served, "flaky")
        job_id = job(admin, "j", frames="1-10", retries=10, errors_to_avoid=2, forgive_s=600)
        for _ in range(2):
            (a,) = sim.take()
            sim.end(a, status="failed")

        assert sim.take() == []
        (host,) = admin.error_hosts(job_id)
        assert (host.worker, host.errors, host.avoided) == ("flaky", 2, True)
        assert host.avoided_until == pytest.approx(clock.now() + 600)

        clock.advance(599)
        assert sim.take() == []
        clock.advance(1)
        assert len(sim.take()) == 1
        assert admin.error_hosts(job_id)[0].avoided is False


def test_error_hosts_can_be_reset(served: ServedController, admin: Client) -> None:
    sim = Sim(served, "flaky")
    job_id = job(admin, "j", frames="1-10", retries=10, errors_to_avoid=1)
    (a,) = sim.take()
    sim.end(a, status="failed")
    assert sim.take() == []

    assert admin.reset_error_hosts(job_id, worker="flaky") == 1
    assert admin.error_hosts(job_id) == []
    assert len(sim.take()) == 1


def test_a_host_failing_several_users_jobs_is_sick_until_cleared(serve: Any) -> None:
    served: ServedController = serve(sick_jobs=2, sick_window_s=3600)
    with Client(served.url, served.admin_token) as admin:
        sim = Sim(served, "bad")
        alice = user_client(served, admin, "alice")
        for owner in (admin, alice):  # two users' jobs, failing here and tried nowhere else
            job(owner, "j", retries=0)
            (a,) = sim.take()
            sim.end(a, status="failed")
        alice.close()
        job(admin, "three")

        assert sim.take() == []
        assert admin.worker("bad").sick_since is not None
        shown = admin.clear_sick("bad")
        assert shown.sick_since is None
        assert len(sim.take()) == 1


def test_a_success_under_the_minimum_run_time_is_an_error(
    served: ServedController, admin: Client
) -> None:
    sim = Sim(served, "w")
    job_id = job(admin, "j", retries=1, min_runtime_s=5)
    (a,) = sim.take()
    sim.end(a, duration_s=0.2)

    (attempt,) = admin.attempts(job_id)
    assert attempt.status == "failed"
    assert "minimum run time" in (attempt.message or "")
    task = admin.task(job_id, 0)
    assert (task.status, task.failures) == ("queued", 1)
    (b,) = sim.take()
    sim.end(b, duration_s=6)
    assert admin.job(job_id).status == "succeeded"


# -- order inside a block -----------------------------------------------------------------------


def test_priority_frames_then_preview_order_then_the_rest(
    served: ServedController, admin: Client
) -> None:
    sim = Sim(served, "w")
    job(admin, "j", frames="1-10", priority_frames="7", preview_every=4)

    order = []
    while got := sim.take():
        order += [f for a in got for f in a.frames]
        sim.end(*got)
    assert order == [7, 1, 5, 9, 2, 3, 4, 6, 8, 10]


# -- NIMBY --------------------------------------------------------------------------------------


def test_pause_and_stop_from_the_controller(served: ServedController, admin: Client) -> None:
    sim = Sim(served, "w", lanes=2)
    job_id = job(admin, "j", frames="1-10")
    (a,) = sim.poll(lanes=[0]).assignments

    assert admin.pause_worker("w").nimby == "paused"
    out = sim.poll()
    assert (out.assignments, out.stop, out.nimby) == ([], [], "paused")

    admin.stop_worker("w")
    assert sim.poll().stop == [a.attempt_id]
    sim.end(a, status="canceled")
    task = admin.task(job_id, a.index)
    assert (task.status, task.failures) == ("queued", 0)

    assert admin.resume_worker("w").nimby is None
    assert len(sim.take()) == 2


def test_nimby_from_the_workers_machine(served: ServedController, admin: Client) -> None:
    sim = Sim(served, "w")
    job(admin, "j", frames="1-10")

    out = sim.poll(nimby="paused")
    assert (out.assignments, out.nimby) == ([], "paused")
    assert admin.worker("w").local_nimby == "paused"
    assert len(sim.poll().assignments) == 1
    assert admin.worker("w").local_nimby is None


def test_only_admins_steer_workers_and_limits(served: ServedController, admin: Client) -> None:
    Sim(served, "w")
    with user_client(served, admin, "alice") as alice:
        for call in (
            lambda: alice.pause_worker("w"),
            lambda: alice.set_lane("w", 0, None),
            lambda: alice.set_pools("w", ["render"]),
            lambda: alice.reset_pools("w"),
            lambda: alice.set_limit("x", max_total=1),
            lambda: alice.set_user("alice", priority=100),
            lambda: alice.clear_sick("w"),
        ):
            with pytest.raises(Forbidden):
                call()
