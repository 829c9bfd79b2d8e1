"""Fixtures of the store suites: a fake clock (the store on each database is the root
conftest's `store`)."""

from __future__ import annotations

import pytest

from thresher.testing import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()
