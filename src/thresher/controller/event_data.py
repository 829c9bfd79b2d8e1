"""What events carry, computed once per look for every stream: a job's summary (its state,
counts, estimate, and each block's) and a block's task runs. Pages update from these without
asking the controller again, so a hundred open pages cost about what one does."""

from __future__ import annotations

from typing import Any

from thresher.core.eta import job_estimates
from thresher.core.model import JobRecord
from thresher.store.store import Store

#: A block fragmented into more runs than this is sent without them: the page asks for them.
MAX_RUNS_IN_EVENT = 2000


def job_summary(job: JobRecord) -> dict[str, Any]:
    """The fields of `JobOut` that change as a job runs, with its blocks' counts and ETA."""
    estimate, blocks = job_estimates(job)
    return {
        "id": job.id,
        "status": job.status.value,
        "status_reason": job.status_reason,
        "paused": job.spec.paused,
        "priority": job.spec.priority,
        "finished_at": job.finished_at,
        "counts": job.counts.as_dict(),
        "eta_s": estimate.eta_s,
        "blocks": [
            {
                "index": b.index,
                "counts": b.counts.as_dict(),
                "mean_runtime_s": b.mean_runtime_s,
                "eta_s": e.eta_s,
            }
            for b, e in zip(job.blocks, blocks, strict=True)
        ],
    }


def block_runs(store: Store, job_id: int, block: int) -> dict[str, Any]:
    """A block's task runs as `GET .../blocks/{b}/runs` answers them (without them, `runs`
    null, past MAX_RUNS_IN_EVENT)."""
    total, runs = store.monitor.runs(job_id, block)
    out: dict[str, Any] = {"job_id": job_id, "block": block, "task_count": total, "runs": None}
    if len(runs) > MAX_RUNS_IN_EVENT:
        return out
    ends = sorted({i for r in runs for i in (r.first, r.last)})
    frames = store.monitor.task_frames(job_id, block, ends)
    out["runs"] = [
        {
            "status": r.status,
            "first": r.first,
            "last": r.last,
            "first_frames": frames.get(r.first, []),
            "last_frames": frames.get(r.last, []),
        }
        for r in runs
    ]
    return out
