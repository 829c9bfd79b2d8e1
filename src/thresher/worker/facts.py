"""What a worker tells the controller about its machine. Overrides win over detection, so one
machine can stand in for several in tests."""

from __future__ import annotations

import os
import platform
import socket
from collections.abc import Mapping

import psutil

from thresher.schemas import api

_OS_NAMES = {"Linux": "linux", "Darwin": "mac", "Windows": "windows"}


def detect(
    *,
    name: str,
    lanes: int,
    site: str = "hq",
    pools: tuple[str, ...] = (),
    overrides: Mapping[str, str] | None = None,
) -> api.RegisterIn:
    """This machine's facts; `overrides` may set hostname, os, cores, ram (bytes) and labels."""
    over = dict(overrides or {})
    hostname = over.pop("hostname", socket.gethostname())
    os_name = over.pop("os", _OS_NAMES.get(platform.system(), platform.system().lower()))
    cores = int(over.pop("cores", str(os.cpu_count() or 1)))
    ram = int(over.pop("ram", str(psutil.virtual_memory().total)))
    return api.RegisterIn(
        name=name,
        hostname=hostname,
        os=os_name,
        cores=cores,
        ram_bytes=ram,
        site=site,
        pools=list(pools),
        attributes=over,
        lanes=lanes,
    )
