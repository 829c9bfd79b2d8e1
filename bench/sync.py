"""Site-to-site file sync against `rsync -a` of the same data, in the same run.

Two file services run as their own processes (`thresher files`, site A and site B, each with
its own folder as the volume's root) and a controller beside them (`thresher controller`, only
to show that it takes no part in moving the data: its CPU is measured during the transfers).
Each case brings site A's folder to site B: our way, B's file service pulls from A's after A
checked the folder in (`POST /files/v1/checkin` then `/files/v1/pull`); the yardstick,
`rsync -a A/ B-rsync/` on this machine (both folders local: rsync's fastest case).

Cases: one big file (1 GiB; --size-mb scales it); 10,000 files of 1 KiB (--files); the big
file after 1 % of it changed in place, and after 1 KiB was inserted at its middle (bytes moved
are counted: the goal is at most 3 % of the file); nothing changed (at most 1 s, 0 bytes).
Memory growth of each file service (peak RSS during the run minus RSS before) and the
controller's CPU during the transfers are reported. Medians of --runs runs, with the spread.

    python bench/sync.py [--size-mb 1024] [--files 10000] [--runs 3]
                         [--profile DIR [--profile-case big|small]] [--sequential]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import log, machine, py_spy, run, stamp, thresher_argv, wait_quiet

TOKEN = "bench-files-token"  # noqa: S105 (a throwaway token for local services)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextlib.contextmanager
def process(argv: list[str], url: str, env: dict[str, str]) -> Iterator[psutil.Process]:
    popen = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            if popen.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"{argv[1:3]} did not start: {popen.stderr and popen.stderr.read()}"
                )
            time.sleep(0.1)
        yield psutil.Process(popen.pid)
    finally:
        popen.terminate()
        try:
            popen.wait(timeout=10)
        except subprocess.TimeoutExpired:
            popen.kill()
            popen.wait()


class Peak:
    """The highest RSS of some processes while the block runs (sampled every 20 ms)."""

    def __init__(self, procs: dict[str, psutil.Process]) -> None:
        self.procs = procs
        self.base = {n: p.memory_info().rss for n, p in procs.items()}
        self.peak = dict(self.base)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            for name, proc in self.procs.items():
                with contextlib.suppress(psutil.Error):
                    self.peak[name] = max(self.peak[name], proc.memory_info().rss)

    def __enter__(self) -> Peak:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def growth_mb(self) -> dict[str, float]:
        return {n: round((self.peak[n] - self.base[n]) / 2**20, 1) for n in self.procs}


def call(url: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    response = httpx.post(f"{url}/files/v1{path}", json=body, headers=headers, timeout=3600)
    response.raise_for_status()
    answer: dict[str, Any] = response.json()
    return answer


WATCH: dict[str, psutil.Process] = {}
PEAKS: list[Peak] = []
#: Seconds of each case's checkin at A, by case (with the overlap, B's pull runs beside it).
CHECKIN_S: dict[str, list[float]] = {}
#: Whether B's pull follows A's checkin as it goes (--sequential: one after the other).
OVERLAP = True
#: CPU seconds of each service and of rsync's processes, by case.
CPU_S: dict[str, dict[str, list[float]]] = {}


def cpu_s(proc: psutil.Process) -> float:
    times = proc.cpu_times()
    return float(times.user + times.system)


def ours(a_url: str, b_url: str, name: str) -> tuple[float, int]:
    """Seconds and bytes moved to bring A's folder to B (checkin at A, pull at B); the CPU
    seconds each service used go to CPU_S."""
    before = {n: cpu_s(WATCH[n]) for n in ("files_a", "files_b")}
    try:
        return _ours(a_url, b_url, name)
    finally:
        for n, was in before.items():
            CPU_S.setdefault(name.rsplit("-", 1)[0], {}).setdefault(n, []).append(
                cpu_s(WATCH[n]) - was
            )


def _ours(a_url: str, b_url: str, name: str) -> tuple[float, int]:
    rss = ", ".join(f"{n} {p.memory_info().rss >> 20} MiB" for n, p in WATCH.items())
    peaks = ", ".join(f"{n} {v >> 20} MiB" for n, v in PEAKS[0].peak.items()) if PEAKS else ""
    log(f"{name}: rss {rss}; peaks so far {peaks}")
    started = time.perf_counter()
    if OVERLAP:
        # Both at once: A answers once the files are listed, B's pull follows A's checkin.
        run_id = call(a_url, "/checkin", {"volume": "proj", "name": name, "background": True})[
            "run"
        ]
        answer = call(
            b_url,
            "/pull",
            {
                "source_url": a_url,
                "source_token": TOKEN,
                "manifest": name,
                "follow": run_id,
                "volume": "proj",
            },
        )
        elapsed = time.perf_counter() - started
        headers = {"Authorization": f"Bearer {TOKEN}"}
        params: dict[str, str | int] = {"run": run_id, "files": 10**9, "wait": 0}
        progress = httpx.get(
            f"{a_url}/files/v1/checkins/{name}", params=params, headers=headers, timeout=60
        ).json()
        CHECKIN_S.setdefault(name.rsplit("-", 1)[0], []).append(float(progress["seconds"]))
        return elapsed, int(answer["bytes_moved"])
    call(a_url, "/checkin", {"volume": "proj", "name": name})
    CHECKIN_S.setdefault(name.rsplit("-", 1)[0], []).append(time.perf_counter() - started)
    answer = call(
        b_url,
        "/pull",
        {"source_url": a_url, "source_token": TOKEN, "manifest": name, "volume": "proj"},
    )
    return time.perf_counter() - started, int(answer["bytes_moved"])


def rsync(src: Path, dest: Path, case: str) -> float:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(["rsync", "-a", f"{src}/", f"{dest}/"], check=True)
    took = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    used = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    CPU_S.setdefault(case, {}).setdefault("rsync", []).append(used)
    return took


def write_big(path: Path, size: int, seed: int) -> None:
    rng = random.Random(seed)
    with path.open("wb") as out:
        left = size
        while left:
            block = rng.randbytes(min(left, 16 * 2**20))
            out.write(block)
            left -= len(block)


def change_in_place(path: Path, fraction: float, seed: int) -> None:
    size = path.stat().st_size
    count = int(size * fraction)
    with path.open("r+b") as f:
        f.seek(size // 3)
        f.write(random.Random(seed).randbytes(count))


def insert_middle(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".new")
    size = path.stat().st_size
    with path.open("rb") as src, tmp.open("wb") as out:
        left = size // 2
        while left:
            block = src.read(min(left, 16 * 2**20))
            out.write(block)
            left -= len(block)
        out.write(data)
        shutil.copyfileobj(src, out, 16 * 2**20)
    os.replace(tmp, path)


def spread(values: list[float]) -> dict[str, float]:
    return {
        "median": round(statistics.median(values), 3),
        "min": round(min(values), 3),
        "max": round(max(values), 3),
    }


def one_run(
    a: Path, b: Path, rs: Path, urls: tuple[str, str], args: argparse.Namespace, i: int
) -> dict[str, Any]:
    a_url, b_url = urls
    for folder in (a, b, rs):
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
    size = args.size_mb * 2**20
    (a / "big").mkdir()
    write_big(a / "big" / "big.bin", size, seed=i)
    out: dict[str, Any] = {}
    pids = {n: p.pid for n, p in WATCH.items() if n.startswith("files")}
    profile = args.profile if i == 0 else None
    with py_spy(pids, profile if args.profile_case == "big" else None, rate=100):
        t_ours, moved = ours(a_url, b_url, f"big-{i}")
    t_rsync = rsync(a / "big", rs / "big", "big")
    out["big"] = {"ours_s": t_ours, "rsync_s": t_rsync, "bytes": moved}
    change_in_place(a / "big" / "big.bin", 0.01, seed=100 + i)
    t_ours, moved = ours(a_url, b_url, f"edit-{i}")
    out["changed_1pct"] = {
        "ours_s": t_ours,
        "rsync_s": rsync(a / "big", rs / "big", "edit"),
        "bytes": moved,
    }
    insert_middle(a / "big" / "big.bin", random.Random(i).randbytes(1024))
    t_ours, moved = ours(a_url, b_url, f"insert-{i}")
    out["inserted_1kb"] = {
        "ours_s": t_ours,
        "rsync_s": rsync(a / "big", rs / "big", "insert"),
        "bytes": moved,
    }
    t_ours, moved = ours(a_url, b_url, f"same-{i}")
    out["no_change"] = {
        "ours_s": t_ours,
        "rsync_s": rsync(a / "big", rs / "big", "same"),
        "bytes": moved,
    }
    shutil.rmtree(a / "big")
    shutil.rmtree(b / "big", ignore_errors=True)
    small = a / "small"
    small.mkdir()
    rng = random.Random(i)
    for n in range(args.files):
        (small / f"f{n:05d}.txt").write_bytes(rng.randbytes(1024))
    with py_spy(pids, profile if args.profile_case == "small" else None, rate=100):
        t_ours, moved = ours(a_url, b_url, f"small-{i}")
    out["small_files"] = {
        "ours_s": t_ours,
        "rsync_s": rsync(small, rs / "small", "small"),
        "bytes": moved,
    }
    return out


def main() -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size-mb", type=int, default=1024, help="the big file's size (MiB)")
    parser.add_argument("--files", type=int, default=10_000, help="how many 1 KiB files")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--quiet-wait", type=float, default=60.0)
    parser.add_argument(
        "--profile", type=Path, help="sample both services (py-spy) in the first big case"
    )
    parser.add_argument(
        "--profile-case",
        choices=("big", "small"),
        default="big",
        help="the case --profile samples: the big file, or the small files",
    )
    parser.add_argument(
        "--sequential", action="store_true", help="pull after the checkin ended (no overlap)"
    )
    args = parser.parse_args()
    global OVERLAP
    OVERLAP = not args.sequential
    tmp = Path(tempfile.mkdtemp(prefix="thresher-bench-sync-"))
    free = shutil.disk_usage(tmp).free
    if free < 4 * args.size_mb * 2**20:
        raise SystemExit(f"only {free >> 20} MiB free in {tmp}: give a smaller --size-mb")
    env = dict(os.environ, THRESHER_FILES_TOKEN=TOKEN)
    a, b, rs = tmp / "a-proj", tmp / "b-proj", tmp / "rsync-proj"
    for folder in (a, b, rs):
        folder.mkdir()
    ports = [free_port() for _ in range(3)]
    urls = (f"http://127.0.0.1:{ports[0]}", f"http://127.0.0.1:{ports[1]}")
    base = thresher_argv()
    try:
        with contextlib.ExitStack() as stack:
            procs = {}
            for name, port, root in (("a", ports[0], a), ("b", ports[1], b)):
                argv = [
                    *base,
                    "files",
                    "--site",
                    name,
                    "--root",
                    str(tmp / f"{name}-files"),
                    "--volume",
                    f"proj={root}",
                    "--port",
                    str(port),
                ]
                procs[f"files_{name}"] = stack.enter_context(
                    process(argv, f"http://127.0.0.1:{port}", env)
                )
            controller_argv = [
                *base,
                "controller",
                "--data-dir",
                str(tmp / "controller"),
                "--port",
                str(ports[2]),
            ]
            procs["controller"] = stack.enter_context(
                process(controller_argv, f"http://127.0.0.1:{ports[2]}", env)
            )
            WATCH.update(procs)
            busy = wait_quiet(args.quiet_wait)
            runs = []
            cpu_before = procs["controller"].cpu_times()
            started = time.perf_counter()
            with Peak({k: v for k, v in procs.items()}) as peak:
                PEAKS.append(peak)
                for i in range(args.runs):
                    log(f"run {i + 1} of {args.runs}")
                    runs.append(one_run(a, b, rs, urls, args, i))
            wall = time.perf_counter() - started
            cpu_after = procs["controller"].cpu_times()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    controller_cpu = (cpu_after.user + cpu_after.system) - (cpu_before.user + cpu_before.system)
    size = args.size_mb * 2**20
    cases: dict[str, Any] = {}
    for case in runs[0]:
        ours_s = [r[case]["ours_s"] for r in runs]
        rsync_s = [r[case]["rsync_s"] for r in runs]
        cases[case] = {
            "ours_s": spread(ours_s),
            "rsync_s": spread(rsync_s),
            "ratio": round(statistics.median(ours_s) / statistics.median(rsync_s), 2),
            "bytes_moved": int(statistics.median([r[case]["bytes"] for r in runs])),
        }
    for case, prefix in (
        ("big", "big"),
        ("changed_1pct", "edit"),
        ("inserted_1kb", "insert"),
        ("no_change", "same"),
        ("small_files", "small"),
    ):
        cases[case]["of_which_checkin_s"] = spread(CHECKIN_S[prefix])
        cases[case]["cpu_s"] = {n: spread(v) for n, v in CPU_S[prefix].items()}
    for case in ("changed_1pct", "inserted_1kb"):
        cases[case]["moved_pct_of_file"] = round(100 * cases[case]["bytes_moved"] / size, 2)
    return {
        "bench": "sync",
        "date": stamp(),
        "size_mb": args.size_mb,
        "files": args.files,
        "runs": args.runs,
        "overlap": OVERLAP,
        "cases": cases,
        "memory_growth_mb": peak.growth_mb(),
        "controller_cpu_pct_of_a_core": round(100 * controller_cpu / wall, 2),
        "cpu_busy_before_pct": busy,
        "machine": machine(),
    }


if __name__ == "__main__":
    run("sync", main)
