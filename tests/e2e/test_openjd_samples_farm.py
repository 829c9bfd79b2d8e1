"""The runnable OpenJD samples on a farm of 2 workers (2 lanes each), compared task by task with
`openjd run`: each task's output and outcome are the reference's for that task, the environment
actions a task's session ran are the reference's, and host requirements pick the workers."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import Farm
from tests.e2e.openjd_support import (
    SAMPLES,
    actions_of,
    normalised,
    reference_cli,
    start_worker,
    task_texts,
    wait_final,
)
from tests.openjd.conftest import ReferenceCli
from thresher.openjd import plan_job

pytestmark = [pytest.mark.e2e, pytest.mark.openjd]

if not SAMPLES.is_dir():
    pytest.skip(
        f"the OpenJD samples are not at {SAMPLES} (../shared beside the checkout; CI has it)",
        allow_module_level=True,
    )
JOBS = SAMPLES / "v2023-09" / "job_templates"
ENVS = SAMPLES / "v2023-09" / "environment_templates"
RULES = [
    {"source_path_format": "POSIX", "source_path": "/mnt/drive", "destination_path": "/local/d"},
    {"source_path_format": "POSIX", "source_path": "/mnt/shared", "destination_path": "/srv/s"},
]
NO_NETWORK = {"PIP_NO_INDEX": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}

SHOW_ENVIRONMENT = """
specificationVersion: jobtemplate-2023-09
name: ShowEnvironment
steps:
- name: Show
  parameterSpace:
    taskParameterDefinitions:
    - {name: N, type: INT, range: "1-3"}
  script:
    actions:
      onRun:
        command: bash
        args:
        - -c
        - >-
          echo "task {{Task.Param.N}}";
          echo "license=${ADSKFLEX_LICENSE_FILE:-unset} foundry=${foundry_LICENSE:-unset}";
          echo "venv=${VIRTUAL_ENV:+set}"
"""


@dataclass
class Case:
    name: str
    template: Path
    params: dict[str, Any] = field(default_factory=dict)
    envs: list[Path] = field(default_factory=list)
    rules: list[dict[str, str]] | None = None
    attempts: dict[str, set[str]] | None = None  # step -> the workers that may run it
    job_id: int = 0
    replace: dict[str, str] = field(default_factory=dict)


@pytest.fixture(scope="module")
def openjd_farm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Farm]:
    """2 workers x 2 lanes; their facts and labels let host-requirements' steps pick one each."""
    farm = Farm(tmp_path_factory.mktemp("openjd-farm"), None)
    try:
        farm.controller()
        small = {"cores": "1", "ram": str(512 * 2**20), "custom.host_config": "HostConfigA"}
        large = {"cores": "8", "ram": str(16 * 2**30), "custom.host_config": "HostConfigB"}
        start_worker(farm, "small", attrs=small)
        start_worker(farm, "large", attrs=large)
        yield farm
    finally:
        farm.stop_all()


@pytest.fixture(scope="module")
def frames(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Ten small PNG frames for the ffmpeg samples."""
    folder = tmp_path_factory.mktemp("frames")
    source = ["-f", "lavfi", "-i", "testsrc=size=64x64:rate=24", "-frames:v", "10"]
    subprocess.run(
        ["ffmpeg", "-loglevel", "error", *source, str(folder / "frame.%04d.png")],
        check=True,
        timeout=60,
    )
    return folder


def _cases(tmp: Path, frames: Path) -> list[Case]:
    show = tmp / "show-environment.yaml"
    show.write_text(SHOW_ENVIRONMENT)
    cases = []
    for suffix in ("yaml", "json"):
        out = tmp / f"ffmpeg-{suffix}"
        out.mkdir()
        cases.append(
            Case(
                f"ffmpeg.{suffix}",
                JOBS / f"ffmpeg.{suffix}",
                {"InputFile": str(frames / "frame.%04d.png"), "OutputDir": str(out)},
                replace={str(out): "<OUT>"},
            )
        )
        cases[-1].params["EndFrame"] = 10
    return [
        *cases,
        Case("stdout-messages", JOBS / "stdout-messages.yaml"),
        Case("path-mapping", JOBS / "path-mapping.yaml"),
        Case("path-mapping-mapped", JOBS / "path-mapping.yaml", rules=RULES),
        Case(
            "showcase",
            JOBS / "task-parameter-definition-showcase.yaml",
            {"PathValue": "/mnt/shared/value"},
            rules=RULES,
        ),
        Case(
            "host-requirements",
            JOBS / "host-requirements.yaml",
            attempts={"StepOne": {"small"}, "StepTwo": {"large"}},
        ),
        Case("expr-test-job", SAMPLES / "expr-test-job.yaml"),
        Case(
            "expr-test-job-final",
            SAMPLES / "expr-test-job.yaml",
            {"FrameStart": 3, "FrameEnd": 6, "Quality": "final"},
        ),
        Case("environment-variables", show, envs=[ENVS / "environment-variables.yaml"]),
        Case("python-venv", show, envs=[ENVS / "python-venv.yaml"]),
    ]


def test_the_runnable_samples_run_as_openjd_run_does(
    openjd_farm: Farm,
    frames: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    reference = reference_cli()
    for name, value in NO_NETWORK.items():  # python-venv upgrades pip: both sides offline
        monkeypatch.setenv(name, value)
    cases = _cases(tmp_path, frames)
    with openjd_farm.client() as client:
        for case in cases:
            case.job_id = client.submit_template(
                case.template.read_text(),
                case.params,
                env_templates=[e.read_text() for e in case.envs],
                template_dir=str(case.template.parent),
                path_mapping_rules=case.rules,
                env=NO_NETWORK,
                retries=0,
                name=case.name,
            ).id
    jobs = wait_final(openjd_farm, [c.job_id for c in cases], timeout=240)

    for case in cases:
        _compare(openjd_farm, case, jobs[case.job_id], reference, tmp_path)


def _compare(farm: Farm, case: Case, job: Any, reference: ReferenceCli, tmp: Path) -> None:
    plan = plan_job(
        case.template.read_text(),
        case.params,
        env_templates=[e.read_text() for e in case.envs],
        template_dir=case.template.parent,
    )
    with farm.client() as client:
        attempts = client.attempts(case.job_id)
    assert len(attempts) == sum(s.task_count for s in plan.steps), case.name  # no retries
    by_task = {(a.block, a.index): a for a in attempts}
    for step in plan.steps:
        params = [step.task_parameters(i) for i in range(step.task_count)]
        ref_out = tmp / f"ref-{case.name}-{step.index}"
        ref_out.mkdir()
        replace = dict(case.replace)
        ref_params = dict(case.params)
        if "OutputDir" in ref_params and case.replace:
            # The reference writes elsewhere: ffmpeg will not overwrite the farm's output.
            ref_params["OutputDir"] = str(ref_out)
            replace[str(ref_out)] = "<OUT>"
            if step.dependencies:
                _copy_outputs(Path(str(case.params["OutputDir"])), ref_out)
        expected = reference.run(
            case.template,
            step=step.name,
            params=ref_params,
            tasks=params,
            environments=case.envs,
            path_mapping_rules=case.rules,
        )
        theirs = normalised(actions_of(expected.messages), replace)
        ran = [output for title, output in theirs if title == "Running Task"]
        for index in range(step.task_count):
            attempt = by_task[(step.index, index)]
            ours = normalised(actions_of(task_texts(farm, case.job_id, step.index, index)), replace)
            tasks_ours = [output for title, output in ours if title == "Running Task"]
            where = f"{case.name} step {step.name!r} task {index}"
            assert len(tasks_ours) == 1, where
            if index < len(ran):
                succeeded = expected.succeeded or index < len(ran) - 1
                assert tasks_ours[0] == ran[index], where
            else:  # the reference stopped at an earlier failure: run this task alone
                alone = reference.run(
                    case.template,
                    step=step.name,
                    params=ref_params,
                    tasks=[params[index]],
                    environments=case.envs,
                    path_mapping_rules=case.rules,
                )
                succeeded = alone.succeeded
                mine = normalised(actions_of(alone.messages), replace)
                assert tasks_ours == [o for t, o in mine if t == "Running Task"], where
            assert (attempt.status == "succeeded") == succeeded, where
            # Environment actions this task's session ran are the reference's, output and all.
            for action in ours:
                if action[0] != "Running Task":
                    assert action in theirs, f"{where}: {action}"
            if case.attempts is not None:
                assert attempt.worker in case.attempts[step.name], where
    assert job.status == "succeeded", case.name


def _copy_outputs(source: Path, target: Path) -> None:
    # A later step reads what the first step wrote (webm and prores encode h264's movie).
    for path in source.glob("*"):
        if path.is_file():
            (target / path.name).write_bytes(path.read_bytes())


def test_status_and_progress_reach_the_attempt(openjd_farm: Farm) -> None:
    with openjd_farm.client() as client:
        job = client.submit_template((JOBS / "stdout-messages.yaml").read_text(), retries=0)
        wait_final(openjd_farm, [job.id], timeout=60)
        [attempt] = client.attempts(job.id)
        task = client.task(job.id, 0)
    assert attempt.status == "succeeded"
    assert attempt.progress == 100.0
    assert task.progress == 100.0
    assert attempt.status_message == "Processing the things"


EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.mark.renderers
def test_blender_ffmpeg_renders_its_frames_and_the_encode_fails_cleanly(
    openjd_farm: Farm, tmp_path: Path
) -> None:
    if shutil.which("blender") is None or shutil.which("ffmpeg") is None:
        pytest.skip("needs blender and ffmpeg (make deps)")
    scene = tmp_path / "scene.blend"
    script = str(EXAMPLES / "make_blender_scene.py")
    small = ["--frames", "3", "--width", "48", "--height", "27", "--samples", "1"]
    subprocess.run(
        ["blender", "-b", "--factory-startup", "--python", script, "--", str(scene), *small],
        check=True,
        capture_output=True,
        timeout=120,
    )
    out = tmp_path / "out"
    with openjd_farm.client() as client:
        job = client.submit_template(
            (JOBS / "blender-ffmpeg.yaml").read_text(),
            {"BlenderFile": str(scene), "OutputDir": str(out), "EndFrame": 3},
            retries=0,
        )
    [ended] = wait_final(openjd_farm, [job.id], timeout=240).values()
    with openjd_farm.client() as client:
        attempts = {(a.block, a.index): a for a in client.attempts(job.id)}

    # The frames are rendered (Blender names them .png)...
    assert sorted(p.name for p in out.iterdir()) == [f"render-{n:04d}.png" for n in (1, 2, 3)]
    assert attempts[(0, 0)].status == "succeeded"
    # ...and the encode looks for render-%04d.PNG: a clean task failure, not a crash.
    encode = attempts[(1, 0)]
    assert (encode.status, encode.exit_code) == ("failed", 1)
    assert encode.message == "task failed with exit code 1"
    log = task_texts(openjd_farm, job.id, 1, 0)
    assert any("render-%04d.PNG" in line and "No such file" in line for line in log)
    assert ended.status == "failed"
