"""Command templates: checked at submit for the chunk size, expanded per task."""

from __future__ import annotations

import pytest

from thresher.core.errors import InvalidInput
from thresher.core.placeholders import check_template, expand, expand_text, frame_values


@pytest.mark.parametrize(
    ("argv", "frames", "expected"),
    [
        (["r", "{start}-{end}"], [3, 4, 5], ["r", "3-5"]),
        (["r", "f{frame:04d}.png"], [7], ["r", "f0007.png"]),
        (["r", "{frames}"], [1, 3, 5], ["r", "1,3,5"]),
        (["r", "{{literal}}", "{start}"], [2], ["r", "{literal}", "2"]),
        (["plain"], [1], ["plain"]),
    ],
)
def test_expand_a_command_job_template(
    argv: list[str], frames: list[int], expected: list[str]
) -> None:
    assert expand(argv, frames) == expected


@pytest.mark.parametrize(
    ("argv", "chunk", "message"),
    [
        ([], 1, "the command is empty"),
        (["r", "{foo}"], 1, "unknown placeholder {foo}"),
        (["r", "{count}"], 1, "unknown placeholder {count}"),  # engines only
        (["r", "{frame}"], 2, "needs one-frame chunks"),
        (["r", "{start:q}"], 1, "placeholder {start:q}"),
        (["r", "{start!r}"], 1, "too complex"),
        (["r", "{start.real}"], 1, "not a plain name"),
        (["r", "{start"], 1, "bad placeholder syntax"),
    ],
)
def test_check_template_refuses_what_cannot_expand(
    argv: list[str], chunk: int, message: str
) -> None:
    with pytest.raises(InvalidInput) as info:
        check_template(argv, chunk=chunk)
    assert message in info.value.message
    assert info.value.field == "command"


def test_check_template_accepts_every_command_placeholder() -> None:
    check_template(["r", "{start}", "{end:05d}", "{frames}"], chunk=10)
    check_template(["r", "{frame:04d}"], chunk=1)


def test_frame_values_of_a_stepped_chunk() -> None:
    values = frame_values([10, 12, 14])
    assert values == {
        "start": 10,
        "end": 14,
        "frame": 10,
        "frames": "10,12,14",
        "count": 3,
        "step": 2,
    }
    assert expand_text("{count} frames every {step}", values) == "3 frames every 2"
