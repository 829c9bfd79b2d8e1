"""Resource meters: what a worker samples for the monitor (sent with its polls).

Built in: CPU (user, nice, system, iowait, total; percent), load, memory and swap (bytes),
disk usage of the work directory and disk I/O (bytes/s), network traffic (bytes/s), and GPU
utilisation and memory when `nvidia-smi` is on the PATH. Custom meters are Python plugins:
a module in `<work dir>/meters/` defining `measure() -> dict[str, float]`, or an entry point
in the group `thresher.meters` naming such a callable. A plugin's values are sent as
`<plugin name>.<key>`; a plugin that raises is logged once and left out of that sample."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import logging
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import psutil

log = logging.getLogger("thresher.worker.meters")
Measure = Callable[[], Mapping[str, float]]
#: At most this many values per sample (the controller refuses more).
MAX_VALUES = 64


def gpu_reading(smi: str, *, timeout_s: float = 2.0) -> dict[str, float]:
    """GPU utilisation (percent, mean over GPUs) and memory (bytes, summed) from nvidia-smi."""
    out = subprocess.run(
        [
            smi,
            "--query-gpu=utilization.gpu,memory.used,memory.total",
            "--format=csv,noheader,nounits",
        ],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=True,
    ).stdout
    rows = [[float(x) for x in line.split(",")] for line in out.splitlines() if line.strip()]
    if not rows:
        return {}
    mib = 1024.0 * 1024.0
    return {
        "gpu_util": sum(r[0] for r in rows) / len(rows),
        "gpu_mem_used": sum(r[1] for r in rows) * mib,
        "gpu_mem_total": sum(r[2] for r in rows) * mib,
    }


def load_plugins(directory: Path | None) -> dict[str, Measure]:
    """Custom meters: `thresher.meters` entry points, then modules in `directory`."""
    found: dict[str, Measure] = {}
    for entry in importlib.metadata.entry_points(group="thresher.meters"):
        try:
            found[entry.name] = entry.load()
        except Exception:
            log.exception("meter plugin %s could not be loaded", entry.name)
    if directory is not None and directory.is_dir():
        for path in sorted(directory.glob("*.py")):
            spec = importlib.util.spec_from_file_location(f"thresher_meter_{path.stem}", path)
            if spec is None or spec.loader is None:
                continue
            module = importlib.util.module_from_spec(spec)
            try:
                spec.loader.exec_module(module)
                found[path.stem] = module.measure
            except Exception:
                log.exception("meter plugin %s could not be loaded", path)
    return found


class Meters:
    """Reads a sample; rates (disk I/O, network) are over the time since the last read."""

    def __init__(
        self,
        work_dir: Path,
        *,
        plugins: Mapping[str, Measure] | None = None,
        smi: str | None = None,
    ) -> None:
        self.work_dir = work_dir
        self.plugins = dict(plugins or {})
        self.smi = smi
        self._failed: set[str] = set()
        self._last: tuple[float, float, float, float, float] | None = None
        psutil.cpu_times_percent(interval=None)  # the first call sets where the next counts from

    @classmethod
    def for_worker(cls, work_dir: Path) -> Meters:
        return cls(
            work_dir, plugins=load_plugins(work_dir / "meters"), smi=shutil.which("nvidia-smi")
        )

    def read(self) -> dict[str, float]:
        sample = self._cpu_and_memory()
        sample.update(self._rates())
        if self.smi is not None:
            sample.update(self._guarded("gpu", lambda: gpu_reading(self.smi or "")))
        for name, measure in self.plugins.items():
            values = self._guarded(name, measure)
            sample.update({f"{name}.{k}": float(v) for k, v in values.items()})
        return dict(list(sample.items())[:MAX_VALUES])

    def _guarded(self, name: str, measure: Measure) -> Mapping[str, float]:
        try:
            return measure()
        except Exception:
            if name not in self._failed:
                self._failed.add(name)
                log.exception("meter %s failed (left out of samples)", name)
            return {}

    def _cpu_and_memory(self) -> dict[str, float]:
        cpu = psutil.cpu_times_percent(interval=None)
        memory, swap = psutil.virtual_memory(), psutil.swap_memory()
        disk = psutil.disk_usage(str(self.work_dir) if self.work_dir.exists() else "/")
        return {
            "cpu": round(100.0 - cpu.idle, 2),
            "cpu_user": cpu.user,
            "cpu_nice": getattr(cpu, "nice", 0.0),
            "cpu_system": cpu.system,
            "cpu_iowait": getattr(cpu, "iowait", 0.0),
            "load1": os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0,
            "mem_used": float(memory.total - memory.available),
            "mem_total": float(memory.total),
            "swap_used": float(swap.used),
            "swap_total": float(swap.total),
            "disk_used": float(disk.used),
            "disk_total": float(disk.total),
        }

    def _rates(self) -> dict[str, float]:
        disk = psutil.disk_io_counters()
        net = psutil.net_io_counters()
        now = (
            time.monotonic(),
            float(disk.read_bytes) if disk else 0.0,
            float(disk.write_bytes) if disk else 0.0,
            float(net.bytes_recv),
            float(net.bytes_sent),
        )
        last, self._last = self._last, now
        if last is None or now[0] <= last[0]:
            return {}
        span = now[0] - last[0]
        names = ("disk_read_bps", "disk_write_bps", "net_rx_bps", "net_tx_bps")
        return {n: max(b - a, 0.0) / span for n, a, b in zip(names, last[1:], now[1:], strict=True)}
