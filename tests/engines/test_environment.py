from __future__ import annotations

import pytest

from thresher.engines import EngineConfigError
from thresher.engines.environment import apply_envs, select_envs

PER_OS = {
    "common": {"STUDIO": "acme", "OCIO": "/common/config.ocio"},
    "linux": {"OCIO": "/linux/config.ocio", "LD_FLAG": "1"},
    "mac": {"OCIO": "/mac/config.ocio"},
    "windows": {"OCIO": "C:\\ocio\\config.ocio"},
}


@pytest.mark.parametrize(
    ("os_name", "expected"),
    [
        ("linux", {"STUDIO": "acme", "OCIO": "/linux/config.ocio", "LD_FLAG": "1"}),
        ("mac", {"STUDIO": "acme", "OCIO": "/mac/config.ocio"}),
        ("darwin", {"STUDIO": "acme", "OCIO": "/mac/config.ocio"}),
        ("windows", {"STUDIO": "acme", "OCIO": "C:\\ocio\\config.ocio"}),
    ],
)
def test_per_os_sections_apply_over_common(os_name: str, expected: dict[str, str]) -> None:
    assert select_envs(PER_OS, os_name=os_name) == expected


def test_flat_envs_apply_on_every_os() -> None:
    flat = {"A": "1", "B": 2, "C": None}
    for os_name in ("linux", "mac", "windows"):
        assert select_envs(flat, os_name=os_name) == {"A": "1", "B": "2", "C": None}


def test_a_missing_os_section_leaves_common() -> None:
    assert select_envs({"common": {"A": "1"}, "linux": {"B": "2"}}, os_name="mac") == {"A": "1"}


def test_values_extend_the_environment_and_none_unsets() -> None:
    base = {"PATH": "/usr/bin", "DROP": "x", "KEEP": "y"}
    env = apply_envs(base, {"PATH": "/opt/app/bin:${PATH}", "DROP": None, "PRICE": "$$5 $NOPE"})
    assert env == {"PATH": "/opt/app/bin:/usr/bin", "KEEP": "y", "PRICE": "$5 $NOPE"}
    assert base["DROP"] == "x"  # the base is not modified


@pytest.mark.parametrize(
    ("envs", "message"),
    [
        ("A=1", "must be an object"),
        ({"common": {"A": "1"}, "B": "2"}, "mixes per-OS sections"),
        ({"A=B": "1"}, "bad environment variable name"),
        ({"A": ["x"]}, "must be a string, number or null"),
    ],
)
def test_invalid_envs_are_refused(envs: object, message: str) -> None:
    with pytest.raises(EngineConfigError, match=message):
        select_envs(envs, os_name="linux")
