"""The upstream OpenJD conformance job cases (60 on POSIX) run ON THE FARM, all submitted at once
to 2 workers x 2 lanes: a case passes when its job succeeds, its expected strings appear in the
job's task logs and its forbidden ones do not. Every verdict is the reference CLI's (which
passes all 60). `.invalid` cases are refused at submission with every issue located."""

from __future__ import annotations

import os
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.conftest import Farm
from tests.e2e.openjd_support import CONFORMANCE, reference_cli, start_worker, wait_final
from tests.openjd.test_openjd_conformance import _reference_verdict
from thresher.client import InvalidRequest

pytestmark = [pytest.mark.e2e, pytest.mark.openjd]


def _cases() -> list[Path]:
    cases = sorted(CONFORMANCE.glob("*/jobs/*.test.yaml")) if CONFORMANCE.is_dir() else []
    return [path for path in cases if "posix" in _load(path).get("runOn", ["posix"])]


def _load(path: Path) -> dict[str, Any]:
    return dict(yaml.safe_load(path.read_text()))


def _meets_expectations(case: Mapping[str, Any], log: str) -> bool:
    expected = case.get("expected") or {}
    wanted = [*(expected.get("output") or ()), *(expected.get("output_posix") or ())]
    forbidden = [*(expected.get("forbidden") or ()), *(expected.get("forbidden_posix") or ())]
    return all(s in log for s in wanted) and not any(s in log for s in forbidden)


def _job_log(farm: Farm, job_id: int) -> str:
    lines: list[str] = []
    with farm.client() as client:
        for block in client.job(job_id).blocks:
            for index in range(block.counts.total):
                lines += [line.text for line in client.log(job_id, index, block=block.index)]
    return "\n".join(lines)


def test_the_conformance_jobs_on_the_farm_meet_the_reference_verdicts(tmp_path: Path) -> None:
    if not CONFORMANCE.is_dir():
        pytest.skip(f"the OpenJD conformance cases are not in {CONFORMANCE}")
    cli = reference_cli()
    cases = _cases()
    assert len(cases) == 60
    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
        reference = pool.map(lambda path: _reference_verdict(cli, path), cases)
        farm = Farm(tmp_path, None)
        try:
            farm.controller()
            start_worker(farm, "c1")
            start_worker(farm, "c2")
            verdicts = _run_on_the_farm(farm, cases)
        finally:
            farm.stop_all()  # the workers exit their sessions: every exit is in the logs
        expected = dict(zip(cases, reference, strict=True))

    assert all(expected.values())  # the reference passes every case
    failing = {str(p.relative_to(CONFORMANCE)): why for p, why in verdicts.items() if why}
    assert failing == {}


def _run_on_the_farm(farm: Farm, cases: list[Path]) -> dict[Path, str | None]:
    """Why each case failed on the farm (None: it passed)."""
    jobs: dict[Path, int] = {}
    verdicts: dict[Path, str | None] = {}
    with farm.client() as client:
        for path in cases:
            case = _load(path)
            try:
                jobs[path] = client.submit_template(
                    case["template"],
                    case.get("parameters") or {},
                    env_templates=case.get("environments") or [],
                    path_mapping_rules=case.get("pathMapping") or None,
                    template_dir=str(path.parent),
                    retries=0,
                ).id
            except InvalidRequest as exc:
                located = exc.errors and all(e.get("message") for e in exc.errors)
                invalid = ".invalid" in path.name
                verdicts[path] = None if invalid and located else f"refused: {exc.message}"
            else:
                if ".invalid" in path.name:
                    verdicts[path] = "an invalid case was accepted"
    ended = wait_final(farm, jobs.values(), timeout=300)
    for worker in [p for p in farm.procs if p.log.name.startswith("worker")]:
        worker.stop()
    for path, job_id in jobs.items():
        if ended[job_id].status != "succeeded":
            verdicts[path] = f"the job {ended[job_id].status}"
        elif not _meets_expectations(_load(path), _job_log(farm, job_id)):
            verdicts[path] = "expected output missing, or forbidden output present"
        else:
            verdicts.setdefault(path, None)
    return verdicts
