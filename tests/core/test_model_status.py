"""Table tests for a job's derived status and the reason a failed job gives."""

from __future__ import annotations

import pytest

from thresher.core.model import Counts, derive_job_status, failure_reason
from thresher.core.states import JobStatus

S = JobStatus


def counts(**kw: int) -> Counts:
    return Counts(**{"total": 10, **kw})


# (counts, flags, status)
STATUS_TABLE = [
    pytest.param(counts(), {}, S.QUEUED, id="nothing started"),
    pytest.param(counts(succeeded=10), {}, S.SUCCEEDED, id="all done"),
    pytest.param(counts(succeeded=5, skipped=5), {}, S.SUCCEEDED, id="skipped count as done"),
    pytest.param(counts(running=1, failed=1), {}, S.RUNNING, id="a running task may succeed"),
    pytest.param(counts(failed=1), {}, S.QUEUED, id="a failure, other tasks still to run"),
    pytest.param(counts(failed=1, succeeded=9), {}, S.FAILED, id="a failure, nothing left"),
    pytest.param(
        counts(failed=1, canceled=9), {}, S.FAILED, id="a failure, the rest can never run"
    ),
    pytest.param(
        counts(failed=1, canceled=4, queued=5), {}, S.QUEUED, id="a failure, others still run"
    ),
    pytest.param(counts(failed=1, canceled=9), {"paused": True}, S.PAUSED, id="paused"),
    pytest.param(counts(failed=10), {"canceled": True}, S.CANCELED, id="canceled first"),
    pytest.param(counts(), {"deps_pending": True}, S.WAITING, id="waiting on jobs"),
    pytest.param(counts(), {"deps_broken": True}, S.FAILED, id="a job it waits on was deleted"),
    pytest.param(
        counts(), {"deps_broken": True, "deps_pending": True}, S.FAILED, id="broken beats waiting"
    ),
    pytest.param(counts(succeeded=10), {"deps_broken": True}, S.SUCCEEDED, id="done is done"),
]


@pytest.mark.parametrize(("c", "flags", "expected"), STATUS_TABLE)
def test_derive_job_status(c: Counts, flags: dict[str, bool], expected: JobStatus) -> None:
    args = {"paused": False, "canceled": False, "deps_pending": False, **flags}
    assert derive_job_status(counts=c, **args) is expected


@pytest.mark.parametrize(
    ("blocks", "reason"),
    [
        pytest.param([("a", counts(succeeded=10))], None, id="nothing failed"),
        pytest.param([("a", counts(failed=1, succeeded=9))], "1 task of block a failed", id="one"),
        pytest.param(
            [("render", counts(failed=2, succeeded=8)), ("comp", counts(canceled=10))],
            "2 tasks of block render failed; 10 tasks of block comp never ran",
            id="failed, then the blocks that never ran",
        ),
    ],
)
def test_failure_reason(blocks: list[tuple[str, Counts]], reason: str | None) -> None:
    assert failure_reason(blocks) == reason
