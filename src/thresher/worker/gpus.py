"""GPU lanes: which GPU device ids each lane of this worker owns, and what its tasks see.

A lane may own GPU device ids (``thresher worker --lane-gpus 0=0,1=1``; ``0=0+1`` gives lane 0
two GPUs; ``auto`` gives each lane one of the GPUs ``nvidia-smi`` lists, in turn). A task on a
lane that owns GPUs gets ``CUDA_VISIBLE_DEVICES`` (and the matching variables of other vendors'
runtimes) naming them, so a renderer sees only its lane's devices; once any lane owns GPUs, a
lane without any gets an empty list, so a CPU lane never steals a GPU lane's device.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Mapping, Sequence

__all__ = ["LaneGpus", "detect_gpu_ids", "gpu_env", "parse_lane_gpus"]

LaneGpus = Mapping[int, tuple[int, ...]]
"""Lane -> the GPU device ids it owns (lanes not named own none)."""

# The variables each GPU runtime reads to pick its devices: CUDA (NVIDIA), ROCm/HIP (AMD), and
# the NVIDIA container runtime (a task run in a container).
_VISIBLE = ("CUDA_VISIBLE_DEVICES", "HIP_VISIBLE_DEVICES", "NVIDIA_VISIBLE_DEVICES")


def parse_lane_gpus(
    text: str, *, lanes: int, detected: Sequence[int] = ()
) -> dict[int, tuple[int, ...]]:
    """``0=0,1=1`` (a lane may own several: ``0=0+1``), or ``auto`` (one detected GPU per lane,
    in turn, while there are GPUs). Raises ValueError naming the bad pair."""
    text = text.strip()
    if text == "auto":
        return {lane: (gpu,) for lane, gpu in zip(range(lanes), detected, strict=False)}
    out: dict[int, tuple[int, ...]] = {}
    for pair in (p.strip() for p in text.split(",") if p.strip()):
        lane_text, sep, ids_text = pair.partition("=")
        ids = [i.strip() for i in ids_text.split("+")]
        if not sep or not lane_text.strip().isdigit() or not all(i.isdigit() for i in ids):
            raise ValueError(f"{pair!r} is not LANE=GPU[+GPU...]")
        lane = int(lane_text)
        if lane >= lanes:
            raise ValueError(f"lane {lane} does not exist (lanes 0-{lanes - 1})")
        if lane in out:
            raise ValueError(f"lane {lane} is named twice")
        out[lane] = tuple(dict.fromkeys(int(i) for i in ids))
    return out


def detect_gpu_ids() -> list[int]:
    """The device ids of this machine's NVIDIA GPUs, as ``nvidia-smi`` (NVML's command line)
    lists them; none without the tool."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return []
    try:
        out = subprocess.run(
            [exe, "--query-gpu=index", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [int(line) for line in (x.strip() for x in out.splitlines()) if line.isdigit()]


def gpu_env(lane_gpus: LaneGpus, lane: int | None) -> dict[str, str]:
    """The variables a task on `lane` gets: its lane's GPUs, or none when other lanes own
    them; nothing when this worker declares no GPU lanes (the task sees what the machine has)."""
    if not lane_gpus:
        return {}
    ids = ",".join(str(g) for g in lane_gpus.get(lane if lane is not None else -1, ()))
    return dict.fromkeys(_VISIBLE, ids)
