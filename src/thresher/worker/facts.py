"""What a worker tells the controller about its machine. Overrides win over detection, so one
machine can stand in for several in tests.

Detected: hostname, OS, cores, RAM (psutil) and NVIDIA GPUs (`nvidia-smi -L`, when present).
Overrides (`--attr key=value`): `hostname`, `os`, `cores`, `ram` (bytes, or with a unit: `64g`,
`64GB`, `512MB`), `gpus`; any other key becomes a label, as do `--label key=value` pairs.
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import socket
import subprocess
from collections.abc import Mapping, Sequence

import psutil

from thresher.schemas import api

_OS_NAMES = {"Linux": "linux", "Darwin": "mac", "Windows": "windows"}
_SIZE = re.compile(r"(?P<n>[0-9]+(?:\.[0-9]+)?)\s*(?P<unit>[kmgt]?)(?:i?b)?", re.IGNORECASE)
_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}


def parse_size(text: str) -> int:
    """Bytes from `68719476736`, `64g`, `64GB`, `64GiB` or `512MB` (binary units)."""
    match = _SIZE.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"{text!r} is not a size (expected bytes, or a number with M, G or T)")
    return int(float(match["n"]) * _UNITS[match["unit"].lower()])


def detect_gpus() -> int:
    """NVIDIA GPUs on this machine, as `nvidia-smi -L` lists them (0 without the tool)."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return 0
    try:
        out = subprocess.run(
            [exe, "-L"], capture_output=True, text=True, timeout=10, check=False
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return 0
    return sum(1 for line in out.splitlines() if line.startswith("GPU "))


def detect(
    *,
    name: str,
    lanes: int,
    site: str = "hq",
    pools: Sequence[str] = (),
    overrides: Mapping[str, str] | None = None,
    labels: Mapping[str, str] | None = None,
    capacity: int | None = None,
    lane_engines: Mapping[int, Sequence[str]] | None = None,
) -> api.RegisterIn:
    """This machine's facts, with `overrides` and `labels` applied (see the module docstring).
    Raises ValueError for an override that does not parse."""
    over = dict(overrides or {})
    hostname = over.pop("hostname", None) or socket.gethostname()
    os_name = over.pop("os", None) or _OS_NAMES.get(platform.system(), platform.system().lower())
    cores = int(over.pop("cores", None) or os.cpu_count() or 1)
    ram_text = over.pop("ram", None)
    ram = parse_size(ram_text) if ram_text else int(psutil.virtual_memory().total)
    gpu_text = over.pop("gpus", None) or over.pop("gpu", None)
    gpus = int(gpu_text) if gpu_text else detect_gpus()
    return api.RegisterIn(
        name=name,
        hostname=hostname,
        os=os_name,
        cores=cores,
        ram_bytes=ram,
        site=site,
        pools=list(pools),
        attributes={**over, **dict(labels or {})},
        lanes=lanes,
        gpus=gpus,
        capacity=capacity,
        lane_engines={lane: list(engines) for lane, engines in (lane_engines or {}).items()},
    )
