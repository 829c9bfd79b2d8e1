"""Render overhead: a Blender animation on the farm vs. the same chunk commands run by hand.

The farm side is one worker with 2 lanes running a `blender` engine job of 48 frames in chunks
of 4 (12 tasks). The by-hand side runs the very same 12 command lines (built by the built-in
blender engine's `prepare`, as the worker builds them) 2 at a time from a thread pool, with
their output thrown away. Both render the scene that examples/make_blender_scene.py builds
(320x180, 8 Cycles samples by default). One untimed single-frame render first warms the disk
cache for both. The farm stays up for --rounds rounds (3 by default) of one farm job and one
by-hand run each, alternating which goes first; the medians are reported (ratio), with every
run, and the ratio of the fastest runs (ratio_best: the least disturbed on a shared machine).

farm_s is the controller's own record (job finished_at - created_at); farm_wall_s is measured
here from just before the submit to the status poll that saw the job succeed.

Prints one JSON line:
{"bench": "render_overhead", "frames": 48, "chunk": 4, "lanes": 2, "farm_s": .., "by_hand_s": ..,
 "ratio": .., "goal_ratio": 1.1, ...}
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as c
from thresher.client import Client
from thresher.engines import EngineTask, load_builtin

SCENE_SCRIPT = c.REPO / "examples" / "make_blender_scene.py"


def make_scene(path: Path, args: argparse.Namespace) -> None:
    subprocess.run(
        [
            "blender",
            "-b",
            "--factory-startup",
            "--python",
            str(SCENE_SCRIPT),
            "--",
            str(path),
            "--frames",
            str(args.frames),
            "--width",
            str(args.width),
            "--height",
            str(args.height),
            "--samples",
            str(args.samples),
        ],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def chunk_commands(
    scene: Path, output: str, work: Path, frames: int, chunk: int
) -> list[list[str]]:
    """The argv of every chunk, as the worker's blender engine builds it."""
    engine_class = load_builtin("blender")
    commands = []
    for index, first in enumerate(range(1, frames + 1, chunk)):
        task = EngineTask(
            job_id="by-hand",
            index=index,
            frames=tuple(range(first, min(first + chunk, frames + 1))),
            workdir=str(work),
            input=str(scene),
            output=output,
            parameters={"format": "PNG"},
            job_range=(1, frames),
        )
        commands.append(list(engine_class().prepare(task).argv))
    return commands


def run_by_hand(commands: list[list[str]], lanes: int) -> float:
    def run(argv: list[str]) -> None:
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=lanes) as pool:
        list(pool.map(run, commands))
    return time.perf_counter() - started


def farm_run(
    client: Client, scene: Path, output: Path, args: argparse.Namespace
) -> tuple[float, float]:
    """(controller-recorded seconds, wall seconds) of one engine job of the whole animation."""
    t0 = time.perf_counter()
    job = client.submit_engine(
        "blender",
        name="bench-render",
        input=str(scene),
        range=f"1-{args.frames}",
        output=str(output / "frame_####"),
        bucketsize=args.chunk,
        parameters={"format": "PNG"},
        retries=0,
    )
    done = c.wait_job(client, job.id, every_s=args.poll_every, timeout_s=args.timeout)
    wall = time.perf_counter() - t0
    if done.status != "succeeded" or done.finished_at is None:
        raise SystemExit(f"job ended {done.status}: {done.counts}")
    return done.finished_at - done.created_at, wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--chunk", type=int, default=4)
    parser.add_argument("--lanes", type=int, default=2)
    parser.add_argument("--width", type=int, default=320)
    parser.add_argument("--height", type=int, default=180)
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument(
        "--rounds", type=int, default=3, help="farm and by-hand runs each; medians are reported"
    )
    parser.add_argument("--poll-every", type=float, default=0.1, help="job status poll, seconds")
    parser.add_argument("--timeout", type=float, default=1200.0)
    c.add_common_options(parser)
    args = parser.parse_args()
    if shutil.which("blender") is None:
        raise SystemExit("blender is not installed (apt-get install blender)")

    with c.temp_dir(args.keep) as tmp, c.database(args, tmp) as (db_url, db):
        scene = tmp / "scene.blend"
        c.log(f"building the scene ({args.width}x{args.height}, {args.samples} samples)")
        make_scene(scene, args)
        hand_dir = tmp / "by-hand"
        hand_dir.mkdir()
        commands = chunk_commands(
            scene, str(hand_dir / "out" / "frame_####"), hand_dir, args.frames, args.chunk
        )
        warm = chunk_commands(scene, str(tmp / "warm" / "f_####"), hand_dir, 1, 1)
        run_by_hand(warm, 1)

        with (
            c.controller(tmp / "data", db_url) as ctl,
            ctl.client() as client,
            c.worker(ctl, name="bench-1", lanes=args.lanes, ahead=None, work_dir=tmp / "w"),
        ):
            c.wait_online(client, ["bench-1"])
            busy_before = c.wait_quiet(args.quiet_wait)
            farm_runs: list[tuple[float, float]] = []
            hand_runs: list[float] = []
            for round_no in range(args.rounds):
                # Alternate which side goes first, so a burst of outside load hits both alike.
                sides = ["farm", "hand"] if round_no % 2 == 0 else ["hand", "farm"]
                for side in sides:
                    if side == "farm":
                        farm_runs.append(farm_run(client, scene, tmp / f"farm{round_no}", args))
                        c.log(
                            f"farm: {farm_runs[-1][0]:.2f}s (controller), {farm_runs[-1][1]:.2f}s"
                        )
                    else:
                        shutil.rmtree(hand_dir / "out", ignore_errors=True)
                        hand_runs.append(run_by_hand(commands, args.lanes))
                        c.log(f"by hand, {args.lanes} at a time: {hand_runs[-1]:.2f}s")
            rendered = len(list((tmp / "farm0").glob("frame_*.png")))
            by_hand_frames = len(list((hand_dir / "out").glob("frame_*.png")))
        farm_s = statistics.median(run[0] for run in farm_runs)
        farm_wall_s = statistics.median(run[1] for run in farm_runs)
        by_hand_s = statistics.median(hand_runs)

    c.emit(
        {
            "bench": "render_overhead",
            "frames": args.frames,
            "chunk": args.chunk,
            "tasks": len(commands),
            "rounds": args.rounds,
            "lanes": args.lanes,
            "resolution": f"{args.width}x{args.height}",
            "samples": args.samples,
            "farm_s": round(farm_s, 3),
            "farm_wall_s": round(farm_wall_s, 3),
            "by_hand_s": round(by_hand_s, 3),
            "ratio": round(farm_s / by_hand_s, 3),
            "ratio_best": round(min(r[0] for r in farm_runs) / min(hand_runs), 3),
            "farm_runs_s": [round(run[0], 2) for run in farm_runs],
            "by_hand_runs_s": [round(run, 2) for run in hand_runs],
            "goal_ratio": 1.1,
            "frames_rendered": {"farm": rendered, "by_hand": by_hand_frames},
            "db": db,
            "cpu_busy_before_pct": busy_before,
            "topology": c.TOPOLOGY,
            "machine": c.machine(),
            "date": c.stamp(),
        }
    )


if __name__ == "__main__":
    main()
