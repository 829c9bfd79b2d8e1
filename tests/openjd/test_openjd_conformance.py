"""The upstream OpenJD conformance cases (read in place from the shared folder).

- `*/job_templates/*.yaml` must be accepted, `*.invalid.yaml` refused (as `openjd check` does).
- `*/jobs/*.test.yaml` run through plan_job and the session runner, every step in dependency order
  and every task, in one session like `openjd run`: the expected strings must appear in the log and
  the forbidden ones must not. `.invalid` cases must be refused by plan_job with a clear error.
  The verdict must be the reference CLI's when THRESHER_OPENJD_CLI is set, the case's otherwise.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml

from thresher.openjd import (
    JobPlan,
    LogLine,
    OpenJDSessionRunner,
    StepPlan,
    TemplateError,
    load_environment_template,
    load_template,
    plan_job,
)

if TYPE_CHECKING:
    from tests.openjd.conftest import ReferenceCli

pytestmark = pytest.mark.openjd

CONFORMANCE = (
    Path(__file__).resolve().parents[2] / ".." / "shared" / "openjd-conformance"
).resolve()


def _job_cases() -> list[Path]:
    cases = sorted(CONFORMANCE.glob("*/jobs/*.test.yaml")) if CONFORMANCE.is_dir() else []
    return [path for path in cases if "posix" in _load(path).get("runOn", ["posix"])]


def _template_cases() -> list[Path]:
    if not CONFORMANCE.is_dir():
        return []
    return sorted(CONFORMANCE.glob("*/job_templates/*.yaml")) + sorted(
        CONFORMANCE.glob("*/env_templates/*.yaml")
    )


def _load(path: Path) -> dict[str, Any]:
    return dict(yaml.safe_load(path.read_text()))


def _id(path: Path) -> str:
    return path.relative_to(CONFORMANCE).as_posix()


def test_the_posix_job_cases_are_all_here(conformance_dir: Path) -> None:
    assert len(_job_cases()) == 60


@pytest.mark.parametrize("path", _template_cases(), ids=_id)
def test_template_case(
    path: Path, conformance_dir: Path, request: pytest.FixtureRequest, assert_same_issues: Any
) -> None:
    load = load_environment_template if path.parent.name == "env_templates" else load_template
    try:
        load(path.read_text())
    except TemplateError as exc:
        errors = exc.errors
    else:
        errors = []

    assert bool(errors) == (".invalid" in path.name)
    assert all(issue.message for issue in errors)
    if os.environ.get("THRESHER_OPENJD_CLI"):
        reference: ReferenceCli = request.getfixturevalue("reference")
        checked = reference.check(path)
        assert checked.succeeded == (not errors)
        assert_same_issues(errors, checked.text)


@pytest.fixture(scope="module")
def reference_verdicts(
    conformance_dir: Path, request: pytest.FixtureRequest
) -> Mapping[Path, bool] | None:
    """Whether the reference CLI meets each job case (run in parallel: each takes a second)."""
    if not os.environ.get("THRESHER_OPENJD_CLI"):
        return None
    cli: ReferenceCli = request.getfixturevalue("reference")
    cases = _job_cases()
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        verdicts = list(pool.map(lambda path: _reference_verdict(cli, path), cases))
    return dict(zip(cases, verdicts, strict=True))


@pytest.mark.parametrize("path", _job_cases(), ids=_id)
def test_job_case(
    path: Path,
    conformance_dir: Path,
    reference_verdicts: Mapping[Path, bool] | None,
    tmp_path: Path,
) -> None:
    case = _load(path)
    parameters = case.get("parameters") or {}
    environments = case.get("environments") or []
    if ".invalid" in path.name:
        with pytest.raises(TemplateError) as refused:
            plan_job(case["template"], parameters, env_templates=environments)
        assert refused.value.errors
        assert all(issue.message for issue in refused.value.errors)
        verdict = True
    else:
        plan = plan_job(
            case["template"], parameters, env_templates=environments, template_dir=path.parent
        )
        succeeded, log = _run_job(plan, tmp_path, case.get("pathMapping") or ())
        verdict = succeeded and _meets_expectations(case, log)

    expected = True if reference_verdicts is None else reference_verdicts[path]
    assert verdict == expected


def _run_job(plan: JobPlan, working_dir: Path, rules: Any) -> tuple[bool, str]:
    lines: list[LogLine] = []
    with OpenJDSessionRunner(
        plan, working_dir=working_dir, path_mapping_rules=rules, on_log_line=lines.append
    ) as runner:
        for step in _dependency_order(plan.steps):
            for index in range(step.task_count):
                outcome = runner.run_task(step.name, step.task_parameters(index))
                if not outcome.succeeded:
                    runner.close()
                    return False, "\n".join(line.text for line in lines)
    return True, "\n".join(line.text for line in lines)


def _dependency_order(steps: tuple[StepPlan, ...]) -> list[StepPlan]:
    done: set[str] = set()
    order: list[StepPlan] = []
    while len(order) < len(steps):
        for step in steps:
            if step.name not in done and set(step.dependencies) <= done:
                order.append(step)
                done.add(step.name)
                break
    return order


def _meets_expectations(case: Mapping[str, Any], log: str) -> bool:
    expected = case.get("expected") or {}
    wanted = [*(expected.get("output") or ()), *(expected.get("output_posix") or ())]
    forbidden = [*(expected.get("forbidden") or ()), *(expected.get("forbidden_posix") or ())]
    return all(s in log for s in wanted) and not any(s in log for s in forbidden)


def _reference_verdict(cli: ReferenceCli, path: Path) -> bool:
    case = _load(path)
    with tempfile.TemporaryDirectory() as folder:
        template = Path(folder) / "template.yaml"
        template.write_text(yaml.safe_dump(case["template"]))
        environments = []
        for i, environment in enumerate(case.get("environments") or []):
            environments.append(Path(folder) / f"environment-{i}.yaml")
            environments[-1].write_text(json.dumps(environment))
        result = cli.run(
            template,
            params=case.get("parameters") or {},
            environments=environments,
            path_mapping_rules=case.get("pathMapping"),
        )
    if ".invalid" in path.name:
        return not result.succeeded
    return result.succeeded and _meets_expectations(case, "\n".join(result.messages))
