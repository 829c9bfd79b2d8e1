"""The outbox never drops output the controller would take: past its bound a lane waits for a
report to take some (back-pressure); only while the controller does not take output are the
oldest lines dropped, and the log then says how many and why, where they were."""

from __future__ import annotations

import asyncio
import threading

from thresher.schemas import api
from thresher.testing import wait_until
from thresher.worker.outbox import Outbox

LINE = "x" * 84  # 100 bytes with the outbox's count of a line's JSON


def lines(output: list[api.OutputBatch]) -> list[str]:
    return [text for batch in output for _, text in batch.lines]


def add(outbox: Outbox, first: int, count: int) -> None:
    for n in range(first, first + count):
        outbox.add_line(1, "tok", "stdout", f"{n:084d}")


def test_a_lane_waits_for_room_while_the_controller_takes_output() -> None:
    """GIVEN room for 10 lines WHEN a lane thread adds 25 THEN it waits after the 11th until a
    drain makes room, and every line comes out once, in order."""
    outbox = Outbox(hold_bytes=10 * len(LINE) + 160, send_bytes=500, batch_bytes=1000)
    lane = threading.Thread(target=add, args=(outbox, 0, 25))
    lane.start()
    wait_until(lambda: outbox._lines[1].size > 1000, timeout=5, what="the lane fills its room")
    assert lane.is_alive()  # waiting: back-pressure, not a drop
    got: list[str] = []
    while lane.is_alive() or not outbox.empty():
        output, _ = outbox.drain()
        got += lines(output)
    lane.join()
    assert got == [f"{n:084d}" for n in range(25)]


def test_while_the_controller_is_away_the_oldest_lines_go_and_that_is_said() -> None:
    outbox = Outbox(hold_bytes=1000, send_bytes=500, batch_bytes=1 << 20)
    outbox.set_reachable(False, "the controller did not take it (503 database down)")
    lane = threading.Thread(target=add, args=(outbox, 0, 25))
    lane.start()
    lane.join(timeout=10)
    assert not lane.is_alive()  # never waits while nothing can be sent
    output, _ = outbox.drain()
    got = lines(output)
    assert got[0] == (
        "[15 lines of output dropped here: the controller did not take it (503 database"
        " down); at most 1000 bytes of a task's output waits for the controller]"
    )
    assert got[1:] == [f"{n:084d}" for n in range(15, 25)]


def test_a_lane_waiting_for_room_drops_once_the_controller_goes_away() -> None:
    outbox = Outbox(hold_bytes=1000, send_bytes=500)
    lane = threading.Thread(target=add, args=(outbox, 0, 25))
    lane.start()
    wait_until(lambda: outbox._lines[1].size > 1000, timeout=5, what="the lane waits")
    outbox.set_reachable(False, "unreachable")
    lane.join(timeout=10)
    assert not lane.is_alive()
    got = lines(outbox.drain()[0])
    assert got[0].startswith("[15 lines of output dropped here: unreachable;")
    assert got[-1] == f"{24:084d}"


def test_a_report_carries_a_bounded_batch_and_a_finish_after_its_lines() -> None:
    outbox = Outbox(batch_bytes=1000)
    add(outbox, 0, 25)
    finish = api.FinishIn(attempt_id=1, token="tok", status="succeeded", exit_code=0)
    outbox.add_finish(finish)
    sent: list[tuple[list[str], list[api.FinishIn]]] = []
    while not outbox.empty():
        output, finished = outbox.drain()
        sent.append((lines(output), finished))
    assert [len(batch) for batch, _ in sent] == [10, 10, 5]
    assert [finished for _, finished in sent] == [[], [], [finish]]  # with its last lines


def test_unsent_output_goes_back_ahead_of_newer_lines() -> None:
    outbox = Outbox()
    add(outbox, 0, 3)
    output, _ = outbox.drain()
    add(outbox, 3, 2)
    outbox.put_back(output, [])
    assert lines(outbox.drain()[0]) == [f"{n:084d}" for n in range(5)]


def test_much_output_wakes_the_agent() -> None:
    async def run() -> bool:
        outbox = Outbox(send_bytes=1000)
        outbox.bind(asyncio.get_running_loop())
        await asyncio.to_thread(add, outbox, 0, 9)
        await asyncio.sleep(0)
        assert not outbox.backlog.is_set()
        await asyncio.to_thread(add, outbox, 9, 1)
        await asyncio.wait_for(outbox.backlog.wait(), 5)
        outbox.drain()
        return outbox.backlog.is_set()

    assert asyncio.run(run()) is False  # a drain that took it all: nothing pressing


def test_lines_are_numbered_and_those_put_back_go_again_as_a_repeat() -> None:
    """Each attempt's lines are numbered from 0 across batches (its entry emptied between
    them); a batch put back goes again with the same numbers marked `repeat`, and lines taken
    after it are not."""
    outbox = Outbox()
    add(outbox, 0, 3)
    (first,), _ = outbox.drain()
    assert (first.first_line, first.repeat) == (0, False)
    add(outbox, 3, 2)
    (second,), _ = outbox.drain()
    assert (second.first_line, len(second.lines), second.repeat) == (3, 2, False)
    add(outbox, 5, 1)
    outbox.put_back([second], [])  # the report's answer did not come
    (again,), _ = outbox.drain()
    assert (again.first_line, len(again.lines), again.repeat) == (3, 3, True)
    add(outbox, 6, 1)
    (after,), _ = outbox.drain()
    assert (after.first_line, after.repeat) == (6, False)


def test_an_attempts_numbers_are_forgotten_once_its_finish_is_taken() -> None:
    outbox = Outbox()
    add(outbox, 0, 2)
    outbox.add_finish(api.FinishIn(attempt_id=1, token="tok", status="succeeded", exit_code=0))
    output, finished = outbox.drain()
    assert len(finished) == 1
    assert outbox._numbers == {}
    outbox.put_back(output, finished)  # not taken: the numbers come back with the lines
    (again,), _ = outbox.drain()
    assert (again.first_line, again.repeat) == (0, True)


def test_lines_put_back_then_dropped_leave_the_rest_numbered_past_them() -> None:
    """GIVEN a batch put back (lines 0-4, perhaps stored) WHEN the controller goes away and the
    oldest lines are dropped THEN what is left goes numbered past line 4 and not as a repeat:
    stored whole (a line perhaps twice) rather than skipped as already stored."""
    outbox = Outbox(hold_bytes=1000, send_bytes=500, batch_bytes=1 << 20)
    add(outbox, 0, 5)
    output, _ = outbox.drain()
    outbox.put_back(output, [])
    outbox.set_reachable(False, "away")
    add(outbox, 5, 20)  # past the hold: the oldest go, the put-back lines first
    (batch,), _ = outbox.drain()
    assert batch.lines[0][1].startswith("[15 lines of output dropped here: away")
    assert (batch.first_line, batch.repeat) == (5, False)
