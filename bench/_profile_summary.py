"""Summarise a `py-spy record --format raw` profile (collapsed stacks) by where the time goes.

Usage: python bench/_profile_summary.py PROFILE.txt [--top N] [--json]

Each sample is charged to the innermost frame that belongs to a known category (so SQL run by a
route is "SQL", a pydantic validation inside FastAPI is "pydantic/JSON"). Samples whose leaf is a
blocking wait (epoll, a condition variable, a thread pool's idle queue) are "idle" and left out of
the percentages. Samples under an import are "startup". py-spy rate R: CPU seconds = samples / R.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

IDLE_LEAVES = (
    "select (selectors.py",
    "Condition.wait (threading.py",
    "_worker (concurrent/futures/thread.py",
    "Event.wait (threading.py",
    "Thread.join",
    "_wait_for_tstate_lock",
    "poll (",
    "ProcessRunner._read (thresher/worker/process.py:329)",  # select.poll() in a reader thread
)

# (category, substrings), checked innermost frame first; the first match wins.
CATEGORIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("SQL (SQLAlchemy + driver)", ("sqlalchemy/", "sqlite3/", "psycopg/", "psycopg_pool/")),
    ("pydantic/JSON", ("pydantic/", "pydantic_core", "json/", "fastapi/encoders.py")),
    ("process spawn/reap", ("subprocess.py", "thresher/worker/process.py", "os.py")),
    (
        "thread handoff (thread pools, wakeups)",
        (
            "threading.py",
            "concurrent/futures/",
            "anyio/",
            "asyncio/threads.py",
            "_write_to_self",
            "call_soon_threadsafe",
        ),
    ),
    (
        "HTTP (uvicorn/h11/starlette/fastapi/httpx)",
        (
            "uvicorn/",
            "h11/",
            "starlette/",
            "fastapi/",
            "httpx/",
            "httpcore/",
            "email/",
            "urllib/",
            "http/",
        ),
    ),
    ("asyncio event loop", ("asyncio/",)),
    ("thresher code", ("thresher/",)),
)


def categorize(frames: list[str]) -> str:
    if any("<frozen importlib" in f for f in frames):
        return "startup (imports)"
    leaf = frames[-1]
    if any(marker in leaf for marker in IDLE_LEAVES):
        return "idle"
    for frame in reversed(frames[1:]):
        for name, markers in CATEGORIES:
            if any(m in frame for m in markers):
                return name
    return "other"


def summarise(path: Path) -> tuple[Counter[str], Counter[str], Counter[str], Counter[str]]:
    by_category: Counter[str] = Counter()
    by_thread: Counter[str] = Counter()
    by_leaf: Counter[str] = Counter()
    by_own: Counter[str] = Counter()
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():  # a frame name with a space, split by py-spy
            continue
        n = int(count)
        frames = stack.split(";")
        category = categorize(frames)
        by_category[category] += n
        if category not in ("idle", "startup (imports)"):
            thread = frames[0].split(":")[-1].strip() or frames[0]
            by_thread[thread] += n
            by_leaf[frames[-1]] += n
            own = [f for f in frames[1:] if "thresher/" in f]
            by_own[_short(own[-1]) if own else "(no thresher frame)"] += n
    return by_category, by_thread, by_leaf, by_own


def _short(frame: str) -> str:
    """'Store.claim_task (thresher/store/store.py:904)' -> 'Store.claim_task (store.py)'."""
    name, _, where = frame.partition(" (")
    return f"{name} ({where.rsplit('/', 1)[-1].split(':')[0]})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("profile", type=Path)
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    cats, threads, leaves, own = summarise(args.profile)
    busy = sum(n for c, n in cats.items() if c not in ("idle", "startup (imports)"))
    if args.json:
        out = {"busy_samples": busy, "categories": dict(cats.most_common())}
        out["thresher_functions"] = dict(own.most_common(args.top))
        print(json.dumps(out))
        return
    idle, startup = cats["idle"], cats["startup (imports)"]
    print(f"{args.profile}: {busy} busy samples (idle {idle}, startup {startup})")
    for name, n in cats.most_common():
        if name in ("idle", "startup (imports)"):
            continue
        print(f"  {100 * n / busy:5.1f}%  {n:6d}  {name}")
    print("by thread (busy samples):")
    for name, n in threads.most_common(6):
        print(f"  {100 * n / busy:5.1f}%  {n:6d}  {name}")
    print(f"top {args.top} innermost thresher functions (busy samples, callees included):")
    for name, n in own.most_common(args.top):
        print(f"  {100 * n / busy:5.1f}%  {n:6d}  {name}")
    print(f"top {args.top} leaf frames (busy samples):")
    for name, n in leaves.most_common(args.top):
        print(f"  {100 * n / busy:5.1f}%  {n:6d}  {name}")


if __name__ == "__main__":
    main()
