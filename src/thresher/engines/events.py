"""What an engine reads out of an application's output: typed, frozen events."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class EventKind(StrEnum):
    """The kinds of event a parser can report.

    ``progress`` is the whole task's progress in percent (0..100, a chunk of several frames
    included); ``frame`` is the frame the application started working on; ``output`` is a file the
    application wrote; ``status`` is a short human-readable phase; ``warning``/``error`` carry the
    application's own message.
    """

    PROGRESS = "progress"
    FRAME = "frame"
    STATUS = "status"
    OUTPUT = "output"
    WARNING = "warning"
    ERROR = "error"


_VALUE_TYPES: dict[EventKind, tuple[type, ...]] = {
    EventKind.PROGRESS: (float, int),
    EventKind.FRAME: (int,),
    EventKind.STATUS: (str,),
    EventKind.OUTPUT: (str,),
    EventKind.WARNING: (str,),
    EventKind.ERROR: (str,),
}


@dataclass(frozen=True, slots=True)
class EngineEvent:
    """One event parsed from one output line.

    ``value`` is a float in 0..100 for progress, an int for frame and a str for the other kinds.
    """

    kind: EventKind
    value: float | int | str

    def __post_init__(self) -> None:
        expected = _VALUE_TYPES[EventKind(self.kind)]
        if isinstance(self.value, bool) or not isinstance(self.value, expected):
            raise TypeError(f"{self.kind} event needs a {expected[0].__name__}, got {self.value!r}")
        if self.kind is EventKind.PROGRESS:
            clamped = min(100.0, max(0.0, float(self.value)))
            object.__setattr__(self, "value", clamped)

    @classmethod
    def progress(cls, percent: float) -> EngineEvent:
        """Task progress in percent; values outside 0..100 are clamped."""
        return cls(EventKind.PROGRESS, float(percent))

    @classmethod
    def frame(cls, number: int) -> EngineEvent:
        return cls(EventKind.FRAME, int(number))

    @classmethod
    def status(cls, text: str) -> EngineEvent:
        return cls(EventKind.STATUS, text)

    @classmethod
    def output(cls, path: str) -> EngineEvent:
        return cls(EventKind.OUTPUT, path)

    @classmethod
    def warning(cls, text: str) -> EngineEvent:
        return cls(EventKind.WARNING, text)

    @classmethod
    def error(cls, text: str) -> EngineEvent:
        return cls(EventKind.ERROR, text)
