"""What compiling a submission needs to know of the farm, as a narrow interface."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol


class EngineRules(Protocol):
    """What checking an engine job asks of its engine (a built-in `Engine` class is one)."""

    def settings(self) -> dict[str, Any]: ...

    def merge_parameters(self, parameters: Mapping[str, Any] | None) -> dict[str, Any]: ...


class Lookup(Protocol):
    """The farm's state a submission is checked against (read in the submit's transaction)."""

    def engine(self, name: str) -> EngineRules:
        """What checks a job for an enabled engine; InvalidInput naming `engine` if none."""
        ...

    def missing_jobs(self, ids: Iterable[int]) -> list[int]:
        """Which of these job ids do not exist."""
        ...

    def missing_limits(self, names: Iterable[str]) -> list[str]:
        """Which of these limits do not exist."""
        ...

    def jobs_matching(self, pattern: str, *, owner: str | None) -> Sequence[int]:
        """Ids of jobs (of `owner`, or anyone's) whose name the pattern finds."""
        ...
