"""Adaptive chunking on a real farm: a CHUNK[INT] step with `targetRuntimeSeconds` whose items
each take a known time starts with chunks of `defaultTaskCount`, re-plans to larger chunks as
run times come in, and runs every item exactly once."""

from __future__ import annotations

import re
import sys
from collections import Counter

import pytest

from tests.e2e.conftest import Farm
from tests.e2e.openjd_support import start_worker, wait_final

pytestmark = [pytest.mark.e2e, pytest.mark.openjd]

ITEMS = 60
# Each item of a chunk sleeps 0.2 s (the task's own work) and says which frame it was.
RUN_ITEMS = """
import sys, time
first, last = (int(n) for n in sys.argv[1].split("-"))
for frame in range(first, last + 1):
    time.sleep(0.2)
    print(f"ITEM {frame}", flush=True)
"""


def template() -> dict[str, object]:
    frame = {
        "name": "Frame",
        "type": "CHUNK[INT]",
        "range": f"1-{ITEMS}",
        "chunks": {
            "defaultTaskCount": 1,
            "targetRuntimeSeconds": 4,
            "rangeConstraint": "CONTIGUOUS",
        },
    }
    run = {"command": sys.executable, "args": ["-c", RUN_ITEMS, "{{Task.Param.Frame}}"]}
    return {
        "specificationVersion": "jobtemplate-2023-09",
        "extensions": ["TASK_CHUNKING"],
        "name": "Adaptive",
        "steps": [
            {
                "name": "Render",
                "parameterSpace": {"taskParameterDefinitions": [frame]},
                "script": {"actions": {"onRun": run}},
            }
        ],
    }


def test_chunks_grow_to_the_target_and_every_item_runs_once(farm: Farm) -> None:
    farm.controller()
    start_worker(farm, "w1", lanes=2)
    with farm.client() as client:
        check = client.check_template(template())
        assert (check.steps[0].tasks, check.steps[0].target_runtime_s) == (ITEMS, 4)
        job_id = client.submit_template(template(), retries=0).id

    job = wait_final(farm, [job_id], timeout=120)[job_id]

    assert job.status == "succeeded"
    with farm.client() as client:
        page = client.tasks(job_id, limit=1000)
        sizes = [len(t.frames) for t in page.tasks]
        ran: Counter[int] = Counter()
        for task in page.tasks:
            lines = [line.text for line in client.log(job_id, task.index)]
            items = [int(m.group(1)) for line in lines if (m := re.fullmatch(r"ITEM (\d+)", line))]
            assert len(items) == len(task.frames), (task.index, lines)
            ran.update(items)
    assert page.total == len(page.tasks) == job.counts.total == job.counts.succeeded
    assert ran == Counter(range(1, ITEMS + 1)), "every item runs exactly once"
    assert sizes[0] == 1, "the first chunk has defaultTaskCount items"
    assert max(sizes[1:]) > sizes[0], f"later chunks grow with the measured run times: {sizes}"
