"""Write tests/heaviest.txt: the test files that took longest in a run, heaviest first.

Usage: .venv/bin/python scripts/heaviest-tests.py REPORT.xml [N]

REPORT.xml is pytest's `--junitxml` report of a whole run (scripts/run-tests.sh's first part is
the one that matters: two pytest workers, a test file at a time). The suite sends the files
named in tests/heaviest.txt to its workers first (tests/conftest.py), so that no long file
starts near the end of the run while the other worker has nothing left to do. Keep the N
(default 40) heaviest; files not listed follow in the order pytest collects them.
"""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET
from collections import defaultdict
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "tests" / "heaviest.txt"


def main(report: str, keep: int) -> None:
    seconds: dict[str, float] = defaultdict(float)
    for case in ET.parse(report).iter("testcase"):
        # classname: tests.e2e.test_farm (or tests.e2e.test_farm.TestClass)
        parts = case.get("classname", "").split(".")
        while parts and not parts[-1].startswith("test_"):
            parts.pop()
        if parts:
            seconds["/".join(parts) + ".py"] += float(case.get("time", "0"))
    heaviest = sorted(seconds.items(), key=lambda item: -item[1])[:keep]
    lines = [f"{path}  # {spent:.0f} s" for path, spent in heaviest]
    head = "# Written by scripts/heaviest-tests.py from a whole run's report; heaviest first.\n"
    OUT.write_text(head + "\n".join(lines) + "\n")


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 40)
