"""Lane threads: work handed to a lane runs there in order; what ended comes back in batches."""

from __future__ import annotations

import asyncio
import threading

from thresher.worker.lanes import Done, LaneThreads

DEADLINE_S = 10.0


async def collect(lanes: LaneThreads, batches: list[list[Done]], count: int) -> list[Done]:
    async def enough() -> None:
        while sum(len(b) for b in batches) < count:
            await asyncio.sleep(0)

    await asyncio.wait_for(enough(), DEADLINE_S)
    return [done for batch in batches for done in batch]


def test_each_lane_runs_its_work_in_order_in_its_own_thread() -> None:
    async def scenario() -> None:
        batches: list[list[Done]] = []
        lanes = LaneThreads(2, on_done=batches.append)
        lanes.start(asyncio.get_running_loop())
        ran: dict[int, list[tuple[int, int]]] = {0: [], 1: []}
        for i in range(20):
            lane = i % 2

            def work(lane: int = lane, i: int = i) -> int:
                ran[lane].append((i, threading.get_ident()))
                return i * 10

            lanes.hand(lane, i, work)
        done = await collect(lanes, batches, 20)
        lanes.close()

        assert sorted(d.key for d in done) == list(range(20))  # type: ignore[type-var]
        assert all(d.value == d.key * 10 for d in done)  # type: ignore[operator]
        for lane in (0, 1):
            assert [i for i, _ in ran[lane]] == list(range(lane, 20, 2))
            assert len({ident for _, ident in ran[lane]}) == 1
        assert ran[0][0][1] != ran[1][0][1]
        assert threading.get_ident() not in {ident for _, ident in ran[0] + ran[1]}

    asyncio.run(scenario())


def test_work_that_ends_while_the_loop_is_busy_comes_back_in_one_batch() -> None:
    async def scenario() -> None:
        batches: list[list[Done]] = []
        lanes = LaneThreads(1, on_done=batches.append)
        lanes.start(asyncio.get_running_loop())
        last_started = threading.Event()
        for i in range(5):
            lanes.hand(0, i, lambda: None)
        # Started only once the five before it have ended (and been queued for the loop).
        lanes.hand(0, 5, last_started.set)
        assert last_started.wait(DEADLINE_S)  # the loop is blocked: nothing delivered yet
        await collect(lanes, batches, 6)
        lanes.close()

        assert [d.key for d in batches[0]][:5] == [0, 1, 2, 3, 4]

    asyncio.run(scenario())


def test_withdraw_takes_back_work_not_started_yet() -> None:
    async def scenario() -> None:
        batches: list[list[Done]] = []
        lanes = LaneThreads(1, on_done=batches.append)
        lanes.start(asyncio.get_running_loop())
        release = threading.Event()
        started = threading.Event()

        def blocking() -> str:
            started.set()
            release.wait(DEADLINE_S)
            return "first"

        lanes.hand(0, "first", blocking)
        lanes.hand(0, "second", lambda: "second")
        assert started.wait(DEADLINE_S)

        assert not lanes.withdraw(0, "first")  # running: too late
        assert lanes.withdraw(0, "second")
        assert not lanes.withdraw(0, "second")
        release.set()
        done = await collect(lanes, batches, 1)
        lanes.close()

        assert [d.key for d in done] == ["first"]

    asyncio.run(scenario())


def test_work_that_raises_comes_back_as_an_error_and_the_lane_goes_on() -> None:
    async def scenario() -> None:
        batches: list[list[Done]] = []
        lanes = LaneThreads(1, on_done=batches.append)
        lanes.start(asyncio.get_running_loop())

        def broken() -> None:
            raise RuntimeError("boom")

        lanes.hand(0, "broken", broken)
        lanes.hand(0, "fine", lambda: "ok")
        done = await collect(lanes, batches, 2)
        lanes.close()

        assert [d.key for d in done] == ["broken", "fine"]
        assert isinstance(done[0].error, RuntimeError)
        assert done[1].value == "ok"
        assert done[1].error is None

    asyncio.run(scenario())


def test_close_joins_the_threads() -> None:
    async def scenario() -> None:
        threads_before = threading.active_count()
        lanes = LaneThreads(3, on_done=lambda batch: None)
        lanes.start(asyncio.get_running_loop())
        assert threading.active_count() == threads_before + 3

        lanes.close()

        assert threading.active_count() == threads_before

    asyncio.run(scenario())
