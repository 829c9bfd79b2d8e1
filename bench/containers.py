"""Container start overhead per task: the same `true` task run bare and in a container.

Both go through what a worker lane runs (thresher.worker.launch.Launcher builds the command,
thresher.worker.process.ProcessRunner runs it): bare, and wrapped in `podman run` (runc, the
busybox test image of scripts/container-image.sh, the task's folder mounted). Runs alternate
(bare, container, bare, ...) so both see the same machine load. Needs podman and runc.

Prints one JSON line:
{"bench": "containers", "runs": 20, "bare_ms": median, "container_ms": median,
 "overhead_ms": container - bare (medians), "bare_ms_range": [min, max], "container_ms_range": ..}
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as c
from thresher.schemas import api
from thresher.worker.launch import ContainerSettings, Launcher
from thresher.worker.process import ProcessRunner
from thresher.worker.tasks import Command

IMAGE = "localhost/thresher-busybox:test"


def _assignment(index: int, image: str | None) -> api.AssignmentOut:
    payload: dict[str, Any] = {"container": {"image": image}} if image else {}
    return api.AssignmentOut(
        attempt_id=index + 1,
        token=f"fence-{index}",
        job_id=1,
        block=0,
        index=index,
        frames=[index],
        kind="command",
        payload=payload,
        env={},
        cwd=None,
        max_runtime_s=None,
        lane=0,
    )


def _run_ms(command: Command) -> float:
    started = time.perf_counter()
    result = ProcessRunner(
        command.argv, env=command.env, cwd=command.cwd, on_line=lambda _s, _t: None
    ).run()
    took = (time.perf_counter() - started) * 1000
    if not result.succeeded:
        raise SystemExit(f"{command.argv[0]} failed: {result.error or result.exit_code}")
    return took


def main() -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    podman = shutil.which("podman")
    if podman is None or shutil.which("runc") is None:
        raise SystemExit("needs podman and runc (scripts/install-system-deps.sh --containers)")
    with tempfile.TemporaryDirectory() as tmp:
        conf = Path(tmp) / "containers.conf"
        conf.write_text("[containers]\ndefault_ulimits = []\n")
        env = {**os.environ, "CONTAINERS_CONF": str(conf)}
        script = c.REPO / "scripts" / "container-image.sh"
        subprocess.run(["bash", str(script), IMAGE], env=env, check=True, capture_output=True)
        settings = ContainerSettings(program=podman, runtime="runc", conf=str(conf), pull="never")
        launcher = Launcher(containers=settings)
        work = Path(tmp) / "work"
        work.mkdir()
        bare_cmd = Command(
            argv=[shutil.which("true") or "true"], env=dict(os.environ), cwd=str(work)
        )
        box_cmd = Command(argv=["true"], env=dict(os.environ), cwd=str(work))
        bare: list[float] = []
        boxed: list[float] = []
        _run_ms(launcher.command(_assignment(0, IMAGE), box_cmd))  # warm: not counted
        for i in range(args.runs):
            bare.append(_run_ms(launcher.command(_assignment(i, None), bare_cmd)))
            boxed.append(_run_ms(launcher.command(_assignment(i, IMAGE), box_cmd)))
    bare_ms, box_ms = statistics.median(bare), statistics.median(boxed)
    return {
        "bench": "containers",
        "runs": args.runs,
        "bare_ms": round(bare_ms, 2),
        "container_ms": round(box_ms, 1),
        "overhead_ms": round(box_ms - bare_ms, 1),
        "bare_ms_range": [round(min(bare), 2), round(max(bare), 2)],
        "container_ms_range": [round(min(boxed), 1), round(max(boxed), 1)],
        "runtime": "podman + runc",
        "date": c.stamp(),
    }


if __name__ == "__main__":
    c.run("containers", main)
