"""The worker's GPU-lane and container options (`thresher worker --lane-gpus ...`)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import typer

from thresher.schemas import api
from thresher.worker.gpus import detect_gpu_ids, parse_lane_gpus
from thresher.worker.launch import ContainerSettings, Mount, find_container_engine

__all__ = ["container_settings", "with_containers", "with_gpu_lanes"]


def with_gpu_lanes(facts: api.RegisterIn, text: object, attrs: Sequence[str]) -> api.RegisterIn:
    """The facts with the GPU ids each lane owns (`--lane-gpus`); the worker's GPU count is
    then the number of distinct ids, unless `--attr gpus=N` says otherwise."""
    if text is None:
        return facts
    detected = detect_gpu_ids() if str(text).strip() == "auto" else []
    try:
        lanes = parse_lane_gpus(str(text), lanes=facts.lanes, detected=detected)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--lane-gpus") from None
    gpus = facts.gpus
    if not any(a.split("=", 1)[0].strip() in ("gpus", "gpu") for a in attrs):
        gpus = max(gpus, len({g for ids in lanes.values() for g in ids}))
    return facts.model_copy(
        update={"lane_gpus": {k: list(v) for k, v in lanes.items()}, "gpus": gpus}
    )


def container_settings(
    engine: str, runtime: str | None, conf: Path | None, mounts: Sequence[str] = ()
) -> ContainerSettings:
    """How this worker runs the tasks of jobs that name a container image; `mounts` are
    `PATH[:ro|rw]` folders every container sees (read-only unless `:rw`)."""
    if engine == "none":
        return ContainerSettings()
    program = find_container_engine(engine)
    if program is None and engine != "auto":
        raise typer.BadParameter(f"{engine!r} is not on PATH", param_hint="--container-engine")
    return ContainerSettings(
        program=program,
        runtime=runtime,
        conf=str(conf.resolve()) if conf else None,
        mounts=tuple(_mount(m) for m in mounts),
    )


def _mount(text: str) -> Mount:
    path, _, access = text.rpartition(":") if text.endswith((":ro", ":rw")) else (text, "", "ro")
    if not Path(path).is_absolute():
        raise typer.BadParameter(
            f"{path!r} is not an absolute path", param_hint="--container-mount"
        )
    return Mount(str(Path(path)), "rw" if access == "rw" else "ro")


def with_containers(facts: api.RegisterIn, settings: ContainerSettings) -> api.RegisterIn:
    """The facts with a `container` label (podman or docker) filters can ask for
    (`label:container=podman`), when this worker runs containers."""
    if settings.program is None:
        return facts
    return facts.model_copy(update={"attributes": {**facts.attributes, "container": settings.kind}})
