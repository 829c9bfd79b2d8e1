"""End to end: GPU lanes on a real worker running real processes.

No GPU can be used here, so the worker declares its lanes' device ids (`--lane-gpus`) instead of
detecting them with nvidia-smi; what is tested is what a task on each lane sees.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.conftest import Farm
from thresher.testing import wait_until

pytestmark = pytest.mark.e2e

# Each task waits (up to 30 s) until all three have started, so the three run at once, one per
# lane; then it says which lane it ran on and which GPUs it was given.
_BARRIER = (
    'touch "$GATE/$THRESHER_TASK"; i=0; '
    'while [ "$(ls "$GATE" | wc -l)" -lt 3 ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done; '
    'echo "lane=$THRESHER_LANE cuda=[$CUDA_VISIBLE_DEVICES]"'
)


def test_each_gpu_lane_sees_its_own_cuda_visible_devices(sqlite_farm: Farm, tmp_path: Path) -> None:
    farm = sqlite_farm
    farm.controller()
    farm.worker("gpu01", lanes=3, args=["--lane-gpus", "0=0,1=1"])
    gate = tmp_path / "gate"
    gate.mkdir()
    with farm.client() as client:
        lanes = {lane.index: lane.gpus for lane in client.worker("gpu01").lanes_detail}
        assert lanes == {0: [0], 1: [1], 2: []}
        assert client.worker("gpu01").gpus == 2
        job = client.submit("gpus", ["sh", "-c", _BARRIER], frames="1-3", env={"GATE": str(gate)})
        wait_until(
            lambda: client.job(job.id).status == "succeeded", timeout=60, what="the job done"
        )
        seen = set()
        for index in range(3):
            lines = [line.text for line in client.log(job.id, index) if line.stream == "stdout"]
            seen.update(lines)
    # A lane that owns no GPU is hidden the others' (an empty list), never given them all.
    assert seen == {"lane=0 cuda=[0]", "lane=1 cuda=[1]", "lane=2 cuda=[]"}

    # An OpenJD job's sessions get their lane's variables too (one session per lane).
    openjd_gate = tmp_path / "openjd-gate"
    openjd_gate.mkdir()
    template = {
        "specificationVersion": "jobtemplate-2023-09",
        "name": "gpus-openjd",
        "steps": [
            {
                "name": "See",
                "parameterSpace": {
                    "taskParameterDefinitions": [{"name": "N", "type": "INT", "range": "1-3"}]
                },
                "script": {
                    "actions": {
                        "onRun": {
                            "command": "sh",
                            "args": [
                                "-c",
                                _BARRIER.replace("$GATE", str(openjd_gate)).replace(
                                    "$THRESHER_TASK", "{{Task.Param.N}}"
                                ),
                            ],
                        }
                    }
                },
            }
        ],
    }
    with farm.client() as client:
        job = client.submit_template(template)
        wait_until(
            lambda: client.job(job.id).status == "succeeded", timeout=60, what="the job done"
        )
        seen = set()
        for index in range(3):
            lines = [line.text for line in client.log(job.id, index) if line.stream == "stdout"]
            seen.update(line for line in lines if line.startswith("lane="))
    assert seen == {"lane=0 cuda=[0]", "lane=1 cuda=[1]", "lane=2 cuda=[]"}


def test_a_gpu_job_runs_only_on_gpu_lanes(sqlite_farm: Farm) -> None:
    farm = sqlite_farm
    farm.controller()
    farm.worker("gpu02", lanes=2, args=["--lane-gpus", "1=0"])
    with farm.client() as client:
        job = client.submit(
            "needs-gpu",
            ["sh", "-c", 'echo "lane=$THRESHER_LANE cuda=[$CUDA_VISIBLE_DEVICES]"'],
            frames="1-4",
            filters="gpu:>0",
        )
        wait_until(
            lambda: client.job(job.id).status == "succeeded", timeout=60, what="the job done"
        )
        seen = {
            line.text
            for index in range(4)
            for line in client.log(job.id, index)
            if line.stream == "stdout"
        }
    assert seen == {"lane=1 cuda=[0]"}
