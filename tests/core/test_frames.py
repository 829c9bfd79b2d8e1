"""Frame sets and task layouts, checked against brute-force materialisation."""

from __future__ import annotations

import random

import pytest

from thresher.core.errors import InvalidInput
from thresher.core.frames import MAX_PRIORITY_FRAMES, MAX_SEGMENTS, FrameSet, TaskLayout


def brute(spec: str) -> list[int]:
    """The frames a spec names, in set order, by naive expansion."""
    runs: list[list[int]] = []
    for text in spec.replace(" ", "").split(","):
        head, _, step = text.replace(":", "x").partition("x")
        cut = head.find("-", 1)
        first, last = (int(head), int(head)) if cut < 0 else (int(head[:cut]), int(head[cut + 1 :]))
        runs.append(list(range(first, last + 1, int(step or 1))))
    return [frame for run in sorted(runs) for frame in run]


def random_spec(rng: random.Random) -> str:
    """A valid spec of stepped, possibly interleaved runs drawn without shared frames."""
    used: set[int] = set()
    parts = []
    for _ in range(rng.randint(1, 6)):
        first, step = rng.randint(-30, 60), rng.randint(1, 5)
        last = first + rng.randint(0, 40)
        frames = set(range(first, last + 1, step))
        if frames & used:
            continue
        used |= frames
        parts.append(f"{first}-{last}x{step}" if rng.random() < 0.5 else f"{first}-{last}:{step}")
    return ",".join(parts) or "0"


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("4", [4]),
        ("1-5", [1, 2, 3, 4, 5]),
        ("5-25x5", [5, 10, 15, 20, 25]),
        ("1-10:4", [1, 5, 9]),
        ("1-10X3", [1, 4, 7, 10]),
        ("-10--5", [-10, -9, -8, -7, -6, -5]),
        ("-3-3", [-3, -2, -1, 0, 1, 2, 3]),
        ("-6--1x2", [-6, -4, -2]),
        ("7-7", [7]),
        ("1-10x20", [1]),
        (" 1 - 3 , 10 , 20 - 24 x 2 ", [1, 2, 3, 10, 20, 22, 24]),
        ("30-32,1-2,10", [1, 2, 10, 30, 31, 32]),
        ("1-9x2,2-10x2", [1, 3, 5, 7, 9, 2, 4, 6, 8, 10]),
        ("1-100x10,2-9", [1, 11, 21, 31, 41, 51, 61, 71, 81, 91, *range(2, 10)]),
    ],
)
def test_grammar(spec: str, expected: list[int]) -> None:
    frames = FrameSet.parse(spec)

    assert list(frames) == expected
    assert len(frames) == len(expected)
    assert [frames[i] for i in range(len(expected))] == expected
    assert list(FrameSet.parse(frames.spec)) == expected


@pytest.mark.parametrize(
    ("spec", "normalised"),
    [
        ("1-10,20,30-40x2", "1-10,20,30-40x2"),
        ("1-5,6-10", "1-10"),
        ("1,2,3", "1-3"),
        ("1-11x5", "1-11x5"),
        ("1-12x5", "1-11x5"),
        ("1-9x2,11-15x2", "1-15x2"),
        ("1-100:10", "1-91x10"),
        ("-10--5", "-10--5"),
    ],
)
def test_spec_is_normalised(spec: str, normalised: str) -> None:
    assert FrameSet.parse(spec).spec == normalised


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("1-5,,7", "segment 2 of '1-5,,7' is empty"),
        ("1-5,", "segment 2"),
        ("abc", "'abc' is not a frame range"),
        ("1-", "'1-' is not a frame range"),
        ("1-5x", "'1-5x' is not a frame range"),
        ("4x2", "'4x2' is not a frame range"),
        ("1 2", "'1 2' is not a frame range"),
        ("1-5x0", "'1-5x0': step must be at least 1"),
        ("1-5:-2", "'1-5:-2': step must be at least 1"),
        ("10-1", "'10-1': end 1 is before start 10"),
        ("1-10,5", "segments '1-10' and '5' overlap (both hold frame 5)"),
        ("3,3", "overlap"),
        ("1-9x2,5-20x4", "both hold frame 5"),
        ("1-100x6,4-100x3", "both hold frame 7"),
        ("0-100x6,3-100x9", "both hold frame 12"),
        ("1-9999999999999999", "too large"),
        ("1-10000001", "10,000,001 frames; the limit is 10,000,000"),
        ("1-6000000,6000001-12000000", "12,000,000 frames"),
    ],
)
def test_refusals(spec: str, fragment: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        FrameSet.parse(spec)

    assert fragment in caught.value.message
    assert caught.value.field == "frames"


def test_refusal_names_the_field_given() -> None:
    with pytest.raises(InvalidInput) as caught:
        FrameSet.parse("x", field="items")

    assert caught.value.field == "items"


def test_max_items_is_configurable() -> None:
    with pytest.raises(InvalidInput, match="11 frames; the limit is 10"):
        FrameSet.parse("1-11", max_items=10)


def test_too_many_segments() -> None:
    spec = ",".join(str(frame * 2) for frame in range(MAX_SEGMENTS + 1))

    with pytest.raises(InvalidInput, match="10,001 segments; the limit is 10,000"):
        FrameSet.parse(spec)


def test_as_many_segments_as_allowed() -> None:
    frames = FrameSet.parse(",".join(str(frame * 2) for frame in range(MAX_SEGMENTS)))

    assert len(frames) == MAX_SEGMENTS
    assert frames[MAX_SEGMENTS - 1] == 2 * (MAX_SEGMENTS - 1)


def test_too_deep_interleaving() -> None:
    spec = ",".join(f"{offset}-1000x40" for offset in range(40))

    with pytest.raises(InvalidInput, match="interleaves with 32 other segments"):
        FrameSet.parse(spec)


@pytest.mark.parametrize("seed", range(200))
def test_random_access_matches_brute_force(seed: int) -> None:
    rng = random.Random(seed)
    spec = random_spec(rng)
    expected = brute(spec)
    frames = FrameSet.parse(spec)

    assert list(frames) == expected
    assert [frames[i] for i in range(len(expected))] == expected
    assert list(FrameSet.parse(frames.spec)) == expected
    assert frames.first == min(expected)
    assert frames.last == max(expected)
    start, stop = sorted(rng.sample(range(len(expected) + 3), 2))
    assert frames.slice(start, stop) == expected[start:stop]
    for frame in range(-35, 105):
        assert frames.position(frame) == (expected.index(frame) if frame in expected else None)


@pytest.mark.parametrize("seed", range(100))
def test_random_overlaps_are_refused_exactly(seed: int) -> None:
    rng = random.Random(seed)
    parts = [f"{rng.randint(0, 40)}-{rng.randint(40, 80)}x{rng.randint(1, 7)}" for _ in range(2)]
    spec = ",".join(parts)
    frames = brute(spec)

    if len(set(frames)) == len(frames):
        assert list(FrameSet.parse(spec)) == frames
    else:
        with pytest.raises(InvalidInput, match="overlap"):
            FrameSet.parse(spec)


def test_index_out_of_range() -> None:
    frames = FrameSet.parse("1-3")

    assert frames[-1] == 3
    with pytest.raises(IndexError):
        frames[3]
    with pytest.raises(IndexError):
        frames[-4]


def test_slice_across_runs_and_clamped() -> None:
    frames = FrameSet.parse("1-3,10-20x5,30")

    assert frames.slice(2, 5) == [3, 10, 15]
    assert frames.slice(-5, 100) == [1, 2, 3, 10, 15, 20, 30]
    assert frames.slice(4, 2) == []


def test_membership_and_equality() -> None:
    assert 15 in FrameSet.parse("10-20x5")
    assert 16 not in FrameSet.parse("10-20x5")
    assert FrameSet.parse("1-5,6-10") == FrameSet.parse("1-10")
    assert repr(FrameSet.parse("1-3")) == "FrameSet('1-3')"


@pytest.mark.parametrize(
    ("frames", "spec"),
    [
        ([5], "5"),
        ([3, 1, 2, 2], "1-3"),
        ([1, 3, 5, 7, 20], "1-7x2,20"),
        ([1, 3, 4, 5], "1,3-5"),
        ([1, 3], "1,3"),
        ([-4, -2, 0, 10, 11, 12, 100, 200, 300], "-4-0x2,10-12,100-300x100"),
    ],
)
def test_from_frames(frames: list[int], spec: str) -> None:
    built = FrameSet.from_frames(frames)

    assert built.spec == spec
    assert list(built) == sorted(set(frames))


def test_from_frames_refuses_nothing() -> None:
    with pytest.raises(InvalidInput, match="no frames"):
        FrameSet.from_frames([])


@pytest.mark.parametrize("seed", range(50))
def test_from_frames_round_trips(seed: int) -> None:
    rng = random.Random(seed)
    frames = rng.sample(range(-50, 150), rng.randint(1, 60))

    built = FrameSet.from_frames(frames)

    assert list(built) == sorted(frames)
    assert list(FrameSet.parse(built.spec)) == sorted(frames)


def test_ten_million_frames_without_materialising() -> None:
    frames = FrameSet.parse("1-10000000")
    layout = TaskLayout(frames, 10, priority_frames=FrameSet.parse("9999999"), preview_every=100)

    assert len(frames) == 10_000_000
    assert frames[9_999_999] == 10_000_000
    assert frames.position(5_000_000) == 4_999_999
    assert frames.slice(9_999_998, 10_000_005) == [9_999_999, 10_000_000]
    assert layout.task_count == 1_000_000
    assert layout.task_at(0) == 999_999
    assert layout.task_at(999_999) == 999_998
    assert layout.tasks_covering(95, 1_000_000) == [range(9, 100_000)]


@pytest.mark.parametrize(
    ("spec", "chunk", "tasks"),
    [
        ("1-10", 3, [[1, 2, 3], [4, 5, 6], [7, 8, 9], [10]]),
        ("1-10", 10, [list(range(1, 11))]),
        ("1-10", 25, [list(range(1, 11))]),
        ("1-3,10-20x5", 2, [[1, 2], [3, 10], [15, 20]]),
        ("4", 1, [[4]]),
    ],
)
def test_chunking(spec: str, chunk: int, tasks: list[list[int]]) -> None:
    layout = TaskLayout(FrameSet.parse(spec), chunk)

    assert layout.task_count == len(tasks)
    assert [layout.task_frames(i) for i in range(layout.task_count)] == tasks
    assert [layout.task_bounds(i) for i in range(layout.task_count)] == [
        (min(t), max(t)) for t in tasks
    ]


def test_task_bounds_with_interleaved_runs() -> None:
    layout = TaskLayout(FrameSet.parse("1-9x2,2-10x2"), 2)

    assert layout.task_frames(2) == [9, 2]
    assert layout.task_bounds(2) == (2, 9)


def test_task_out_of_range() -> None:
    layout = TaskLayout(FrameSet.parse("1-10"), 5)

    with pytest.raises(IndexError):
        layout.task_frames(2)
    with pytest.raises(IndexError):
        layout.task_at(2)


@pytest.mark.parametrize(
    ("chunk", "preview_every", "priority_frames", "field"),
    [
        (0, None, None, "chunk"),
        (1, 0, None, "preview_every"),
        (1, None, FrameSet.parse("11"), "priority_frames"),
    ],
)
def test_layout_refusals(
    chunk: int, preview_every: int | None, priority_frames: FrameSet | None, field: str
) -> None:
    with pytest.raises(InvalidInput) as caught:
        TaskLayout(
            FrameSet.parse("1-10"),
            chunk,
            preview_every=preview_every,
            priority_frames=priority_frames,
        )

    assert caught.value.field == field


def test_too_many_priority_frames() -> None:
    frames = FrameSet.parse(f"1-{MAX_PRIORITY_FRAMES + 1}")

    with pytest.raises(InvalidInput, match="priority frames; the limit is 10,000"):
        TaskLayout(frames, 1, priority_frames=frames)


@pytest.mark.parametrize(
    ("chunk", "priority", "preview", "order"),
    [
        (1, None, None, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]),
        (2, "9,1", None, [0, 4, 1, 2, 3]),
        (2, "3-4", None, [1, 0, 2, 3, 4]),
        (1, None, 3, [0, 3, 6, 9, 1, 2, 4, 5, 7, 8]),
        (1, "5,7", 3, [4, 6, 0, 3, 9, 1, 2, 5, 7, 8]),
        (1, "4,7", 3, [3, 6, 0, 9, 1, 2, 4, 5, 7, 8]),
        (1, "10", 1, [9, 0, 1, 2, 3, 4, 5, 6, 7, 8]),
        (3, "10", 2, [3, 0, 2, 1]),
    ],
)
def test_dispatch_order(
    chunk: int, priority: str | None, preview: int | None, order: list[int]
) -> None:
    layout = TaskLayout(
        FrameSet.parse("1-10"),
        chunk,
        priority_frames=FrameSet.parse(priority) if priority else None,
        preview_every=preview,
    )

    assert [layout.task_at(p) for p in range(layout.task_count)] == order


def expected_order(tasks: int, priority: set[int], preview: int | None) -> list[int]:
    first = sorted(priority)
    previews = [t for t in range(tasks) if preview and t % preview == 0 and t not in priority]
    rest = [t for t in range(tasks) if t not in priority and t not in previews]
    return first + previews + rest


@pytest.mark.parametrize("seed", range(200))
def test_dispatch_order_is_a_permutation(seed: int) -> None:
    rng = random.Random(seed)
    frames = FrameSet.parse(random_spec(rng))
    chunk = rng.randint(1, 5)
    chosen = rng.sample(list(frames), rng.randint(0, min(4, len(frames))))
    preview = rng.choice([None, 1, 2, 3, 5])
    layout = TaskLayout(
        frames,
        chunk,
        priority_frames=FrameSet.from_frames(chosen) if chosen else None,
        preview_every=preview,
    )
    priority = {list(frames).index(frame) // chunk for frame in chosen}

    order = [layout.task_at(p) for p in range(layout.task_count)]

    assert sorted(order) == list(range(layout.task_count))
    assert order == expected_order(layout.task_count, priority, preview)
    assert [layout.dispatch_position(t) for t in order] == list(range(layout.task_count))


@pytest.mark.parametrize(
    ("spec", "chunk", "first", "last", "covering"),
    [
        ("1-100", 10, 15, 25, [range(1, 3)]),
        ("1-100", 10, 11, 20, [range(1, 2)]),
        ("1-100", 1, 50, 50, [range(49, 50)]),
        ("1-100", 10, 200, 300, []),
        ("1-100", 10, 30, 20, []),
        ("1-100", 10, -5, 1000, [range(0, 10)]),
        ("1-10,50-60", 5, 8, 52, [range(1, 3)]),
        ("1-20x5", 1, 2, 5, []),
        ("1-9x2,2-10x2", 2, 2, 3, [range(0, 1), range(2, 3)]),
        ("1-9x2,2-10x2", 2, 1, 10, [range(0, 5)]),
        ("1-1000x100,2-99", 1, 50, 150, [range(1, 2), range(58, 108)]),
    ],
)
def test_tasks_covering(
    spec: str, chunk: int, first: int, last: int, covering: list[range]
) -> None:
    layout = TaskLayout(FrameSet.parse(spec), chunk)

    assert layout.tasks_covering(first, last) == covering


@pytest.mark.parametrize("seed", range(100))
def test_tasks_covering_matches_brute_force(seed: int) -> None:
    rng = random.Random(seed)
    frames = FrameSet.parse(random_spec(rng))
    layout = TaskLayout(frames, rng.randint(1, 6))
    first = rng.randint(-40, 110)
    last = first + rng.randint(0, 30)

    found = [t for span in layout.tasks_covering(first, last) for t in span]

    expected = [
        t
        for t in range(layout.task_count)
        if any(first <= frame <= last for frame in layout.task_frames(t))
    ]
    assert found == expected
    for frame in range(first, last + 1):
        task = layout.task_containing(frame)
        assert (task is not None) == (frame in frames)
        assert task is None or frame in layout.task_frames(task)


def test_messages_quote_huge_input_briefly() -> None:
    with pytest.raises(InvalidInput) as caught:
        FrameSet.parse("1-" + "9" * 10_000)

    assert len(caught.value.message) < 200
    assert "'1-999" in caught.value.message
