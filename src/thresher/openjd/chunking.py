"""Adaptive chunk sizing for CHUNK[INT] steps that set `targetRuntimeSeconds` (a pure decision)."""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = ["adapt_chunk_size"]

# With fewer finished items than this, a larger estimate is blended in gradually.
_FEW_SAMPLES = 10


def adapt_chunk_size(
    current: int,
    measured_runtimes_s: Sequence[float],
    target_s: float,
    *,
    items_per_chunk: Sequence[int] | None = None,
    min_size: int = 1,
    max_size: int | None = None,
) -> int:
    """The chunk size to use next, so that a chunk runs about `target_s` seconds.

    `measured_runtimes_s` are the run times of finished chunks; each held `current` items unless
    `items_per_chunk` gives the counts. The estimate is the target divided by the mean time per
    item (the rule the OpenJD CLI specification gives for `openjd run`): with fewer than ten
    items measured, growth is damped (a quarter of the way towards the estimate). A target of
    0 or no usable measurement keeps `current`. The result is clamped to [min_size, max_size].
    """
    if items_per_chunk is not None and len(items_per_chunk) != len(measured_runtimes_s):
        raise ValueError("items_per_chunk must give one count per measured run time")
    counts = (
        items_per_chunk if items_per_chunk is not None else [current] * len(measured_runtimes_s)
    )
    items = sum(counts)
    seconds = math.fsum(measured_runtimes_s)
    size = float(current)
    if target_s > 0 and items > 0 and seconds > 0 and math.isfinite(seconds):
        size = target_s / (seconds / items)
        if items < _FEW_SAMPLES and size > current:
            size = 0.75 * current + 0.25 * size
    chosen = max(int(size), min_size)
    return chosen if max_size is None else min(chosen, max_size)
