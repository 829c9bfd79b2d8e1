"""Dependencies: jobs on jobs, blocks on blocks, and tasks on tasks frame by frame.

Three kinds, all pure functions of what is done:

- job on jobs (`after`): the job waits until every job it names has succeeded;
- block on blocks of the same job: the block waits until every block it names is done;
- frame by frame: task `i` of a block waits only for the upstream tasks that hold any frame
  between task `i`'s first and last frame, so a comp can start on frame 1 while frame 100 still
  renders. An upstream block lacking those frames holds nothing back.

A cycle among blocks (or jobs) is refused when it is declared: `find_cycle` names one.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping, Sequence
from typing import TypeVar

from thresher.core.frames import TaskLayout
from thresher.core.states import JobStatus

K = TypeVar("K", bound=Hashable)


def find_cycle(graph: Mapping[K, Iterable[K]]) -> list[K] | None:
    """A dependency cycle of `graph` (node -> the nodes it waits on) as `[a, b, ..., a]`, or None.

    Nodes named only as targets count as nodes without dependencies."""
    finished: set[K] = set()
    for root in graph:
        if root in finished:
            continue
        path: list[K] = [root]
        on_path: set[K] = {root}
        stack: list[Iterator[K]] = [iter(graph.get(root, ()))]
        while stack:
            node = next(stack[-1], None)
            if node is None:
                done = path.pop()
                on_path.discard(done)
                finished.add(done)
                stack.pop()
            elif node in on_path:
                return [*path[path.index(node) :], node]
            elif node not in finished:
                path.append(node)
                on_path.add(node)
                stack.append(iter(graph.get(node, ())))
    return None


def upstream_tasks(down: TaskLayout, task: int, up: TaskLayout) -> list[range]:
    """The upstream tasks that task `task` of the downstream block waits for (frame by frame)."""
    first, last = down.task_bounds(task)
    return up.tasks_covering(first, last)


def task_ready(
    down: TaskLayout,
    task: int,
    upstream: Sequence[tuple[TaskLayout, Callable[[int], bool]]],
) -> bool:
    """Whether downstream task `task` may run: for each upstream block (its layout and a "task is
    done" predicate), every task covering the same frames is done."""
    for layout, done in upstream:
        for span in upstream_tasks(down, task, layout):
            if not all(done(i) for i in span):
                return False
    return True


def jobs_waiting(after: Iterable[int], statuses: Mapping[int, JobStatus]) -> str | None:
    """Why a job waits on the jobs in `after`, given their statuses (a deleted job is missing
    and holds nothing back), or None when every one of them succeeded."""
    for job_id in after:
        status = statuses.get(job_id)
        if status is None or status is JobStatus.SUCCEEDED:
            continue
        if status in (JobStatus.FAILED, JobStatus.CANCELED):
            return f"waiting on job {job_id}, which {status.value}"
        return f"waiting on job {job_id}"
    return None


def blocks_waiting(
    after: Iterable[int], done: Mapping[int, bool], names: Mapping[int, str] | None = None
) -> str | None:
    """Why a block waits on the blocks in `after` (indices), or None when all of them are done."""
    for index in after:
        if not done.get(index, True):
            label = (names or {}).get(index, str(index))
            return f"waiting on block {label}"
    return None
