"""The helpers `thresher.testing` ships for tests: the fake clock and the deadline-bound wait."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from thresher.core.clock import Clock
from thresher.testing import FakeClock, wait_until


def test_a_fake_clock_moves_only_when_advanced() -> None:
    clock: Clock = FakeClock(start=100.0)
    assert (clock.now(), clock.now()) == (100.0, 100.0)
    assert isinstance(clock, FakeClock)
    clock.advance(2.5)
    clock.advance(0.5)
    assert clock.now() == 103.0


def test_wait_until_returns_the_first_true_value_of_the_predicate() -> None:
    looks: list[int] = []

    def third_look() -> str | None:
        looks.append(len(looks))
        return "ready" if len(looks) == 3 else None

    assert wait_until(third_look, timeout=10.0, what="the third look") == "ready"
    assert len(looks) == 3


def test_wait_until_names_what_it_waited_for_when_the_deadline_passes() -> None:
    looks: list[float] = []

    def never() -> bool:
        looks.append(time.monotonic())
        return False

    started = time.monotonic()
    with pytest.raises(AssertionError, match=r"timed out after 0\.2 s waiting for the moon"):
        wait_until(never, timeout=0.2, what="the moon")
    assert looks[-1] - started >= 0.2  # one last look once the deadline has passed
    assert len(looks) > 2  # it polled in between, not once at each end


def test_wait_until_looks_once_even_with_no_time_left() -> None:
    assert wait_until(lambda: 7, timeout=0.0, what="seven") == 7
    with pytest.raises(AssertionError, match="waiting for nothing"):
        wait_until(lambda: 0, timeout=0.0, what="nothing")


def test_an_exception_from_the_predicate_ends_the_wait_at_once() -> None:
    def broken() -> bool:
        raise RuntimeError("the process died")

    started = time.monotonic()
    with pytest.raises(RuntimeError, match="the process died"):
        wait_until(broken, timeout=30.0, what="a process")
    assert time.monotonic() - started < 5.0


def test_the_fake_clock_and_the_wait_do_not_import_the_controller() -> None:
    # A store or core test that takes a FakeClock must not pull in FastAPI and uvicorn.
    heavy = ("fastapi", "uvicorn", "thresher.controller")
    code = (
        "import sys; from thresher.testing import FakeClock, wait_until; "
        f"print(sorted(m for m in {heavy!r} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_served_controller_is_still_reached_through_the_package() -> None:
    from thresher import testing
    from thresher.testing import serve

    assert testing.serve_in_thread is serve.serve_in_thread
    assert testing.ServedController is serve.ServedController
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        _ = testing.nothing
