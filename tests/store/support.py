"""Helpers of the store suites."""

from __future__ import annotations

from thresher.store.store import Store, WorkerFacts
from thresher.testing import FakeClock


def add_worker(
    store: Store, name: str, clock: FakeClock, *, hostname: str | None = None, lanes: int = 2
) -> int:
    """Register a 4-core, 8 GB Linux worker at site `hq`; returns its id."""
    facts = WorkerFacts(
        name=name,
        hostname=hostname or name,
        os="linux",
        cores=4,
        ram_bytes=8 << 30,
        site="hq",
        pools=(),
        attributes={},
        lanes=lanes,
    )
    return store.register_worker(facts, token_id=None, now=clock.now())
