"""GPU lanes on the worker: parsing `--lane-gpus` and the variables a lane's tasks get."""

from __future__ import annotations

import pytest

from thresher.core.filters import WorkerFacts
from thresher.core.gpu_lanes import gpu_lanes, lane_facts
from thresher.worker.gpus import gpu_env, parse_lane_gpus


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0=0,1=1", {0: (0,), 1: (1,)}),
        ("0=0+1, 2=3", {0: (0, 1), 2: (3,)}),
        ("1=2+2", {1: (2,)}),
        ("", {}),
        ("auto", {0: (4,), 1: (5,), 2: (6,)}),
    ],
)
def test_lane_gpus_parse(text: str, expected: dict[int, tuple[int, ...]]) -> None:
    assert parse_lane_gpus(text, lanes=3, detected=[4, 5, 6, 7]) == expected


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("0", "LANE=GPU"),
        ("x=1", "LANE=GPU"),
        ("0=a", "LANE=GPU"),
        ("5=0", "lane 5"),
        ("0=1,0=2", "twice"),
    ],
)
def test_bad_lane_gpus_are_refused_by_name(text: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        parse_lane_gpus(text, lanes=2)


def test_gpu_env_names_the_lanes_own_devices_and_hides_them_from_cpu_lanes() -> None:
    lanes = {0: (0,), 1: (1, 2)}
    assert gpu_env(lanes, 1)["CUDA_VISIBLE_DEVICES"] == "1,2"
    assert gpu_env(lanes, 1)["HIP_VISIBLE_DEVICES"] == "1,2"
    assert gpu_env(lanes, 3)["CUDA_VISIBLE_DEVICES"] == ""
    assert gpu_env({}, 0) == {}  # no GPU lanes declared: the task sees the machine as it is


def test_filters_see_the_lanes_gpus_when_the_worker_has_gpu_lanes() -> None:
    facts = WorkerFacts.create("h", "hq", os="linux", cores=8, ram_bytes=1, gpus=3)
    lanes = gpu_lanes({"0": [0, 1], "2": [2]})
    assert lane_facts(facts, lanes, 0).gpus == 2
    assert lane_facts(facts, lanes, 1).gpus == 0
    assert lane_facts(facts, {}, 1).gpus == 3
