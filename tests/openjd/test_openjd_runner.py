"""The session runner runs the samples' tasks as `openjd run` does: same process output per action
(environment enters and exits, tasks), same outcome. Also: directives reach the callbacks, a
session is reused across tasks and restarted after a failure, and cancel is the session's own."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from thresher.openjd import LogLine, LogSource, OpenJDSessionRunner, TaskOutcome, plan_job

if TYPE_CHECKING:
    from tests.openjd.conftest import ReferenceCli

pytestmark = pytest.mark.openjd

SAMPLES = (Path(__file__).resolve().parents[2] / ".." / "shared" / "openjd-samples").resolve()
JOBS = "v2023-09/job_templates"
ENVS = "v2023-09/environment_templates"

DRIVE_RULES = [
    {"source_path_format": "POSIX", "source_path": "/mnt/drive", "destination_path": "/local/d"},
    {"source_path_format": "POSIX", "source_path": "/mnt/shared", "destination_path": "/srv/s"},
]

# A job of our own that shows what the environment templates set up.
SHOW_ENVIRONMENT = """
specificationVersion: jobtemplate-2023-09
name: ShowEnvironment
steps:
- name: Show
  parameterSpace:
    taskParameterDefinitions:
    - {name: N, type: INT, range: "1-2"}
  script:
    actions:
      onRun:
        command: bash
        args:
        - -c
        - >-
          echo "task {{Task.Param.N}}";
          echo "license=${ADSKFLEX_LICENSE_FILE:-unset} foundry=${foundry_LICENSE:-unset}";
          echo "venv=${VIRTUAL_ENV:-none}"
"""


SESSION_JOB = """
specificationVersion: jobtemplate-2023-09
name: SessionJob
parameterDefinitions:
- {name: FailAt, type: INT, default: 0}
jobEnvironments:
- name: JobEnv
  script:
    actions:
      onEnter:
        command: bash
        args: ["-c", "echo enter-job; echo 'openjd_env: FROM_JOB_ENV=yes'"]
      onExit:
        command: bash
        args: ["-c", "echo exit-job"]
steps:
- name: A
  parameterSpace:
    taskParameterDefinitions:
    - {name: N, type: INT, range: "1-3"}
  stepEnvironments:
  - name: StepEnvA
    script:
      actions:
        onEnter: {command: bash, args: ["-c", "echo enter-a"]}
        onExit: {command: bash, args: ["-c", "echo exit-a"]}
  script:
    actions:
      onRun:
        command: bash
        args:
        - -c
        - >-
          echo "task a{{Task.Param.N}} env=$FROM_JOB_ENV";
          if [ {{Task.Param.N}} = {{Param.FailAt}} ]; then
          echo "openjd_fail: task {{Task.Param.N}} gave up"; exit 3; fi
- name: B
  dependencies: [{dependsOn: A}]
  stepEnvironments:
  - name: StepEnvB
    script:
      actions:
        onEnter: {command: bash, args: ["-c", "echo enter-b"]}
        onExit: {command: bash, args: ["-c", "echo exit-b"]}
  script:
    actions:
      onRun: {command: bash, args: ["-c", "echo task b"]}
"""

REDACTED_SECRETS = """
specificationVersion: jobtemplate-2023-09
extensions: [REDACTED_ENV_VARS]
name: Secrets
jobEnvironments:
- name: Vault
  script:
    actions:
      onEnter:
        command: bash
        args: ["-c", "echo 'openjd_redacted_env: TOKEN=hunter22'; echo 'openjd_env: PLAIN=visible'"]
steps:
- name: Use
  script:
    actions:
      onRun: {command: bash, args: ["-c", "echo token=$TOKEN plain=$PLAIN"]}
"""

# Templates of our own, written to a file for the reference CLI.
INLINE = {
    "SHOW_ENVIRONMENT": SHOW_ENVIRONMENT,
    "SESSION_JOB": SESSION_JOB,
    "REDACTED_SECRETS": REDACTED_SECRETS,
}


class Recorder:
    def __init__(self) -> None:
        self.lines: list[LogLine] = []
        self.progress: list[float] = []
        self.status: list[str] = []

    def runner(self, plan: Any, working_dir: Path, **options: Any) -> OpenJDSessionRunner:
        return OpenJDSessionRunner(
            plan,
            working_dir=working_dir,
            on_log_line=self.lines.append,
            on_progress=self.progress.append,
            on_status=self.status.append,
            **options,
        )

    @property
    def texts(self) -> list[str]:
        return [line.text for line in self.lines]


def _case(
    template: str,
    step: str,
    indices: Sequence[int],
    *,
    params: dict[str, Any] | None = None,
    envs: Sequence[str] = (),
    rules: list[dict[str, str]] | None = None,
) -> Any:
    name = f"{Path(template).stem}-{step}-{'-'.join(map(str, indices))}"
    if params:
        name += "-" + "-".join(f"{k}={v}" for k, v in params.items())
    if envs:
        name += "-" + "-".join(Path(e).stem for e in envs)
    if rules:
        name += "-mapped"
    return pytest.param(template, step, list(indices), params or {}, list(envs), rules, id=name)


SHOWCASE = f"{JOBS}/task-parameter-definition-showcase.yaml"
SHOWCASE_STEPS = {
    "Basic integer range expression": 100,
    "Range is a format string": 100,
    "Integer range expression with a skip value": 10,
    "Compound integer range expression": 20,
    "List of integer values": 4,
    "List of float values": 5,
    "List of string values": 3,
    "List of path values": 3,
    "Cartesian product": 6,
    "Association": 3,
    "Mix of operators": 6,
    "Mix of operators two": 4,
}

CASES = [
    _case(f"{JOBS}/stdout-messages.yaml", "Demo", [0]),
    _case(f"{JOBS}/path-mapping.yaml", "PrintRules", [0]),
    _case(f"{JOBS}/path-mapping.yaml", "PrintRules", [0], rules=DRIVE_RULES),
    _case(f"{JOBS}/host-requirements.yaml", "StepOne", [0]),
    _case(f"{JOBS}/host-requirements.yaml", "StepTwo", [0]),
    _case("expr-test-job.yaml", "Render", [0, 4, 9]),
    _case("expr-test-job.yaml", "Render", [0, 1], params={"FrameStart": 2, "Quality": "final"}),
    *(
        _case(
            SHOWCASE,
            step,
            sorted({0, count // 2, count - 1}),
            params={"PathValue": "/mnt/shared/value"},
            rules=DRIVE_RULES,
        )
        for step, count in SHOWCASE_STEPS.items()
    ),
    _case("SHOW_ENVIRONMENT", "Show", [0, 1], envs=[f"{ENVS}/environment-variables.yaml"]),
    _case("SHOW_ENVIRONMENT", "Show", [0], envs=[f"{ENVS}/python-venv.yaml"]),
    _case("SESSION_JOB", "A", [0, 1, 2]),
    _case("SESSION_JOB", "A", [0, 1, 2], params={"FailAt": 2}),
    _case("SESSION_JOB", "B", [0], envs=[f"{ENVS}/environment-variables.yaml"]),
    _case("REDACTED_SECRETS", "Use", [0]),
]


@pytest.mark.parametrize(("template", "step", "indices", "params", "envs", "rules"), CASES)
def test_tasks_match_openjd_run(
    template: str,
    step: str,
    indices: list[int],
    params: dict[str, Any],
    envs: list[str],
    rules: list[dict[str, str]] | None,
    samples_dir: Path,
    reference: ReferenceCli,
    actions_of: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # python-venv's enter action upgrades pip: keep both sides off the network.
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_DISABLE_PIP_VERSION_CHECK", "1")
    if template in INLINE:
        path = tmp_path / f"{template.lower()}.yaml"
        path.write_text(INLINE[template])
    else:
        path = samples_dir / template
    env_paths = [samples_dir / env for env in envs]
    plan = plan_job(
        path.read_text(),
        params,
        env_templates=[p.read_text() for p in env_paths],
        template_dir=path.parent,
    )
    tasks = [plan.step(step).task_parameters(i) for i in indices]

    recorder = Recorder()
    outcomes: list[TaskOutcome] = []
    with recorder.runner(plan.to_json(), tmp_path / "lane", path_mapping_rules=rules or ()) as run:
        for task in tasks:  # like `openjd run`, stop at the first failure
            outcomes.append(run.run_task(step, task))
            if not outcomes[-1].succeeded:
                break
    expected = reference.run(
        path,
        step=step,
        params=params,
        tasks=tasks,
        environments=env_paths,
        path_mapping_rules=rules,
    )

    assert all(o.succeeded for o in outcomes) == expected.succeeded, expected.text
    ours = actions_of(recorder.texts)
    theirs = actions_of(expected.messages)
    assert ours == theirs
    assert sum(title == "Running Task" for title, _ in ours) == len(outcomes)


@pytest.fixture
def stdout_messages(samples_dir: Path) -> Any:
    return plan_job((samples_dir / JOBS / "stdout-messages.yaml").read_text())


def test_directives_reach_the_callbacks(stdout_messages: Any, tmp_path: Path) -> None:
    recorder = Recorder()
    with recorder.runner(stdout_messages, tmp_path) as run:
        outcome = run.run_task("Demo", {})

    assert outcome == TaskOutcome(True, "success", 0, "succeeded", None)
    assert recorder.progress == [0.0, 50.0, 100.0]
    assert recorder.status == ["Loading the things", "Processing the things"]
    output = [line.text for line in recorder.lines if line.source == LogSource.OUTPUT]
    assert output == [
        "openjd_progress: 0.0",
        "openjd_status: Loading the things",
        "openjd_progress: 50.0",
        "openjd_status: Processing the things",
        "openjd_progress: 100",
    ]


def _output(recorder: Recorder) -> list[str]:
    return [line.text for line in recorder.lines if line.source == LogSource.OUTPUT]


def test_one_session_enters_job_environments_once_and_step_environments_per_step(
    tmp_path: Path,
) -> None:
    plan = plan_job(SESSION_JOB)
    recorder = Recorder()
    with recorder.runner(plan, tmp_path) as run:
        outcomes = [run.run_task("A", {"N": str(n)}) for n in (1, 2)]
        outcomes.append(run.run_task("B", {}))
        outcomes.append(run.run_task("A", {"N": "3"}))

    assert all(o.succeeded for o in outcomes)
    assert _output(recorder) == [
        "enter-job",
        "openjd_env: FROM_JOB_ENV=yes",
        "enter-a",
        "task a1 env=yes",
        "task a2 env=yes",
        "exit-a",
        "enter-b",
        "task b",
        "exit-b",
        "enter-a",
        "task a3 env=yes",
        "exit-a",
        "exit-job",
    ]


def test_a_failed_task_ends_the_session_and_the_next_task_starts_a_fresh_one(
    tmp_path: Path,
) -> None:
    plan = plan_job(SESSION_JOB, {"FailAt": 1})
    recorder = Recorder()
    with recorder.runner(plan, tmp_path) as run:
        failed = run.run_task("A", {"N": "1"})
        assert run.working_directory is None
        succeeded = run.run_task("A", {"N": "2"})

    assert failed == TaskOutcome(
        succeeded=False,
        state="failed",
        exit_code=3,
        message="task failed with exit code 3: task 1 gave up",
        fail_message="task 1 gave up",
    )
    assert succeeded.succeeded
    assert _output(recorder) == [
        "enter-job",
        "openjd_env: FROM_JOB_ENV=yes",
        "enter-a",
        "task a1 env=yes",
        "openjd_fail: task 1 gave up",
        "exit-a",
        "exit-job",
        "enter-job",
        "openjd_env: FROM_JOB_ENV=yes",
        "enter-a",
        "task a2 env=yes",
        "exit-a",
        "exit-job",
    ]


def test_unknown_steps_and_values_outside_the_space_are_refused(tmp_path: Path) -> None:
    plan = plan_job(SESSION_JOB)
    with OpenJDSessionRunner(plan, working_dir=tmp_path) as run:
        with pytest.raises(ValueError, match="no step"):
            run.run_task("C", {})
        with pytest.raises(ValueError, match="not a task"):
            run.run_task("A", {"N": "7"})
        with pytest.raises(ValueError, match="no task parameters"):
            run.run_task("A", {"N": "1", "M": "2"})


CANCEL_JOB = """
specificationVersion: jobtemplate-2023-09
name: CancelJob
jobEnvironments:
- name: Cleaner
  script:
    actions:
      onEnter: {command: bash, args: ["-c", "echo entered"]}
      onExit: {command: bash, args: ["-c", "echo cleaned up"]}
steps:
- name: Wait
  script:
    actions:
      onRun:
        command: python
        args: ["{{Task.File.Wait}}"]
        cancelation:
          mode: NOTIFY_THEN_TERMINATE
          notifyPeriodInSeconds: 5
    embeddedFiles:
    - name: Wait
      type: TEXT
      data: |
        import signal, sys, time
        def notified(signum, frame):
            print("notified, cleaning up", flush=True)
            sys.exit(7)
        signal.signal(signal.SIGTERM, notified)
        print("waiting", flush=True)
        time.sleep(60)
"""


def test_cancel_notifies_then_the_task_ends_canceled(tmp_path: Path) -> None:
    plan = plan_job(CANCEL_JOB)
    recorder = Recorder()
    started = threading.Event()

    def on_line(line: LogLine) -> None:
        recorder.lines.append(line)
        if line.text == "waiting":
            started.set()

    run = OpenJDSessionRunner(plan, working_dir=tmp_path, on_log_line=on_line)
    result: list[TaskOutcome] = []
    worker = threading.Thread(target=lambda: result.append(run.run_task("Wait", {})))
    worker.start()
    assert started.wait(30)
    begun = time.monotonic()
    run.cancel()
    worker.join(30)
    run.close()

    assert not worker.is_alive()
    assert time.monotonic() - begun < 5
    assert result[0].state == "canceled"
    assert not result[0].succeeded
    output = _output(recorder)
    assert output == ["entered", "waiting", "notified, cleaning up", "cleaned up"]


def test_a_cancel_before_the_task_starts_cancels_it(tmp_path: Path) -> None:
    plan = plan_job(SESSION_JOB)
    with OpenJDSessionRunner(plan, working_dir=tmp_path) as run:
        run.cancel()
        outcome = run.run_task("A", {"N": "1"})
    assert outcome.succeeded  # a cancel applies to the task running at the time, not later ones


def test_an_environment_that_fails_to_enter_fails_the_task(tmp_path: Path) -> None:
    template = SESSION_JOB.replace('echo enter-a"]', 'echo enter-a; exit 5"]')
    recorder = Recorder()
    with recorder.runner(plan_job(template), tmp_path) as run:
        outcome = run.run_task("A", {"N": "1"})

    assert not outcome.succeeded
    assert outcome.message == "entering environment 'StepEnvA' failed with exit code 5"
    assert _output(recorder) == [
        "enter-job",
        "openjd_env: FROM_JOB_ENV=yes",
        "enter-a",
        "exit-a",
        "exit-job",
    ]
