"""Table tests for dependencies: cycles, blocks on blocks, and tasks on tasks frame by frame."""

from __future__ import annotations

import pytest

from thresher.core.deps import (
    blocks_waiting,
    find_cycle,
    jobs_waiting,
    task_ready,
    upstream_tasks,
)
from thresher.core.frames import FrameSet, TaskLayout
from thresher.core.states import JobStatus


@pytest.mark.parametrize(
    ("graph", "cycle"),
    [
        pytest.param({}, None, id="empty"),
        pytest.param({"a": ["b"], "b": ["c"]}, None, id="chain"),
        pytest.param({"a": ["b", "c"], "b": ["c"], "c": []}, None, id="diamond"),
        pytest.param({"a": ["a"]}, ["a", "a"], id="self"),
        pytest.param({"a": ["b"], "b": ["a"]}, ["a", "b", "a"], id="two"),
        pytest.param({"a": ["b"], "b": ["c"], "c": ["b"]}, ["b", "c", "b"], id="tail into loop"),
        pytest.param({"x": [], "a": ["b"], "b": ["c"], "c": ["a"]}, ["a", "b", "c", "a"], id="3"),
        pytest.param({"a": ["zz"]}, None, id="target without entry"),
    ],
)
def test_find_cycle(graph: dict[str, list[str]], cycle: list[str] | None) -> None:
    assert find_cycle(graph) == cycle


def test_find_cycle_on_a_long_chain_does_not_recurse() -> None:
    graph = {i: [i + 1] for i in range(100_000)}
    assert find_cycle(graph) is None
    graph[100_000] = [0]
    found = find_cycle(graph)
    assert found is not None
    assert (found[0], found[-1], len(found)) == (0, 0, 100_002)


S = JobStatus


@pytest.mark.parametrize(
    ("after", "statuses", "expected"),
    [
        pytest.param([], {}, None, id="no deps"),
        pytest.param([1, 2], {1: S.SUCCEEDED, 2: S.SUCCEEDED}, None, id="all succeeded"),
        pytest.param([1, 2], {1: S.SUCCEEDED, 2: S.RUNNING}, "waiting on job 2", id="running"),
        pytest.param([1], {1: S.QUEUED}, "waiting on job 1", id="queued"),
        pytest.param([1], {1: S.PAUSED}, "waiting on job 1", id="paused"),
        pytest.param([1], {1: S.FAILED}, "waiting on job 1, which failed", id="failed"),
        pytest.param([1], {1: S.CANCELED}, "waiting on job 1, which canceled", id="canceled"),
        pytest.param([7], {}, None, id="a deleted job holds nothing back"),
        pytest.param([1, 2], {1: S.WAITING, 2: S.FAILED}, "waiting on job 1", id="first named"),
    ],
)
def test_jobs_waiting(
    after: list[int], statuses: dict[int, JobStatus], expected: str | None
) -> None:
    assert jobs_waiting(after, statuses) == expected


@pytest.mark.parametrize(
    ("after", "done", "expected"),
    [
        pytest.param([], {}, None, id="no deps"),
        pytest.param([0], {0: True}, None, id="upstream done"),
        pytest.param([0, 1], {0: True, 1: False}, "waiting on block render", id="one pending"),
    ],
)
def test_blocks_waiting(after: list[int], done: dict[int, bool], expected: str | None) -> None:
    assert blocks_waiting(after, done, {0: "sim", 1: "render"}) == expected


def layout(frames: str, chunk: int) -> TaskLayout:
    return TaskLayout(FrameSet.parse(frames), chunk)


# (downstream layout, task, upstream layout, upstream tasks it waits for)
FRAME_TABLE = [
    pytest.param(layout("1-100", 1), 0, layout("1-100", 1), [range(0, 1)], id="same chunks"),
    pytest.param(layout("1-100", 1), 9, layout("1-100", 10), [range(0, 1)], id="finer downstream"),
    pytest.param(layout("1-100", 10), 1, layout("1-100", 1), [range(10, 20)], id="coarser"),
    pytest.param(layout("1-100", 4), 1, layout("1-100", 3), [range(1, 3)], id="straddles"),
    pytest.param(layout("1-100", 1), 0, layout("50-100", 1), [], id="upstream lacks frames"),
    pytest.param(layout("1-9x2", 1), 2, layout("1-10", 1), [range(4, 5)], id="stepped downstream"),
]


@pytest.mark.parametrize(("down", "task", "up", "expected"), FRAME_TABLE)
def test_upstream_tasks(down: TaskLayout, task: int, up: TaskLayout, expected: list[range]) -> None:
    assert upstream_tasks(down, task, up) == expected


def test_a_comp_frame_starts_as_soon_as_its_render_frame_is_done() -> None:
    render, comp = layout("1-100", 1), layout("1-100", 1)
    done = {0, 1, 2}

    ready = [t for t in range(100) if task_ready(comp, t, [(render, done.__contains__)])]

    assert ready == [0, 1, 2]


def test_frame_by_frame_waits_for_every_upstream_block() -> None:
    render, mattes, comp = layout("1-10", 1), layout("1-10", 5), layout("1-10", 1)
    render_done = set(range(10))
    mattes_done = {0}  # frames 1-5

    ready = [
        t
        for t in range(10)
        if task_ready(
            comp, t, [(render, render_done.__contains__), (mattes, mattes_done.__contains__)]
        )
    ]

    assert ready == [0, 1, 2, 3, 4]
