"""The garbage collector of a controller process (`controller/collector.py`)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from thresher.cli.controller import _Server
from thresher.controller import collector
from thresher.controller.app import Server


@pytest.fixture
def restored() -> Iterator[None]:
    """The test run's own collector settings, put back after the test."""
    threshold = gc.get_threshold()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)


@pytest.mark.usefixtures("restored")
def test_tune_freezes_what_lives_and_spaces_young_collections() -> None:
    _, middle, old = gc.get_threshold()
    collector.tune()
    assert gc.get_threshold() == (collector.YOUNG_EVERY, middle, old)
    assert gc.get_freeze_count() > 0
    assert gc.get_count()[0] < collector.YOUNG_EVERY


def test_only_the_controllers_own_process_tunes_its_collector() -> None:
    assert _Server.tunes_collector
    assert not Server.tunes_collector  # embedded servers and tests keep their collector
