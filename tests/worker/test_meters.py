"""A worker's resource meters read this machine for real; custom meters load from a plugins
directory; GPUs are faked (no GPU here): a stand-in `nvidia-smi` script prints what the real
one prints for two GPUs. A task's CPU time comes from its `wait4` rusage."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from thresher.worker.meters import Meters, load_plugins
from thresher.worker.process import ProcessRunner


def test_a_sample_holds_cpu_memory_disk_and_rates(tmp_path: Path) -> None:
    meters = Meters(tmp_path)
    meters.read()  # rates are measured between two reads
    sample = meters.read()

    for key in ("cpu_user", "cpu_nice", "cpu_system", "cpu_iowait", "load1", "swap_total"):
        assert key in sample
    assert 0 < sample["mem_used"] <= sample["mem_total"]
    assert 0 < sample["disk_used"] <= sample["disk_total"]
    assert {"disk_read_bps", "disk_write_bps", "net_rx_bps", "net_tx_bps"} <= sample.keys()
    assert 0.0 <= sample["cpu"] <= 100.0


def test_custom_meters_are_plugins_and_one_that_fails_is_left_out(tmp_path: Path) -> None:
    plugins = tmp_path / "meters"
    plugins.mkdir()
    (plugins / "licenses.py").write_text("def measure():\n    return {'free': 3}\n")
    (plugins / "broken.py").write_text("def measure():\n    raise RuntimeError('no server')\n")

    sample = Meters(tmp_path, plugins=load_plugins(plugins)).read()

    assert sample["licenses.free"] == 3.0
    assert not any(k.startswith("broken.") for k in sample)


def test_gpus_are_read_from_nvidia_smi(tmp_path: Path) -> None:
    smi = tmp_path / "nvidia-smi"
    smi.write_text("#!/bin/sh\necho '30, 1024, 8192'\necho '70, 2048, 8192'\n")
    os.chmod(smi, 0o700)

    sample = Meters(tmp_path, smi=str(smi)).read()

    assert sample["gpu_util"] == 50.0
    assert sample["gpu_mem_used"] == 3072 * 1024 * 1024
    assert sample["gpu_mem_total"] == 16384 * 1024 * 1024


def test_a_task_cpu_time_is_measured() -> None:
    """The child spins until its own CPU clock reads 0.3 s; `sleep` uses next to none."""
    spin = "import time\nwhile time.process_time() < 0.3:\n    pass\n"
    busy = ProcessRunner(
        [sys.executable, "-c", spin], env={}, cwd=None, on_line=lambda s, t: None
    ).run()
    idle = ProcessRunner(["/bin/sleep", "0.2"], env={}, cwd=None, on_line=lambda s, t: None).run()

    assert busy.cpu_s is not None
    assert busy.cpu_s >= 0.3
    assert idle.cpu_s is not None
    assert idle.cpu_s < 0.1
