"""Dependencies: jobs on jobs, blocks on blocks, and tasks on tasks frame by frame.

Three kinds, all pure functions of what is done:

- job on jobs (`after`): the job waits until every job it names has succeeded;
- block on blocks of the same job: the block waits until every block it names is done;
- frame by frame: task `i` of a block waits only for the upstream tasks that hold any frame
  between task `i`'s first and last frame, so a comp can start on frame 1 while frame 100 still
  renders. An upstream block lacking those frames holds nothing back.

A cycle among blocks (or jobs) is refused when it is declared: `find_cycle` names one.

What can never run: a block that waits on a block which can never be done (one of its tasks
failed for good, or some of its tasks can never run) can never run, whole; frame by frame,
only the tasks whose frames need such an upstream task can never run (`never_run`). A job that
waits on a job which was deleted can never run either (`job_deps`): ids are never given twice,
so nothing can satisfy that dependency again.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from graphlib import TopologicalSorter
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
    from them, and holds the job back for good), or None when every one of them succeeded."""
    for job_id in after:
        status = statuses.get(job_id)
        if status is None:
            return f"waiting on job {job_id}, which was deleted"
        if status is JobStatus.SUCCEEDED:
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


@dataclass(frozen=True)
class JobDeps:
    """Where a job stands with the jobs it waits on: `waiting` says why it waits (None: it
    need not), `broken` why it never can run (a job it waits on was deleted)."""

    waiting: str | None = None
    broken: str | None = None


def job_deps(after: Iterable[int], statuses: Mapping[int, JobStatus]) -> JobDeps:
    """How the jobs in `after`, given the statuses of those that exist, hold a job back. A
    deleted job (missing from `statuses`) breaks the dependency for good, whatever the others do;
    a failed or canceled one only holds the job back (a retry may still make it succeed)."""
    ids = list(after)
    for job_id in ids:
        if job_id not in statuses:
            return JobDeps(broken=f"job {job_id}, which this job waits on, was deleted")
    return JobDeps(waiting=jobs_waiting(ids, statuses))


@dataclass(frozen=True)
class BlockTasks:
    """One block of a job as `never_run` sees it: what it waits on, and which of its tasks
    failed for good (`failed`) or started (`started`: running, succeeded or skipped). Every
    other task has not started: it waits, is queued, or was already marked as never run."""

    index: int
    name: str
    layout: TaskLayout
    after: tuple[int, ...] = ()
    after_frames: tuple[int, ...] = ()
    failed: frozenset[int] = frozenset()
    started: frozenset[int] = frozenset()

    def not_started(self) -> Iterator[int]:
        for task in range(self.layout.task_count):
            if task not in self.started and task not in self.failed:
                yield task


@dataclass(frozen=True)
class NeverRun:
    """The tasks of block `block` that can never run: each waits (whole, or frame by frame) on
    a task of block `upstream` (its name) that will never be done."""

    block: int
    upstream: str
    tasks: frozenset[int]

    @property
    def reason(self) -> str:
        return f"never run: block {self.upstream} cannot succeed"


def never_run(blocks: Sequence[BlockTasks]) -> dict[int, NeverRun]:
    """The tasks of each block that can never run, by block index (blocks with none are left
    out), while the failures in `blocks` stand.

    A task that will never be done is one failed for good, or one that can never run. A block
    waiting whole on a block with such a task can never run any task it has not started; a
    block waiting frame by frame can never run a task not started whose frames need (as
    `task_ready` asks) such a task. Running tasks may still succeed: they hold nothing back."""
    by_index = {b.index: b for b in blocks}
    order = TopologicalSorter(
        {b.index: [i for i in (*b.after, *b.after_frames) if i in by_index] for b in blocks}
    ).static_order()
    out: dict[int, NeverRun] = {}
    for index in order:
        block = by_index[index]
        found = _never_run_whole(block, by_index, out) or _never_run_frames(block, by_index, out)
        if found is not None and found.tasks:
            out[index] = found
    return out


def _never_done(block: BlockTasks, out: Mapping[int, NeverRun]) -> frozenset[int]:
    """The tasks of `block` that will never be done (those found so far in `out`)."""
    found = out.get(block.index)
    return block.failed | found.tasks if found is not None else block.failed


def _never_run_whole(
    block: BlockTasks, by_index: Mapping[int, BlockTasks], out: Mapping[int, NeverRun]
) -> NeverRun | None:
    for up in block.after:
        upstream = by_index.get(up)
        if upstream is not None and _never_done(upstream, out):
            return NeverRun(block.index, upstream.name, frozenset(block.not_started()))
    return None


def _never_run_frames(
    block: BlockTasks, by_index: Mapping[int, BlockTasks], out: Mapping[int, NeverRun]
) -> NeverRun | None:
    tasks: set[int] = set()
    upstream_name: str | None = None
    for up in block.after_frames:
        upstream = by_index.get(up)
        if upstream is None:
            continue
        blocked = _needing(block, upstream, _never_done(upstream, out), skip=tasks)
        if blocked and upstream_name is None:
            upstream_name = upstream.name
        tasks |= blocked
    return NeverRun(block.index, upstream_name, frozenset(tasks)) if upstream_name else None


def _needing(
    block: BlockTasks, upstream: BlockTasks, lost: frozenset[int], *, skip: set[int]
) -> set[int]:
    """The tasks of `block` not started (nor in `skip`) that need one of `upstream`'s tasks in
    `lost`, frame by frame."""
    if not lost:
        return set()
    bounds = [upstream.layout.task_bounds(t) for t in lost]
    low, high = min(b[0] for b in bounds), max(b[1] for b in bounds)
    needing = set()
    for task in block.not_started():
        if task in skip:
            continue
        first, last = block.layout.task_bounds(task)
        if last < low or first > high:  # no frame of a lost task can lie in between
            continue
        spans = upstream_tasks(block.layout, task, upstream.layout)
        if any(_meets(span, lost) for span in spans):
            needing.add(task)
    return needing


def _meets(span: range, tasks: frozenset[int]) -> bool:
    if len(span) <= len(tasks):
        return any(t in tasks for t in span)
    return any(t in span for t in tasks)


def downstream(graph: Mapping[K, Iterable[K]], roots: Iterable[K]) -> set[K]:
    """The nodes of `graph` (node -> the nodes it waits on) that wait, directly or through
    others, on one of `roots` (the roots themselves left out unless they wait on a root)."""
    waiters: dict[K, list[K]] = {}
    for node, ups in graph.items():
        for up in ups:
            waiters.setdefault(up, []).append(node)
    found: set[K] = set()
    stack = list(roots)
    while stack:
        for node in waiters.get(stack.pop(), ()):
            if node not in found:
                found.add(node)
                stack.append(node)
    return found
