"""Adaptive chunking of CHUNK[INT] steps that set `targetRuntimeSeconds`.

`openjd run` iterates such a step with the CHUNK[INT] parameter as the innermost dimension and
cuts each row of its values greedily: a chunk takes up to the current size from where the last
one stopped, never spans two rows, and (CONTIGUOUS) never spans a gap in the range. The size
changes between chunks as run times are measured (`adapt_chunk_size`). `ChunkItems` is that
item order with random access: item `p` is value `p % M` of the chunk parameter in row `p // M`
(a combination of the other parameters, in the library's order), so a chunk is a run of item
positions and its parameters are computed from its first position and its length.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

from openjd.model import IntRangeExpr, StepParameterSpaceIterator

from thresher.core.chunk_plan import ItemGrid, adapt_chunk_size

__all__ = ["ChunkItems", "adapt_chunk_size"]


@dataclass(frozen=True)
class ChunkItems:
    """The items of a chunked step in adaptive order, by position."""

    parameter: str
    values: tuple[int, ...]
    contiguous: bool
    grid: ItemGrid
    outer: Any = field(repr=False, compare=False)  # the other parameters' random-access space

    @classmethod
    def of_space(cls, space: Any) -> ChunkItems | None:
        """The items of an instantiated step parameter space; None without a CHUNK[INT]."""
        definitions = dict(space.taskParameterDefinitions) if space is not None else {}
        chunked = [n for n, d in definitions.items() if d.type.value == "CHUNK[INT]"]
        if not chunked:
            return None
        name = chunked[0]
        definition = definitions[name]
        values = tuple(int(v) for v in definition.range)
        contiguous = definition.chunks.rangeConstraint.value == "CONTIGUOUS"
        others = {n: d for n, d in definitions.items() if n != name}
        outer = StepParameterSpaceIterator(
            space=space.model_copy(
                update={
                    "taskParameterDefinitions": others,
                    "combination": _without(space.combination, name, others),
                }
            )
            if others
            else None
        )
        grid = ItemGrid.of_lengths(len(outer), _run_lengths(values, contiguous=contiguous))
        return cls(name, values, contiguous, grid, outer)

    def parameters(self, first: int, count: int) -> dict[str, str]:
        """The task parameters of the chunk holding items [first, first + count)."""
        width = len(self.values)
        row, start = divmod(first, width)
        if count < 1 or first < 0 or start + count > width or row >= self.grid.rows:
            raise ValueError(f"items {first}-{first + count - 1} are not one chunk of this step")
        chunk = self.values[start : start + count]
        if self.contiguous:
            if any(b != a + 1 for a, b in pairwise(chunk)):
                raise ValueError(f"items {first}-{first + count - 1} span a gap in the range")
            text = f"{chunk[0]}-{chunk[-1]}"
        else:
            text = str(IntRangeExpr.from_list(list(chunk)))
        out = {name: str(value.value) for name, value in self.outer[row].items()}
        out[self.parameter] = text
        return out


def _run_lengths(values: Sequence[int], *, contiguous: bool) -> list[int]:
    """Lengths of the stretches a chunk may not leave (the library's rule: the next value is
    the last plus one)."""
    if not contiguous:
        return [len(values)]
    lengths = [1]
    for a, b in pairwise(values):
        if b == a + 1:
            lengths[-1] += 1
        else:
            lengths.append(1)
    return lengths


def _without(combination: str | None, name: str, others: dict[str, Any]) -> str | None:
    """The combination expression with the chunk parameter taken out of its product (it may
    appear only there: the specification keeps CHUNK[INT] out of associations)."""
    if combination is None:
        return " * ".join(others)
    terms, depth, current = [], 0, ""
    for char in combination:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "*" and depth == 0:
            terms.append(current.strip())
            current = ""
        else:
            current += char
    terms.append(current.strip())
    return " * ".join(term for term in terms if term != name)
