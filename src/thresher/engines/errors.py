"""The engine layer's error tree.

EngineError
 ├── EngineLoadError     an engine's source does not compile or import, raises while loading,
 │                       or defines no valid ``Engine`` class; carries the Python error text
 ├── EngineConfigError   a job's engine parameters or an engine's settings are invalid
 │                       (bad ``input_conversion``, path mapping rules, placeholders, ...)
 └── EngineSetupError    preparing a task's run failed on this machine (input conversion,
                         creating an output folder)

A render that runs and fails is not an exception here: it is the process's exit status plus the
``error`` events its output produced, which the worker turns into a failed task.
"""

from __future__ import annotations


class EngineError(Exception):
    """Base class of every error raised by :mod:`thresher.engines`."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class EngineLoadError(EngineError):
    """An engine's source could not be turned into an ``Engine`` class.

    ``details`` holds the Python traceback (limited to the engine's own frames where possible),
    suitable for showing to the admin who published the script or for a task's log.
    """

    def __init__(self, message: str, *, name: str, details: str = "") -> None:
        super().__init__(message)
        self.name = name
        self.details = details


class EngineConfigError(EngineError):
    """Engine parameters or settings are invalid; names the offending parameter when known."""

    def __init__(self, message: str, *, parameter: str | None = None) -> None:
        super().__init__(message)
        self.parameter = parameter


class EngineSetupError(EngineError):
    """Preparing a task's run failed on this machine (files or folders could not be made)."""
