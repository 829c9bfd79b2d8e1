"""How a lane starts a task's process: with its lane's GPUs, and in a container when its job
names an image.

The executor builds a task's command as it would run bare on this machine; :class:`Launcher`
then gives it its lane's GPU variables (see `worker.gpus`) and, for a job that names an image
(``{"container": {"image": "..."}}`` in its payload), wraps it in ``podman run`` (or ``docker
run``): the task's folders mounted at the same paths (inputs read-only, the working directory and
the output folder writable), the worker's user mapped in, the task's own environment passed (not
the worker's), and the lane's GPUs passed through.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

from thresher.schemas import api
from thresher.worker.gpus import LaneGpus, gpu_env
from thresher.worker.process import ProcessResult
from thresher.worker.tasks import Command

__all__ = [
    "ContainerSettings",
    "Launcher",
    "Mount",
    "find_container_engine",
    "task_mounts",
]

Access = Literal["ro", "rw"]


@dataclass(frozen=True)
class Mount:
    """A host folder seen at the same path inside the container."""

    path: str
    access: Access


@dataclass(frozen=True)
class ContainerSettings:
    """How this worker runs containers. ``program`` is the podman or docker executable (None:
    jobs that name an image fail on this worker); ``runtime`` the OCI runtime podman is told to
    use (``runc`` where crun fails); ``conf`` a containers.conf given to podman in
    ``CONTAINERS_CONF``; ``mounts`` folders every container sees (a site's volume roots)."""

    program: str | None = None
    runtime: str | None = None
    conf: str | None = None
    mounts: tuple[Mount, ...] = ()
    pull: Literal["missing", "never", "always", "newer"] = "missing"

    @property
    def kind(self) -> str:
        return Path(self.program).name if self.program else "none"


def find_container_engine(prefer: str = "auto") -> str | None:
    """The podman (first) or docker executable on PATH, or the one named; None if absent."""
    names = ("podman", "docker") if prefer == "auto" else (prefer,)
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    return None


@dataclass(frozen=True)
class Launcher:
    """Adapts each task's command to its lane: GPU variables, and its job's container."""

    lane_gpus: LaneGpus = field(default_factory=dict)
    containers: ContainerSettings = field(default_factory=ContainerSettings)
    base_env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))

    def gpus(self, lane: int | None) -> tuple[int, ...]:
        """The GPU device ids `lane` owns."""
        return tuple(self.lane_gpus.get(lane if lane is not None else -1, ()))

    def lane_env(self, lane: int | None) -> dict[str, str]:
        """The variables a task on `lane` gets from it: its GPUs, its number."""
        env = gpu_env(self.lane_gpus, lane)
        if lane is not None:
            env["THRESHER_LANE"] = str(lane)
        return env

    def command(
        self,
        a: api.AssignmentOut,
        command: Command,
        *,
        inputs: Sequence[str] = (),
        outputs: Sequence[str] = (),
    ) -> Command:
        """The command run for `a` on its lane; `inputs` and `outputs` are the files (or
        folders) its engine reads and writes, mounted into a container. Raises ValueError when
        the job names an image and this worker runs no containers."""
        command = replace(command, env={**command.env, **self.lane_env(a.lane)})
        image = container_image(a)
        if image is None:
            return command
        if self.containers.program is None:
            raise ValueError(
                f"the job runs in the container image {image!r}, and this worker has no "
                "podman or docker (see --container-engine)"
            )
        mounts = task_mounts(command.cwd, inputs=inputs, outputs=outputs)
        return self._wrapped(a, command, image, [*self.containers.mounts, *mounts])

    def cleanup(self, a: api.AssignmentOut, result: ProcessResult | None) -> None:
        """In the lane's thread, after the task's process ended: a container whose podman was
        killed (SIGKILL after the grace, a timeout) would run on; remove it."""
        program = self.containers.program
        if program is None or container_image(a) is None:
            return
        if (
            result is not None
            and result.signal is None
            and not (result.canceled or result.timed_out)
        ):
            return  # podman exited by itself: --rm removed the container
        env = dict(self.base_env)
        if self.containers.conf:
            env["CONTAINERS_CONF"] = self.containers.conf
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            subprocess.run(
                [program, "rm", "--force", "--time", "0", container_name(a)],
                env=env,
                capture_output=True,
                timeout=60,
                check=False,
            )

    def _wrapped(
        self, a: api.AssignmentOut, command: Command, image: str, mounts: Sequence[Mount]
    ) -> Command:
        settings = self.containers
        assert settings.program is not None
        argv = [settings.program]
        if settings.kind == "podman" and settings.runtime:
            argv += ["--runtime", settings.runtime]
        argv += ["run", "--rm", "--init", f"--pull={settings.pull}", "--network=host"]
        argv += [f"--name={container_name(a)}"]
        if settings.kind == "podman" and hasattr(os, "getuid") and os.getuid() != 0:
            argv += ["--userns=keep-id"]  # rootless: the worker's user is the task's
        argv += [f"--user={os.getuid()}:{os.getgid()}"] if hasattr(os, "getuid") else []
        for mount in _merged(mounts):
            argv += ["--volume", f"{mount.path}:{mount.path}:{mount.access}"]
        argv += ["--workdir", command.cwd]
        argv += _gpu_flags(settings.kind, self.gpus(a.lane))
        for key, value in sorted(_task_env(command.env, self.base_env).items()):
            argv += ["--env", f"{key}={value}"]
        argv += [image, *command.argv]
        env = dict(self.base_env)
        if settings.conf:
            env["CONTAINERS_CONF"] = settings.conf
        return Command(argv=argv, env=env, cwd=command.cwd)


def container_name(a: api.AssignmentOut) -> str:
    """The container of an attempt on this worker (process): unique, and found again."""
    return f"thresher-{a.attempt_id}-{os.getpid()}"


def container_image(a: api.AssignmentOut) -> str | None:
    """The image the job's tasks run in, if it names one."""
    container = a.payload.get("container")
    if not isinstance(container, dict):
        return None
    image = container.get("image")
    return str(image) if image else None


def task_mounts(
    cwd: str, *, inputs: Sequence[str] = (), outputs: Sequence[str] = ()
) -> list[Mount]:
    """What a task's container sees of this machine: the folders of its inputs read-only, its
    working directory and the folders of its outputs writable. (Once volumes exist, a site's
    volume roots join through `ContainerSettings.mounts`.)"""
    mounts = [Mount(cwd, "rw")]
    for path in inputs:
        mounts.append(Mount(_folder(path), "ro"))
    for path in outputs:
        folder = _folder(path)
        Path(folder).mkdir(parents=True, exist_ok=True)
        mounts.append(Mount(folder, "rw"))
    return mounts


def _folder(path: str) -> str:
    p = Path(path)
    return str(p if p.is_dir() else p.parent)


def _merged(mounts: Sequence[Mount]) -> list[Mount]:
    """One mount per folder (writable wins); folders inside another mounted folder with the
    same access are left to it."""
    access: dict[str, Access] = {}
    for m in mounts:
        path = os.path.normpath(m.path)
        access[path] = "rw" if "rw" in (m.access, access.get(path)) else "ro"
    out: list[Mount] = []
    for path in sorted(access):
        covered = any(
            path.startswith(other.rstrip("/") + "/") and access[other] == access[path]
            for other in access
            if other != path
        )
        if not covered:
            out.append(Mount(path, access[path]))
    return out


def _gpu_flags(kind: str, ids: Sequence[int]) -> list[str]:
    if not ids:
        return []
    if kind == "docker":
        return ["--gpus", "device=" + ",".join(str(i) for i in ids)]
    return [f"--device=nvidia.com/gpu={i}" for i in ids]  # podman: CDI device names


def _task_env(env: Mapping[str, str], base: Mapping[str, str]) -> dict[str, str]:
    """The task's own variables (the job's, Thresher's, the lane's GPUs): not the worker's,
    whose PATH and HOME mean nothing inside the image."""
    return {k: v for k, v in env.items() if base.get(k) != v and k != "PWD"}
