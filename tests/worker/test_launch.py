"""How a lane launches a task: GPU variables, and `podman run` for a job that names an image
(the argv is checked here; tests/e2e/test_containers.py runs it for real)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from thresher.schemas import api
from thresher.worker.launch import ContainerSettings, Launcher, Mount, task_mounts
from thresher.worker.process import ProcessResult
from thresher.worker.tasks import Command


def _assignment(payload: dict[str, object], lane: int = 1) -> api.AssignmentOut:
    return api.AssignmentOut(
        attempt_id=7,
        token="t",
        job_id=3,
        block=0,
        index=0,
        frames=[1],
        kind="command",
        payload=payload,
        env={},
        cwd=None,
        max_runtime_s=None,
        lane=lane,
    )


def test_a_bare_task_gets_its_lanes_gpus_and_lane_number(tmp_path: Path) -> None:
    launcher = Launcher(lane_gpus={1: (3,)}, base_env={"PATH": "/bin"})
    command = Command(argv=["render"], env={"PATH": "/bin"}, cwd=str(tmp_path))
    out = launcher.command(_assignment({}), command)
    assert out.argv == ["render"]
    assert out.env["CUDA_VISIBLE_DEVICES"] == "3"
    assert out.env["THRESHER_LANE"] == "1"


def test_a_container_task_is_wrapped_in_podman_run(tmp_path: Path) -> None:
    scene, out_dir, cwd = tmp_path / "in" / "a.pov", tmp_path / "out", tmp_path / "cwd"
    scene.parent.mkdir()
    scene.write_text("x")
    settings = ContainerSettings(
        program="/usr/bin/podman", runtime="runc", conf="/etc/c.conf", mounts=(Mount("/lib", "ro"),)
    )
    launcher = Launcher(lane_gpus={1: (0, 1)}, containers=settings, base_env={"PATH": "/bin"})
    command = Command(
        argv=["povray", str(scene)], env={"PATH": "/bin", "JOB_VAR": "1"}, cwd=str(cwd)
    )
    out = launcher.command(
        _assignment({"container": {"image": "localhost/pov:1"}}),
        command,
        inputs=[str(scene)],
        outputs=[str(out_dir / "img_####.png")],
    )
    argv = out.argv
    assert argv[:3] == ["/usr/bin/podman", "--runtime", "runc"]
    assert argv[argv.index("localhost/pov:1") + 1 :] == ["povray", str(scene)]
    volumes = [argv[i + 1] for i, a in enumerate(argv) if a == "--volume"]
    assert f"{scene.parent}:{scene.parent}:ro" in volumes
    assert f"{out_dir}:{out_dir}:rw" in volumes
    assert f"{cwd}:{cwd}:rw" in volumes
    assert "/lib:/lib:ro" in volumes
    assert f"--user={os.getuid()}:{os.getgid()}" in argv
    assert [a for a in argv if a.startswith("--device")] == [
        "--device=nvidia.com/gpu=0",
        "--device=nvidia.com/gpu=1",
    ]
    envs = [argv[i + 1] for i, a in enumerate(argv) if a == "--env"]
    assert "JOB_VAR=1" in envs
    assert "CUDA_VISIBLE_DEVICES=0,1" in envs
    assert not any(e.startswith("PATH=") for e in envs)  # the worker's PATH stays outside
    assert out.env["CONTAINERS_CONF"] == "/etc/c.conf"


def test_docker_gets_its_own_gpu_flag(tmp_path: Path) -> None:
    launcher = Launcher(
        lane_gpus={1: (2,)}, containers=ContainerSettings(program="/usr/bin/docker"), base_env={}
    )
    out = launcher.command(
        _assignment({"container": {"image": "img"}}), Command(["x"], {}, str(tmp_path))
    )
    assert out.argv[out.argv.index("--gpus") + 1] == "device=2"
    assert "--runtime" not in out.argv


def test_a_container_job_on_a_worker_without_podman_fails_clearly(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no podman or docker"):
        Launcher().command(
            _assignment({"container": {"image": "img"}}), Command(["x"], {}, str(tmp_path))
        )


def test_mounts_nest_into_their_parent_with_the_same_access(tmp_path: Path) -> None:
    mounts = task_mounts(str(tmp_path), inputs=[str(tmp_path / "a.txt")], outputs=[])
    assert mounts[0] == Mount(str(tmp_path), "rw")


def _result(**fields: object) -> ProcessResult:
    base: dict[str, object] = {
        "exit_code": None,
        "signal": None,
        "peak_rss_bytes": None,
        "duration_s": 1.0,
        "canceled": False,
        "timed_out": False,
        "error": None,
    }
    return ProcessResult(**{**base, **fields})  # type: ignore[arg-type]


def test_a_killed_container_is_removed_and_a_finished_one_left_to_rm(tmp_path: Path) -> None:
    calls = tmp_path / "calls"
    podman = tmp_path / "podman"  # stands in for podman: records what it is asked
    podman.write_text(f'#!/bin/sh\necho "$@" >> {calls}\n')
    podman.chmod(0o755)
    launcher = Launcher(containers=ContainerSettings(program=str(podman)), base_env={})
    boxed = _assignment({"container": {"image": "img"}})
    launcher.cleanup(boxed, _result(exit_code=3))  # podman exited: --rm did it
    launcher.cleanup(_assignment({}), _result(signal=9))  # no container
    assert not calls.exists()
    launcher.cleanup(boxed, _result(signal=9, canceled=True))
    assert calls.read_text() == f"rm --force --time 0 thresher-7-{os.getpid()}\n"
