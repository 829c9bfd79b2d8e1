"""What `deadline bundle submit` of a bundle with a large input under a volume root costs
without a storage profile (the input is hashed and uploaded to the attachments endpoint, which
checks and drops it) and with the site's storage profile (the root is SHARED: nothing sent).

A controller (`thresher controller`, SQLite in a temp dir, no worker: the jobs only wait) with
one volume; an input of --mib MiB of random bytes under its root; the real `deadline` CLI
(THRESHER_DEADLINE_CLI). Each round submits the bundle twice, once each way (the first of
them alternating), each in a fresh HOME (no hash cache, no S3 check cache: a studio's first
submit of a scene; later submits re-upload too, as Thresher keeps nothing the CLI could find).
Upload requests are counted from the controller's /metrics.

Prints one JSON line:
{"bench": "deadline_submit", "mib": M, "rounds": R,
 "upload": {"median_s": .., "min_s": .., "max_s": .., "requests_per_submit": ..},
 "profile": {...}, "saved_s_median": .., ...}
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as c
from thresher.controller.routes.deadline.storage import profile_id

FARM_ID = "farm-" + "0" * 31 + "1"
QUEUE_ID = "queue-" + "0" * 31 + "1"
TEMPLATE = """specificationVersion: jobtemplate-2023-09
name: Reads
parameterDefinitions:
- {name: Scene, type: PATH, objectType: FILE, dataFlow: IN}
steps:
- name: Read
  script: {actions: {onRun: {command: wc, args: ["-c", "{{Param.Scene}}"]}}}
"""


def uploads(ctl: c.Controller) -> int:
    text = httpx.get(f"{ctl.url}/metrics", headers={"Authorization": f"Bearer {ctl.token}"}).text
    return sum(
        int(float(line.rsplit(" ", 1)[1]))
        for line in text.splitlines()
        if line.startswith("thresher_request_seconds_count{")
        and 'route="/deadline-s3/' in line
        and ('method="PUT"' in line or 'method="POST"' in line)
    )


def submit(
    cli: str, ctl: c.Controller, key: dict[str, str], home: Path, bundle: Path, scene: Path
) -> float:
    home.mkdir(exist_ok=True)
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(home),
        "AWS_ENDPOINT_URL_DEADLINE": f"{ctl.url}/deadline",
        "AWS_ENDPOINT_URL_S3": f"{ctl.url}/deadline-s3",
        "AWS_DISABLE_HOST_PREFIX_INJECTION": "true",
        "AWS_ACCESS_KEY_ID": key["access_key_id"],
        "AWS_SECRET_ACCESS_KEY": key["secret_access_key"],
        "AWS_DEFAULT_REGION": "us-west-2",
        "DEADLINE_CLOUD_TELEMETRY_OPT_OUT": "true",
    }
    argv = [cli, "bundle", "submit", str(bundle), "--yes", "-p", f"Scene={scene}"]
    argv += ["--farm-id", FARM_ID, "--queue-id", QUEUE_ID]
    started = time.perf_counter()
    subprocess.run(argv, env=env, check=True, capture_output=True, timeout=600)
    return time.perf_counter() - started


def main() -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=256, help="the input's size")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--quiet-wait", type=float, default=60.0)
    args = parser.parse_args()
    cli = os.environ.get("THRESHER_DEADLINE_CLI")
    if not cli:
        raise SystemExit("set THRESHER_DEADLINE_CLI (scripts/deadline-client.sh DIR)")
    with c.temp_dir(args.keep) as tmp, c.controller(tmp / "data", None) as ctl:
        share = tmp / "share"
        share.mkdir()
        with ctl.client() as client:
            client.set_volume("proj", {"hq": {"*": str(share)}})
            key = client.create_access_key("bench")
        scene = share / "scene.bin"
        with scene.open("wb") as out:
            for _ in range(args.mib):
                out.write(os.urandom(2**20))
        bundle = tmp / "bundle"
        bundle.mkdir()
        (bundle / "template.yaml").write_text(TEMPLATE)
        busy_before = c.wait_quiet(args.quiet_wait)
        times: dict[str, list[float]] = {"upload": [], "profile": []}
        requests: dict[str, list[int]] = {"upload": [], "profile": []}
        for n in range(args.rounds):
            order = ["upload", "profile"] if n % 2 == 0 else ["profile", "upload"]
            for way in order:
                home = tmp / f"home-{n}-{way}"
                if way == "profile":
                    config = home / ".deadline" / "config"
                    config.parent.mkdir(parents=True)
                    config.write_text(
                        f"[profile-(default) defaults]\nfarm_id = {FARM_ID}\n"
                        f"[profile-(default) {FARM_ID} settings]\n"
                        f"storage_profile_id = {profile_id('hq', 'LINUX')}\n"
                    )
                before = uploads(ctl)
                took = submit(cli, ctl, key, home, bundle, scene)
                times[way].append(took)
                requests[way].append(uploads(ctl) - before)
                c.log(f"round {n + 1} {way}: {took:.2f} s, {requests[way][-1]} upload requests")

    def summary(way: str) -> dict[str, Any]:
        got = times[way]
        return {
            "median_s": round(statistics.median(got), 3),
            "min_s": round(min(got), 3),
            "max_s": round(max(got), 3),
            "requests_per_submit": statistics.median(requests[way]),
        }

    saved = [u - p for u, p in zip(times["upload"], times["profile"], strict=True)]
    return {
        "bench": "deadline_submit",
        "mib": args.mib,
        "rounds": args.rounds,
        "upload": summary("upload"),
        "profile": summary("profile"),
        "saved_s_median": round(statistics.median(saved), 3),
        "cpu_busy_before_pct": busy_before,
        "machine": c.machine(),
        "date": c.stamp(),
    }


if __name__ == "__main__":
    c.run("deadline_submit", main)
