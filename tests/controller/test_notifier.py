"""The notifier: a notify from the farm thread reaches a waiter whenever it lands, and wakes
the loop only while a poll waits; the farm thread runs calls in order and hands every answer
back."""

from __future__ import annotations

import asyncio
import threading
import time

from thresher.controller.farm_thread import FarmThread
from thresher.controller.notifier import Notifier
from thresher.core.errors import Unavailable


def test_a_notify_from_another_thread_reaches_a_waiter_before_and_during_its_wait() -> None:
    async def scenario() -> None:
        notifier = Notifier()
        notifier.bind(asyncio.get_running_loop())
        since = notifier.generation
        # Nobody waits: no wake-up is handed to the loop, but the generation moves on.
        thread = threading.Thread(target=notifier.notify, kwargs={"soft": True})
        thread.start()
        thread.join()
        assert notifier.generation != since
        assert await notifier.wait(since, timeout=30)  # answers at once
        # A poll waits: a notify from the other thread wakes it.
        since = notifier.generation
        waiter = asyncio.ensure_future(notifier.wait(since, timeout=30))
        while not notifier.waiting:
            await asyncio.sleep(0)
        threading.Thread(target=notifier.notify).start()
        assert await waiter
        assert notifier.waiting == 0

    asyncio.run(scenario())


def test_a_wait_ends_at_its_timeout_and_a_cancelled_one_leaves_nothing_behind() -> None:
    async def scenario() -> None:
        notifier = Notifier()
        notifier.bind(asyncio.get_running_loop())
        assert not await notifier.wait(notifier.generation, timeout=0.01)  # timed out
        cancelled = asyncio.ensure_future(notifier.wait(notifier.generation, timeout=30))
        while not notifier.waiting:
            await asyncio.sleep(0)
        cancelled.cancel()  # the poll's request went away
        await asyncio.gather(cancelled, return_exceptions=True)
        assert notifier.waiting == 0
        assert not notifier._waiters
        notifier.notify()  # wakes nobody, raises nothing

    asyncio.run(scenario())


def test_the_farm_thread_answers_every_call_in_order() -> None:
    async def scenario() -> list[object]:
        farm = FarmThread()
        ran: list[int] = []

        def work(i: int) -> int:
            ran.append(i)
            if i == 7:
                raise ValueError("seven")
            return i * 2

        try:
            calls = [farm.run(work, i) for i in range(50)]
            answers: list[object] = list(await asyncio.gather(*calls, return_exceptions=True))
        finally:
            farm.close()
        assert ran == list(range(50))
        return answers

    answers = asyncio.run(scenario())
    assert [a for i, a in enumerate(answers) if i != 7] == [i * 2 for i in range(50) if i != 7]
    assert isinstance(answers[7], ValueError)


def test_an_answer_is_not_held_back_by_a_run_of_posted_calls() -> None:
    """Posted calls (nobody waits for them) that keep the queue busy must not keep a ready
    answer from its caller: it goes back within the settle time, not when the queue empties."""

    async def scenario() -> bool:
        farm = FarmThread()
        answered, gave_up = threading.Event(), threading.Event()
        deadline = time.monotonic() + 10

        def again() -> None:  # each posts the next one until the answer arrived
            if answered.is_set():
                return
            if time.monotonic() > deadline:
                gave_up.set()
                return
            farm.post(again)

        try:
            farm.post(again)
            farm.post(again)  # two in turn: the queue is never empty
            assert await farm.run(lambda: 42) == 42
            answered.set()
        finally:
            farm.close()
        return gave_up.is_set()

    assert not asyncio.run(scenario())


def test_an_answer_goes_back_before_the_last_queued_call_runs() -> None:
    """A quick call's answer must not wait for the slow call queued right behind it (a job's
    wait read, then a worker's report): here the slow call runs only once the quick one's
    caller has its answer, so holding the answer back until after it would never end."""

    async def scenario() -> None:
        farm = FarmThread()
        gate, quick_seen = threading.Event(), threading.Event()
        try:
            blocker = asyncio.ensure_future(farm.run(gate.wait, 10))  # the two queue behind it
            await asyncio.sleep(0)  # one turn of the loop: the call is queued
            quick = asyncio.ensure_future(farm.run(lambda: 1))
            slow = asyncio.ensure_future(farm.run(quick_seen.wait, 10))
            await asyncio.sleep(0)  # both queued, while the blocker holds the farm thread
            gate.set()
            assert await blocker
            assert await asyncio.wait_for(quick, 5) == 1
            quick_seen.set()
            assert await slow
        finally:
            quick_seen.set()
            farm.close()

    asyncio.run(scenario())


def test_closing_behind_calls_run_together_answers_them_and_stops() -> None:
    """close() queued right behind a group of calls run together: the group is answered and
    the thread stops (the stop must not be taken for the call after the group)."""

    async def scenario() -> list[object]:
        farm = FarmThread()
        gate = threading.Event()
        farm.post(lambda: gate.wait(30))  # holds the thread while the rest is queued
        gathered = asyncio.gather(
            *(farm.run_together(lambda items: [i * 2 for i in items], i) for i in range(3))
        )
        await asyncio.sleep(0)  # one turn of the loop: each call is queued
        closer = threading.Thread(target=farm.close)
        closer.start()
        deadline = time.monotonic() + 30
        while farm._queue.qsize() < 4:  # the three calls and the stop
            assert time.monotonic() < deadline
            await asyncio.sleep(0.001)
        gate.set()
        await asyncio.to_thread(closer.join, 30)
        assert not closer.is_alive()
        return list(await asyncio.wait_for(gathered, 30))

    assert asyncio.run(scenario()) == [0, 2, 4]


def test_a_database_outage_met_by_one_call_of_a_group_is_noted() -> None:
    """Calls run together hand each caller its own outcome; one that found the database
    unavailable is noted as a call that raised it would be (the outage rule's clock)."""
    noted: list[bool] = []

    async def scenario() -> list[object]:
        farm = FarmThread()
        farm.on_unavailable = lambda: noted.append(True)

        def together(items: list[int]) -> list[object]:
            return [Unavailable("the database is unavailable") if i == 1 else i for i in items]

        try:
            calls = [farm.run_together(together, i) for i in range(3)]
            return list(await asyncio.gather(*calls, return_exceptions=True))
        finally:
            farm.close()

    outcomes = asyncio.run(scenario())
    assert isinstance(outcomes[1], Unavailable)
    assert noted


def test_calls_run_together_in_groups_of_at_most_together_max() -> None:
    """Calls queued behind one another run as groups of at most `together_max`, each caller
    answered."""
    groups: list[int] = []

    async def scenario() -> list[object]:
        farm = FarmThread(together_max=5)
        gate = threading.Event()
        farm.post(lambda: gate.wait(30))  # holds the thread while the calls are queued

        def together(items: list[int]) -> list[object]:
            groups.append(len(items))
            return [i * 2 for i in items]

        try:
            gathered = asyncio.gather(*(farm.run_together(together, i) for i in range(12)))
            await asyncio.sleep(0)  # one turn of the loop: each call is queued
            gate.set()
            return list(await asyncio.wait_for(gathered, 30))
        finally:
            farm.close()

    assert asyncio.run(scenario()) == [i * 2 for i in range(12)]
    assert groups == [5, 5, 2]
