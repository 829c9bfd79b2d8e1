"""The snapshot's records as `core.dispatch` sees them: pure conversions, no I/O.

A block becomes a `BlockView` (its filters parsed, its error hosts and dependencies decided), a
worker its `WorkerFacts`; the error-host thresholds are a block's own, else the controller's.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, TypeVar

from thresher.controller.settings import ControllerSettings
from thresher.core.dispatch import BlockView, FarmView
from thresher.core.error_hosts import ErrorPolicy, HostFailure, counting_failures
from thresher.core.errors import InvalidInput
from thresher.core.filters import FilterSet, OperatingSystem, WorkerFacts, parse_filters
from thresher.core.model import JobRecord
from thresher.store.scheduling import UserRecord
from thresher.store.snapshot import DispatchSnapshot, SnapBlock, SnapWorker


def block_policy(
    settings: ControllerSettings, *, errors_to_avoid: int | None, forgive_s: float | None
) -> ErrorPolicy:
    """The error-host policy of a block: its own thresholds, else the controller's."""
    return ErrorPolicy(
        errors_to_avoid=errors_to_avoid or settings.errors_to_avoid,
        forgive_s=forgive_s or settings.forgive_s,
        sick_jobs=settings.sick_jobs,
        sick_window_s=settings.sick_window_s,
        sick_owners=settings.sick_owners,
    )


def controller_policy(settings: ControllerSettings) -> ErrorPolicy:
    """The controller's error-host policy (what makes a worker sick)."""
    return block_policy(settings, errors_to_avoid=None, forgive_s=None)


def worker_facts(w: SnapWorker) -> WorkerFacts:
    """What filters see of a worker."""
    return WorkerFacts.create(
        w.hostname,
        w.site,
        os=_os_or_linux(w.os),
        cores=w.cores,
        ram_bytes=w.ram_bytes,
        gpus=w.gpus,
        pools=w.pools,
        labels=w.labels,
    )


def _os_or_linux(name: str) -> str:
    # Filters know linux, windows and mac; another Unix (a BSD) is closest to linux for `os:`.
    try:
        return OperatingSystem.parse(name).value
    except ValueError:
        return OperatingSystem.LINUX.value


def block_filters(text: str) -> tuple[FilterSet, str | None]:
    """The parsed filters, or why the job runs nowhere: filters are refused at submission, so
    only a stored filter that this version no longer reads ends up here."""
    try:
        return parse_filters(text), None
    except InvalidInput as exc:
        return FilterSet(), f"its filters cannot be read: {exc.message}"


def block_view(
    b: SnapBlock,
    user: UserRecord | None,
    *,
    filters: FilterSet,
    waiting: str | None,
    avoids: frozenset[int],
) -> BlockView:
    """The block as `core.dispatch` ranks it; `user`: its owner's settings, if any."""
    return BlockView(
        job_id=b.job_id,
        block_id=b.block_id,
        owner=b.owner,
        job_priority=b.priority,
        submitted_at=b.created_at,
        block_index=b.index,
        user_priority=user.priority if user else 0,
        runs=b.engine or b.kind,
        filters=filters,
        capacity=b.capacity,
        limits=b.limits,
        max_running=b.max_running,
        max_running_per_host=b.max_running_per_host,
        user_max_running=user.max_running if user else None,
        waiting=waiting,
        avoids=avoids,
        preempt=b.preempt,
        runnable=b.runnable,
    )


_T = TypeVar("_T")


def changed(record: _T, **changes: Any) -> _T:
    """A copy of a frozen dataclass without `__post_init__` with `changes` to its fields, as
    `dataclasses.replace` makes it, without that function's look at every field (several
    microseconds for a record of many fields, on the path of every poll)."""
    assert not hasattr(record, "__post_init__")
    copy = object.__new__(type(record))
    fields = copy.__dict__
    fields.update(record.__dict__)
    for name, value in changes.items():
        if name not in fields:
            raise TypeError(f"{type(record).__name__} has no field {name!r}")
        fields[name] = value
    return copy


@dataclass(frozen=True)
class LiveFarmView(FarmView):
    """A `FarmView` over the index's own mappings (read-only views, no copies): it follows
    the counts as claims and finishes move them."""

    def __post_init__(self) -> None:
        for name in ("running_by_job", "running_by_user", "limits", "pool_includers"):
            object.__setattr__(self, name, MappingProxyType(getattr(self, name)))


def waiting_on_failures(blocks: Sequence[SnapBlock]) -> set[int]:
    """Jobs with a block that waits, whole, on a block with tasks failed (or never to run) and
    still has tasks to dispatch: those tasks can never run and are yet to be marked so."""
    failing = {(b.job_id, b.index) for b in blocks if b.n_failed or b.n_canceled}
    return {
        b.job_id
        for b in blocks
        if b.runnable > 0 and any((b.job_id, up) in failing for up in b.after)
    }


def snapshot_failures(snap: DispatchSnapshot, now: float) -> dict[Any, list[HostFailure]]:
    """The snapshot's host errors that count towards sickness, by worker id: those of blocks
    that succeeded on another worker or failed on no other (`core.error_hosts`)."""
    failures = [
        HostFailure(
            host=e.worker_id,
            job=e.job_id,
            owner=snap.error_owners.get(e.job_id, ""),
            block=e.block_id,
            at=e.at,
            succeeded_elsewhere=(e.block_id, e.worker_id) in snap.succeeded_elsewhere,
        )
        for e in snap.errors
    ]
    return counting_failures(failures, now)


def sum_by(counts: Mapping[tuple[int, str], int], part: int) -> Counter[Any]:
    out: Counter[Any] = Counter()
    for key, n in counts.items():
        out[key[part]] += n
    return out


def snap_blocks_of(job: JobRecord) -> tuple[SnapBlock, ...] | None:
    """The blocks of a job just written as the snapshot reads them (`Snapshot.job_blocks`),
    from its record (`Jobs.add`: values as they read back); None where the record does not
    say all of it (a block with run times already: their sum and count are not kept)."""
    s = job.spec
    if any(b.mean_runtime_s is not None for b in job.blocks):
        return None
    return tuple(
        SnapBlock(
            block_id=b.id,
            job_id=job.id,
            index=b.index,
            name=b.spec.name,
            frames=b.spec.frames,
            chunk=b.spec.chunk,
            priority_frames=b.spec.priority_frames,
            preview_every=b.spec.preview_every,
            task_count=b.spec.task_count,
            cursor=b.cursor,
            n_queued=b.counts.queued,
            n_running=b.counts.running,
            n_done=b.counts.done,
            n_failed=b.counts.failed,
            n_canceled=b.counts.canceled,
            runtime_sum=0.0,
            runtime_n=0,
            engine=b.spec.engine,
            capacity=b.spec.capacity,
            limits=tuple(b.spec.limits),
            after=tuple(b.spec.after),
            after_frames=tuple(b.spec.after_frames),
            errors_to_avoid=b.spec.errors_to_avoid,
            forgive_s=b.spec.forgive_s,
            owner=s.owner,
            priority=s.priority,
            kind=s.kind,
            paused=s.paused,
            filters=",".join(f for f in (s.filters, b.spec.host_filters) if f),
            max_running=s.max_running,
            max_running_per_host=s.max_running_per_host,
            preempt=s.preempt,
            created_at=job.created_at,
            job_after=tuple(s.after),
            min_runtime_s=b.spec.min_runtime_s,
        )
        for b in job.blocks
    )
