"""Helpers of the OpenJD farm tests: a farm whose workers run OpenJD sessions, the reference CLI,
and reading a task's log back as session actions."""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import Farm, Proc
from tests.openjd.conftest import ReferenceCli, session_actions
from thresher.testing import wait_until

THRESHER = str(Path(sys.executable).with_name("thresher"))
SHARED = (Path(__file__).resolve().parents[2] / ".." / "shared").resolve()
SAMPLES = SHARED / "openjd-samples"
CONFORMANCE = SHARED / "openjd-conformance"
FINAL = ("succeeded", "failed", "canceled")


def reference_cli() -> ReferenceCli:
    cli = os.environ.get("THRESHER_OPENJD_CLI")
    if not cli or not os.access(cli, os.X_OK):
        pytest.skip(
            "THRESHER_OPENJD_CLI is not set: run scripts/openjd-reference.sh DIR and export "
            "THRESHER_OPENJD_CLI=DIR/bin/openjd to compare with the reference openjd CLI"
        )
    return ReferenceCli(cli)


def start_worker(
    farm: Farm, name: str, *, lanes: int = 2, attrs: Mapping[str, str] | None = None
) -> Proc:
    """A worker whose idle OpenJD sessions close quickly (their exits reach the logs soon)."""
    argv = [THRESHER, "worker", "--controller", farm.url, "--token", farm.token, "--name", name]
    argv += ["--lanes", str(lanes), "--grace", "2", "--openjd-idle", "0.3"]
    argv += ["--work-dir", str(farm.tmp / f"work-{name}")]
    for key, value in (attrs or {}).items():
        argv += ["--attr", f"{key}={value}"]
    proc = farm._spawn(f"worker-{name}", argv)
    with farm.client() as client:
        wait_until(
            lambda: any(w.name == name and w.status == "online" for w in client.workers()),
            timeout=30,
            what=f"worker {name} online",
        )
    return proc


def wait_final(farm: Farm, job_ids: Iterable[int], *, timeout: float) -> dict[int, Any]:
    """Wait until every job has ended; returns them by id."""
    ids = list(job_ids)
    found: dict[int, Any] = {}
    with farm.client() as client:

        def ended() -> bool:
            for job_id in ids:
                if job_id not in found:
                    job = client.job(job_id)
                    if job.status in FINAL:
                        found[job_id] = job
            return len(found) == len(ids)

        wait_until(ended, timeout=timeout, what="every job ended")
    return found


def task_texts(farm: Farm, job_id: int, block: int, index: int) -> list[str]:
    with farm.client() as client:
        return [line.text for line in client.log(job_id, index, block=block)]


_VOLATILE = [
    # ffmpeg's progress and timing say how fast this run was, not what it did.
    (re.compile(r"\b(fps|speed|elapsed|bitrate|q)=\s*\S+"), r"\1=<N>"),
    (re.compile(r"\bframe=\s*\d+"), "frame=<N>"),
    (re.compile(r"\b\d+(\.\d+)? fps\b"), "<N> fps"),
    (re.compile(r"@ 0x[0-9a-f]+"), "@ <ADDRESS>"),
]
#: ffmpeg's progress lines while it encodes (every half second: how many, says how long the
#: run took on a loaded machine); its last one, with `Lsize=`, says what it wrote and stays.
_PROGRESS = re.compile(r"frame=<N> .*(?<!L)size=")


def normalised(
    actions: Sequence[tuple[str, list[str]]], replace: Mapping[str, str]
) -> list[tuple[str, list[str]]]:
    out = []
    for title, lines in actions:
        fixed = []
        for line in lines:
            for old, new in replace.items():
                line = line.replace(old, new)
            for pattern, repl in _VOLATILE:
                line = pattern.sub(repl, line)
            if not _PROGRESS.match(line):
                fixed.append(line)
        out.append((title, fixed))
    return out


def actions_of(texts: Iterable[str]) -> list[tuple[str, list[str]]]:
    return [(a.title, a.output) for a in session_actions(texts)]


def dependency_order(steps: Sequence[Any]) -> list[Any]:
    done: set[str] = set()
    order: list[Any] = []
    while len(order) < len(steps):
        for step in steps:
            if step.name not in done and set(step.dependencies) <= done:
                order.append(step)
                done.add(step.name)
                break
    return order
