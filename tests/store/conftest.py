"""Fixtures of the store suites: a fresh store on each database (`db_url`) and a fake clock."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from thresher.store.store import Store
from thresher.testing import FakeClock


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    opened = Store.open(db_url)
    try:
        yield opened
    finally:
        opened.close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()
