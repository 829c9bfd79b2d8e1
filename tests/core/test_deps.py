"""Table tests for dependencies: cycles, blocks on blocks, tasks on tasks frame by frame, jobs
on jobs (a deleted one included), and the tasks that can never run behind a failure."""

from __future__ import annotations

import random

import pytest

from thresher.core.deps import (
    BlockTasks,
    JobDeps,
    blocks_waiting,
    downstream,
    find_cycle,
    job_deps,
    jobs_waiting,
    never_run,
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
        pytest.param([7], {}, "waiting on job 7, which was deleted", id="deleted"),
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


DELETED = "job 7, which this job waits on, was deleted"


@pytest.mark.parametrize(
    ("after", "statuses", "expected"),
    [
        pytest.param([], {}, JobDeps(), id="no deps"),
        pytest.param([1], {1: S.SUCCEEDED}, JobDeps(), id="succeeded"),
        pytest.param([1], {1: S.RUNNING}, JobDeps(waiting="waiting on job 1"), id="running"),
        pytest.param(
            [1], {1: S.FAILED}, JobDeps(waiting="waiting on job 1, which failed"), id="failed"
        ),
        pytest.param([7], {}, JobDeps(broken=DELETED), id="deleted"),
        pytest.param([1, 7], {1: S.SUCCEEDED}, JobDeps(broken=DELETED), id="one of two deleted"),
        pytest.param([1, 7], {1: S.RUNNING}, JobDeps(broken=DELETED), id="deleted beats waiting"),
    ],
)
def test_job_deps(after: list[int], statuses: dict[int, JobStatus], expected: JobDeps) -> None:
    assert job_deps(after, statuses) == expected


@pytest.mark.parametrize(
    ("graph", "roots", "expected"),
    [
        pytest.param({0: [], 1: [0], 2: [1]}, [0], {1, 2}, id="chain"),
        pytest.param({0: [], 1: [0], 2: []}, [0], {1}, id="a stranger is left alone"),
        pytest.param({0: [], 1: [0], 2: [0], 3: [1, 2]}, [1], {3}, id="diamond from one side"),
        pytest.param({0: [], 1: [0]}, [], set(), id="no roots"),
    ],
)
def test_downstream(graph: dict[int, list[int]], roots: list[int], expected: set[int]) -> None:
    assert downstream(graph, roots) == expected


def blk(
    index: int,
    frames: str = "1-10",
    chunk: int = 1,
    *,
    after: tuple[int, ...] = (),
    after_frames: tuple[int, ...] = (),
    failed: set[int] | None = None,
    started: set[int] | None = None,
) -> BlockTasks:
    return BlockTasks(
        index=index,
        name=f"b{index}",
        layout=layout(frames, chunk),
        after=after,
        after_frames=after_frames,
        failed=frozenset(failed or ()),
        started=frozenset(started or ()),
    )


ALL10 = set(range(10))

# (blocks, expected: block index -> (upstream name, tasks that can never run))
NEVER_RUN_TABLE = [
    pytest.param([blk(0), blk(1, after=(0,))], {}, id="no failure: nothing"),
    pytest.param(
        [blk(0, failed={3}), blk(1, after=(0,))], {1: ("b0", ALL10)}, id="whole: every task"
    ),
    pytest.param(
        [blk(0, failed={3}), blk(1, after=(0,), started={0, 1}, failed={2})],
        {1: ("b0", ALL10 - {0, 1, 2})},
        id="whole: started and failed tasks are not marked",
    ),
    pytest.param(
        [blk(0, failed={0}), blk(1, after=(0,)), blk(2, after=(1,)), blk(3)],
        {1: ("b0", ALL10), 2: ("b1", ALL10)},
        id="whole: transitively, a stranger left alone",
    ),
    pytest.param(
        [blk(0, failed={0}), blk(1, after=(0,), started=ALL10), blk(2, after=(1,))],
        {},
        id="whole: a block that started everything may still finish",
    ),
    pytest.param(
        [blk(0, failed={3}), blk(1, after_frames=(0,))],
        {1: ("b0", {3})},
        id="frames: only frame 4",
    ),
    pytest.param(
        [blk(0, "1-10", 5, failed={0}), blk(1, after_frames=(0,))],
        {1: ("b0", {0, 1, 2, 3, 4})},
        id="frames: a coarse upstream task holds back five",
    ),
    pytest.param(
        [blk(0, failed={4}), blk(1, "1-10", 2, after_frames=(0,))],
        {1: ("b0", {2})},
        id="frames: a coarse downstream task needs it",
    ),
    pytest.param(
        [blk(0, "1-10", failed={0}), blk(1, "20-30", after_frames=(0,))],
        {},
        id="frames: no common frame",
    ),
    pytest.param(
        [blk(0, failed={3}), blk(1, after_frames=(0,)), blk(2, after_frames=(1,))],
        {1: ("b0", {3}), 2: ("b1", {3})},
        id="frames: transitively",
    ),
    pytest.param(
        [blk(0, failed={3}), blk(1, after_frames=(0,)), blk(2, after=(1,))],
        {1: ("b0", {3}), 2: ("b1", ALL10)},
        id="frames then whole",
    ),
    pytest.param(
        [blk(0, failed={3}), blk(1, after=(0,)), blk(2, after_frames=(1,), started={0})],
        {1: ("b0", ALL10), 2: ("b1", ALL10 - {0})},
        id="whole then frames",
    ),
    pytest.param(
        [blk(0, failed={3}), blk(1, after=(0,), started={5}), blk(2, after_frames=(1,))],
        {1: ("b0", ALL10 - {5}), 2: ("b1", ALL10 - {5})},
        id="whole then frames: a running task may still succeed",
    ),
    pytest.param(
        [blk(0, failed={3}), blk(1, after_frames=(0,), started={3})],
        {},
        id="frames: a task that already started is left alone",
    ),
]


@pytest.mark.parametrize(("blocks", "expected"), NEVER_RUN_TABLE)
def test_never_run(blocks: list[BlockTasks], expected: dict[int, tuple[str, set[int]]]) -> None:
    found = never_run(blocks)
    assert {i: (n.upstream, set(n.tasks)) for i, n in found.items()} == expected
    for n in found.values():
        assert n.reason == f"never run: block {n.upstream} cannot succeed"


@pytest.mark.parametrize("seed", range(40))
def test_never_run_frame_by_frame_is_exact(seed: int) -> None:
    """GIVEN random layouts and failures, WHEN every task that can still be done is done, THEN
    a downstream task is ready exactly when `never_run` did not mark it."""
    rng = random.Random(seed)
    specs = ["1-40", "1-40x3", "5-30", "1-10,20-40x2", "10-50"]
    up = blk(0, rng.choice(specs), rng.randint(1, 6))
    up = BlockTasks(
        index=0,
        name="b0",
        layout=up.layout,
        failed=frozenset(rng.sample(range(up.layout.task_count), k=min(2, up.layout.task_count))),
    )
    down = blk(1, rng.choice(specs), rng.randint(1, 6), after_frames=(0,))

    marked = never_run([up, down]).get(1)

    doable = [(up.layout, lambda t: t not in up.failed)]
    for task in range(down.layout.task_count):
        ready = task_ready(down.layout, task, doable)
        assert ready is (marked is None or task not in marked.tasks), task
