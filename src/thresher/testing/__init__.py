"""Helpers shipped for tests (Thresher's own and users'): a fake clock, a deadline-bound wait, and
a real controller served in a thread."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from thresher.testing.clock import FakeClock
from thresher.testing.waiting import wait_until

if TYPE_CHECKING:
    from thresher.testing.serve import ServedController, serve_in_thread

__all__ = ["FakeClock", "ServedController", "serve_in_thread", "wait_until"]

_SERVE = frozenset({"ServedController", "serve_in_thread"})


def __getattr__(name: str) -> Any:
    # The served controller imports the whole app (FastAPI, uvicorn, the store): a test that only
    # wants a FakeClock does not pay for that.
    if name in _SERVE:
        from thresher.testing import serve

        return getattr(serve, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
