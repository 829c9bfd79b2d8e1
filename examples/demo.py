"""Thresher's demo: a local farm renders a Blender animation and encodes it to a movie.

    make demo                       # or: .venv/bin/python examples/demo.py [--keep] [--frames 48]

It starts `thresher farm` (controller on SQLite + 2 local workers) in ./demo-farm with a fresh
database, builds a small animated scene with Blender, submits it to the built-in `blender`
engine in chunks of 4 frames and an `ffmpeg` engine job that waits on it, shows their progress,
and prints where the movie is. The farm is stopped at the end unless --keep is given.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from thresher.client import Client, ThresherError

HERE = Path(__file__).resolve().parent
console = Console()


def need(*programs: str) -> None:
    missing = [p for p in programs if shutil.which(p) is None]
    if missing:
        console.print(
            f"[red]missing: {', '.join(missing)}[/red] - install them with\n"
            "  sudo apt-get install -y blender ffmpeg povray povray-includes\n"
            "(make demo does this when run as root)"
        )
        sys.exit(1)


def start_farm(data_dir: Path, port: int) -> tuple[subprocess.Popen[bytes], str, str]:
    thresher = str(Path(sys.executable).with_name("thresher"))
    log = (data_dir / "farm.log").open("wb")
    argv = [thresher, "farm", "--data-dir", str(data_dir), "--port", str(port), "--workers", "2"]
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    token_file = data_dir / "admin-token"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            console.print((data_dir / "farm.log").read_text())
            sys.exit("the farm did not start")
        if token_file.exists():
            try:
                with Client(url, token_file.read_text().strip()) as client:
                    if sum(w.status == "online" for w in client.workers()) >= 2:
                        return proc, url, token_file.read_text().strip()
            except ThresherError:
                pass
        time.sleep(0.2)
    proc.terminate()
    sys.exit("the farm did not come up within 60 s")


def make_scene(work: Path, frames: int) -> Path:
    scene = work / "scene.blend"
    console.print(f"building the scene with Blender: {scene}")
    subprocess.run(
        [
            "blender",
            "-b",
            "--factory-startup",
            "--python",
            str(HERE / "make_blender_scene.py"),
            "--",
            str(scene),
            "--frames",
            str(frames),
        ],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return scene


def follow(client: Client, job_ids: list[int]) -> bool:
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(),
        console=console,
    ) as progress:
        bars = {}
        for job_id in job_ids:
            job = client.job(job_id)
            bars[job_id] = progress.add_task(
                f"job {job_id} {job.name}", total=job.counts.total, status=job.status
            )
        while True:
            final = True
            for job_id, bar in bars.items():
                job = client.job(job_id)
                progress.update(bar, completed=job.counts.succeeded, status=job.status)
                final &= job.status in ("succeeded", "failed", "canceled")
            if final:
                return all(client.job(j).status == "succeeded" for j in job_ids)
            time.sleep(0.5)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data-dir", type=Path, default=Path("demo-farm"), help="recreated on each run"
    )
    parser.add_argument("--port", type=int, default=8420)
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--keep", action="store_true", help="leave the farm running")
    args = parser.parse_args()
    need("blender", "ffmpeg")
    data_dir = args.data_dir.resolve()
    work = data_dir / "demo"
    shutil.rmtree(work, ignore_errors=True)
    for stale in data_dir.glob("thresher.db*"):  # each run starts from a fresh farm
        stale.unlink()
    (work / "render").mkdir(parents=True)
    farm, url, token = start_farm(data_dir, args.port)
    ok = False
    try:
        scene = make_scene(work, args.frames)
        movie = work / "movie.mp4"
        with Client(url, token) as client:
            render = client.submit_engine(
                "blender",
                name="demo: render",
                input=str(scene),
                range=f"1-{args.frames}",
                output=str(work / "render" / "frame_####"),
                bucketsize=4,
                parameters={"format": "PNG"},
            )
            encode = client.submit_engine(
                "ffmpeg",
                name="demo: encode",
                input=str(work / "render" / "frame_####.png"),
                range=f"1-{args.frames}",
                output=str(movie),
                parameters={"framerate": 24},
                after=[render.id],
            )
            console.print(f"submitted jobs {render.id} (render) and {encode.id} (encode)")
            ok = follow(client, [render.id, encode.id])
        if ok:
            console.print(f"\n[green]done.[/green] the movie: {movie}")
        else:
            console.print("\n[red]a job did not succeed[/red]: see `thresher log JOB/TASK`")
        console.print(
            "look at the jobs with:\n"
            f"  export THRESHER_URL={url} THRESHER_TOKEN=$(cat {data_dir / 'admin-token'})\n"
            f"  .venv/bin/thresher jobs\n  .venv/bin/thresher tasks {render.id}"
        )
    finally:
        if args.keep:
            console.print(f"the farm keeps running (pid {farm.pid}); stop it with: kill {farm.pid}")
        else:
            farm.send_signal(signal.SIGINT)
            farm.wait(timeout=60)
            console.print("farm stopped (run with --keep to leave it up)")
    return 0 if ok else 1


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
