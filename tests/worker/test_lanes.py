"""Lane threads: work handed to a lane runs there in order; what ended comes back in batches."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import cast

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


class CountingLoop:
    """The running loop, counting the wake-ups the lane threads send it; ``wait_caught_up``
    blocks a lane until the loop has run every callback sent so far."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.sent = 0
        self._ran = 0
        self._changed = threading.Condition()

    def call_soon_threadsafe(self, callback: Callable[[], object]) -> None:
        with self._changed:
            self.sent += 1
        self.loop.call_soon_threadsafe(self._run, callback)

    def call_later(self, delay: float, callback: Callable[[], object]) -> asyncio.TimerHandle:
        return self.loop.call_later(delay, callback)

    def _run(self, callback: Callable[[], object]) -> None:
        callback()
        with self._changed:
            self._ran += 1
            self._changed.notify_all()

    def wait_caught_up(self) -> None:
        with self._changed:
            assert self._changed.wait_for(lambda: self._ran == self.sent, DEADLINE_S)


def test_a_lane_holding_many_pieces_wakes_the_loop_when_a_third_is_used_not_for_each() -> None:
    async def scenario() -> None:
        batches: list[list[Done]] = []
        lanes = LaneThreads(1, on_done=batches.append, linger_s=DEADLINE_S)
        loop = CountingLoop(asyncio.get_running_loop())
        lanes.start(cast(asyncio.AbstractEventLoop, loop))
        release = threading.Event()
        lanes.hand(0, "first", lambda: release.wait(DEADLINE_S))
        for i in range(16):
            # Each piece starts once the loop has run every wake-up sent so far (so a wake-up
            # per piece would be seen as one).
            lanes.hand(0, i, loop.wait_caught_up)
        release.set()
        done = await collect(lanes, batches, 17)
        lanes.close()

        assert [d.key for d in done] == ["first", *range(16)]
        # The lane held 16 when the first ended: the loop hears when 10 are left, then each
        # time a third of what was left when it looked is used, then for each of the last two;
        # never at the linger (DEADLINE_S). A wake-up per piece would be 17.
        assert loop.sent <= 10, loop.sent

    asyncio.run(scenario())


def test_what_ended_reaches_the_loop_within_the_linger_while_the_lane_runs_on() -> None:
    async def scenario() -> None:
        batches: list[list[Done]] = []
        delivered = threading.Event()

        def on_done(batch: list[Done]) -> None:
            batches.append(batch)
            delivered.set()

        lanes = LaneThreads(1, on_done=on_done, linger_s=0.01)
        lanes.start(asyncio.get_running_loop())
        release = threading.Event()
        lanes.hand(0, "first", lambda: release.wait(DEADLINE_S))
        lanes.hand(0, "second", lambda: delivered.wait(DEADLINE_S))
        for i in range(4):
            lanes.hand(0, i, lambda: None)
        release.set()
        # The lane holds 5 when the first ends, so it does not wake the loop at once; the
        # second waits until the first has reached the loop, which the linger sees to.
        done = await collect(lanes, batches, 6)
        lanes.close()

        assert batches[0][0].key == "first"
        assert done[1].value is True  # the second saw the delivery, not its own deadline

    asyncio.run(scenario())


def test_a_lane_prepares_for_more_work_only_once_it_stayed_idle() -> None:
    """A lane prepares for what may come (`when_idle`: a spare job folder) when it starts, and
    after a piece only once it has stayed without work `idle_after_s`: not while the loop
    reports the piece's end, not at all when work comes meanwhile; `close` ends the wait."""

    async def scenario(idle_after_s: float) -> tuple[int, bool]:
        batches: list[list[Done]] = []
        prepared: list[int] = []
        ready = threading.Event()

        def when_idle() -> None:
            prepared.append(1)
            ready.set()

        lanes = LaneThreads(
            1, on_done=batches.append, when_idle=when_idle, idle_after_s=idle_after_s
        )
        lanes.start(asyncio.get_running_loop())
        await asyncio.to_thread(ready.wait, DEADLINE_S)  # at the lane's start
        ready.clear()
        lanes.hand(0, 1, lambda: None)
        await collect(lanes, batches, 1)
        lanes.hand(0, 2, lambda: None)  # before the lane has stayed idle long
        await collect(lanes, batches, 2)
        if idle_after_s < DEADLINE_S:
            await asyncio.to_thread(ready.wait, DEADLINE_S)
        lanes.close(timeout=DEADLINE_S)
        return len(prepared), any(t.is_alive() for t in lanes._threads)

    assert asyncio.run(scenario(600.0)) == (1, False)  # only at its start; closed at once
    prepared, alive = asyncio.run(scenario(0.0))  # without the wait: after a piece too
    assert prepared >= 2
    assert not alive
