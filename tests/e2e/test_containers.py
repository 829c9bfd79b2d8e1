"""End to end: a job that names a container image runs its tasks in it, with podman (runc), on a
real worker. The image is busybox imported from a tarball (scripts/container-image.sh): no
registry is needed. Skipped where podman is not installed."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.e2e.conftest import Farm
from thresher.schemas import api
from thresher.testing import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.containers]

ROOT = Path(__file__).resolve().parents[2]
IMAGE = "localhost/thresher-busybox:test"


@pytest.fixture(scope="module")
def podman_conf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A containers.conf that works on these machines, with the test image imported."""
    if shutil.which("podman") is None or shutil.which("runc") is None:
        pytest.skip(
            "podman and runc are not installed: scripts/install-system-deps.sh --containers"
        )
    conf = tmp_path_factory.mktemp("podman") / "containers.conf"
    conf.write_text("[containers]\ndefault_ulimits = []\n")
    env = {**os.environ, "CONTAINERS_CONF": str(conf)}
    subprocess.run(
        ["bash", str(ROOT / "scripts" / "container-image.sh"), IMAGE],
        env=env,
        check=True,
        capture_output=True,
        timeout=120,
    )
    return conf


def container_worker(farm: Farm, conf: Path, mounts: list[str] | None = None) -> None:
    args = ["--container-engine", "podman", "--container-runtime", "runc"]
    for mount in mounts or []:
        args += ["--container-mount", mount]
    farm.worker("box1", args=[*args, "--containers-conf", str(conf)])


def test_a_busybox_job_runs_in_its_container(
    sqlite_farm: Farm, podman_conf: Path, tmp_path: Path
) -> None:
    farm = sqlite_farm
    farm.controller()
    container_worker(farm, podman_conf, mounts=[f"{tmp_path / 'plates'}:ro"])
    work = tmp_path / "shot"
    work.mkdir()
    (work / "in.txt").write_text("plate\n")
    secret = tmp_path / "not-mounted.txt"
    secret.write_text("x")
    plates = tmp_path / "plates"  # a volume root the worker mounts read-only
    plates.mkdir()
    (plates / "plate.txt").write_text("a plate\n")
    script = (
        'echo "frame $THRESHER_FRAMES read $(cat in.txt)" > "out-$THRESHER_FRAMES.txt"; '
        'echo "uid=$(id -u) busybox=$(readlink /bin/sh)"; '
        f'test -e {secret} && echo "sees the host"; '
        f"cat {plates}/plate.txt; "
        f'touch {plates}/new 2>/dev/null && echo "wrote a read-only mount"; '
        "true"
    )
    with farm.client() as client:
        assert client.worker("box1").attributes["container"] == "podman"
        job = client.submit_job(
            api.JobIn(
                name="boxed",
                command=["sh", "-c", script],
                frames="1-2",
                cwd=str(work),
                container=api.ContainerIn(image=IMAGE),
            )
        )
        wait_until(
            lambda: client.job(job.id).status in ("succeeded", "failed"),
            timeout=120,
            what="the job ended",
        )
        assert client.job(job.id).status == "succeeded", client.log(job.id, 0)
        out = [line.text for line in client.log(job.id, 0) if line.stream == "stdout"]
    assert out == [f"uid={os.getuid()} busybox=busybox", "a plate"]
    assert (work / "out-1.txt").read_text() == "frame 1 read plate\n"
    assert (work / "out-2.txt").exists()


def test_a_failure_inside_the_container_fails_the_task(
    sqlite_farm: Farm, podman_conf: Path
) -> None:
    farm = sqlite_farm
    farm.controller()
    container_worker(farm, podman_conf)
    with farm.client() as client:
        job = client.submit_job(
            api.JobIn(
                name="boxed-fails",
                command=["sh", "-c", "echo failing; exit 7"],
                retries=0,
                container=api.ContainerIn(image=IMAGE),
            )
        )
        wait_until(
            lambda: client.job(job.id).status == "failed", timeout=120, what="the job failed"
        )
        (attempt,) = client.attempts(job.id)
    assert attempt.exit_code == 7


def test_a_canceled_container_task_leaves_no_container(
    sqlite_farm: Farm, podman_conf: Path
) -> None:
    farm = sqlite_farm
    farm.controller()
    container_worker(farm, podman_conf)
    env = {**os.environ, "CONTAINERS_CONF": str(podman_conf)}

    def containers() -> list[str]:
        listed = subprocess.run(
            ["podman", "ps", "--all", "--format", "{{.Names}}"],
            env=env,
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
        return [n for n in listed.stdout.split() if n.startswith("thresher-")]

    with farm.client() as client:
        job = client.submit("long", ["sleep", "600"], image=IMAGE)
        wait_until(lambda: containers(), timeout=60, what="the task's container")
        client.cancel(job.id)
        wait_until(lambda: client.job(job.id).status == "canceled", timeout=60, what="canceled")
    wait_until(lambda: not containers(), timeout=60, what="the container gone")


SCENE = """#include "colors.inc"
camera { location <0, 2, -3> look_at <0, 1, 2> }
sphere { <0, 1, 2>, 2 texture { pigment { color Yellow } } }
light_source { <2, 4, -3> color White }
"""


def test_a_povray_engine_job_renders_in_its_container(
    sqlite_farm: Farm, podman_conf: Path, tmp_path: Path
) -> None:
    """The engine's input folder is mounted read-only, its output folder writable."""
    if shutil.which("povray") is None:
        pytest.skip("povray is not installed: scripts/install-system-deps.sh --renderers")
    env = {**os.environ, "CONTAINERS_CONF": str(podman_conf)}
    image = subprocess.run(
        ["bash", str(ROOT / "scripts" / "container-image.sh"), "--povray"],
        env=env,
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
    ).stdout.strip()
    farm = sqlite_farm
    farm.controller()
    container_worker(farm, podman_conf)
    scene = tmp_path / "scene" / "ball.pov"
    scene.parent.mkdir()
    scene.write_text(SCENE)
    with farm.client() as client:
        job = client.submit_engine(
            "povray",
            input=str(scene),
            range="1-2",
            output=str(tmp_path / "out" / "ball.png"),
            parameters={"width": 32, "height": 24},
            container={"image": image},
            retries=0,
        )
        wait_until(
            lambda: client.job(job.id).status in ("succeeded", "failed"),
            timeout=180,
            what="the render ended",
        )
        log = [line.text for line in client.log(job.id, 0)]
        assert client.job(job.id).status == "succeeded", log
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["ball1.png", "ball2.png"]
    assert sorted(p.name for p in scene.parent.iterdir()) == ["ball.pov"]  # read-only: untouched
