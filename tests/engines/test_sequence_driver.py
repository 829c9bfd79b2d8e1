"""The sequence driver, run for real: one process running per-frame commands in turn."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

from thresher.engines import Step
from thresher.engines.sequence import parse_marker, sequence_commandline


def _python(code: str) -> tuple[str, ...]:
    return (sys.executable, "-c", code)


def test_steps_run_in_order_with_a_marker_before_each() -> None:
    argv = sequence_commandline([Step(_python(f"print('render {f}')"), frame=f) for f in (7, 8, 9)])
    result = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0
    assert result.stdout.splitlines() == [
        "[thresher] step 1 of 3: frame 7",
        "render 7",
        "[thresher] step 2 of 3: frame 8",
        "render 8",
        "[thresher] step 3 of 3: frame 9",
        "render 9",
    ]
    marker = parse_marker(result.stdout.splitlines()[2])
    assert marker is not None
    assert (marker.number, marker.total, marker.frame) == (2, 3, 8)


def test_the_first_failing_step_ends_the_run_with_its_status() -> None:
    steps = [
        Step(_python("print('ok')"), frame=1),
        Step(_python("import sys; print('bad frame', file=sys.stderr); sys.exit(5)"), frame=2),
        Step(_python("print('never')"), frame=3),
    ]
    result = subprocess.run(
        sequence_commandline(steps), capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 5
    assert "never" not in result.stdout
    assert "bad frame" in result.stderr
    assert "step 2 of 3 failed with exit code 5" in result.stderr


def test_a_missing_program_fails_with_127() -> None:
    argv = sequence_commandline([Step(("/nonexistent/renderer",), frame=1), Step(("true",))])
    result = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 127
    assert "could not start" in result.stderr


def test_sigterm_stops_the_running_step_and_the_rest() -> None:
    # GIVEN a sequence whose first step waits for a long time
    wait = "import os, time; print('pid', os.getpid(), flush=True); time.sleep(60)"
    argv = sequence_commandline([Step(_python(wait), frame=1), Step(_python("print('next')"))])
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline().startswith("[thresher] step 1 of 2")
    child = int(proc.stdout.readline().split()[1])
    # WHEN the worker cancels the task
    proc.send_signal(signal.SIGTERM)
    # THEN the step is terminated, no further step starts, and the status says SIGTERM
    assert proc.wait(timeout=10) == 128 + signal.SIGTERM
    assert "next" not in proc.stdout.read()
    proc.stdout.close()
    try:
        os.kill(child, 0)
    except ProcessLookupError:
        pass
    else:
        raise AssertionError(f"step process {child} is still running")


def test_the_driver_ignores_the_jobs_python_environment() -> None:
    # GIVEN a job environment meant for an application's own Python (it would break ours)
    argv = sequence_commandline([Step(("echo", "fine"), frame=1)])
    env = {**os.environ, "PYTHONHOME": "/nonexistent", "PYTHONPATH": "/nonexistent"}
    # WHEN the driver runs with it THEN it still starts and runs the step
    result = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["[thresher] step 1 of 1: frame 1", "fine"]
    assert json.loads(argv[-1]) == {"steps": [{"frame": 1, "argv": ["echo", "fine"]}]}
