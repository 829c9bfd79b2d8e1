"""The held poll's claim in a submission's transaction takes the new job from its record as
written (SQLite and PostgreSQL): no statement reads back its blocks for the dispatch index or
its payload for the locality check; and the one-task job's finish leaves the index as it was,
without a rebuild, the next submission's claim deciding from it."""

from __future__ import annotations

import pytest
from tests.controller.test_hand_out import Served, hold, served, submit
from tests.controller.test_use_case_transactions import ALICE, register
from tests.statements import statements_run

from thresher.controller.dispatch.index import DispatchIndex
from thresher.schemas import api

__all__ = ["served"]  # the fixture, used by name


def test_a_submission_claims_for_a_held_poll_without_reading_its_job_back(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    farm = served.farm
    worker = served.run(farm.call(register, farm, "w1", 1))
    rebuilds: list[int] = []
    rebuild = DispatchIndex._rebuild

    def counted(index: DispatchIndex) -> None:
        rebuilds.append(1)
        rebuild(index)

    monkeypatch.setattr(DispatchIndex, "_rebuild", counted)
    statements: list[str] = []
    built = None
    for n in range(2):
        answer = hold(served, worker)
        if built is None:
            built = len(rebuilds)  # the index was built for the first poll
        with statements_run(farm.store.db.engine) as seen:
            job_id = submit(served, f"shot{n}")
            (task,) = answer.result(timeout=10).assignments
            assert task.job_id == job_id
            finish = api.FinishIn(
                attempt_id=task.attempt_id, token=task.token, status="succeeded", exit_code=0
            )
            body = api.ReportIn(finished=[finish])
            served.run(farm.call(farm.agents.report, worker, body))
        statements += seen
        assert served.run(farm.call(farm.jobs.get, ALICE, job_id)).finished_at is not None
    back = (
        "SELECT blocks.id, blocks.job_id",
        "SELECT jobs.payload",
        "SELECT blocks.id, blocks.min",
    )
    reads = [s for s in statements if s.startswith(back)]
    # Neither the claims nor the finishes read the jobs back for dispatch, nor (PostgreSQL)
    # the finishes their blocks' fixed fields: the submission handed them over.
    assert reads == []
    assert len(rebuilds) == built  # neither finish, nor the second claim, rebuilt the index
