"""The dispatch index is rebuilt ahead of time while polls are held (`Farm.refresh_index`), so
that the submission which hands those polls their work does not read the whole snapshot on its
way to them: on an idle farm it came due every two seconds, and the next submission paid for
the rebuild (5 ms of a one-task job's 13 ms start on SQLite, bench/latency.py --gap 3).

Over a real store (SQLite and PostgreSQL) and a fake clock; the polls held on an event loop
and the use cases run on the farm thread, as the server runs them (`test_hand_out.Served`)."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from tests.controller.conftest import Serve
from tests.controller.test_dispatch import worker
from tests.controller.test_hand_out import Served, hold, submit
from tests.controller.test_use_case_transactions import register

from thresher.client import Client
from thresher.controller.farm import REFRESH_AHEAD_S, Farm
from thresher.controller.notifier import Notifier
from thresher.controller.settings import ControllerSettings
from thresher.store.store import Store
from thresher.testing import FakeClock, wait_until


@pytest.fixture
def served(db_url: str, tmp_path: Path) -> Iterator[tuple[Served, FakeClock]]:
    store = Store.open(db_url)
    clock = FakeClock()
    settings = ControllerSettings(data_dir=tmp_path, poll_hold_s=60)
    farm = Farm(store, clock, settings, Notifier())
    farm.start(clock.now())
    served = Served(farm)
    try:
        yield served, clock
    finally:
        served.close()
        farm.close()
        store.close()


@contextlib.contextmanager
def snapshot_reads(farm: Farm, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The whole-snapshot reads a rebuild of the dispatch index makes: the threads' names."""
    reads: list[str] = []
    snapshot = farm.store.snapshot
    read = snapshot.read

    def counted(*args: object, **kwargs: object) -> object:
        reads.append(threading.current_thread().name)
        return read(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(snapshot, "read", counted)
    yield reads


def refresh(served: Served) -> float:
    farm = served.farm
    return served.run(farm.thread.run(farm.refresh_index))


@pytest.mark.parametrize("refreshed", [True, False])
def test_a_submission_after_the_index_came_due_finds_it_rebuilt_while_the_poll_was_held(
    served: tuple[Served, FakeClock], monkeypatch: pytest.MonkeyPatch, refreshed: bool
) -> None:
    served_farm, clock = served
    farm = served_farm.farm
    w = served_farm.run(farm.call(register, farm, "w1", 1))
    answer = hold(served_farm, w)
    clock.advance(farm.settings.index_max_age_s + 1)  # the farm idle: the index came due
    assert farm.dispatch_index.refresh_in() == 0
    with snapshot_reads(farm, monkeypatch) as reads:
        if refreshed:
            wait = refresh(served_farm)
            assert reads == ["thresher-farm_0"]  # rebuilt on the farm thread
            # fresh now; the next look REFRESH_AHEAD_S before it falls due again
            fresh_for = farm.dispatch_index.refresh_in()
            assert fresh_for == farm.settings.index_max_age_s
            assert wait == fresh_for - REFRESH_AHEAD_S
            reads.clear()

        job_id = submit(served_farm, "shot")

        (task,) = answer.result(timeout=10).assignments
        assert task.job_id == job_id
        # Refreshed: the submission reads no snapshot on its way to the poll; else it did.
        assert len(reads) == (0 if refreshed else 1)


def test_the_index_is_rebuilt_only_as_it_comes_due_and_only_while_polls_are_held(
    served: tuple[Served, FakeClock], monkeypatch: pytest.MonkeyPatch
) -> None:
    served_farm, clock = served
    farm = served_farm.farm
    max_age = farm.settings.index_max_age_s
    w = served_farm.run(farm.call(register, farm, "w1", 1))
    with snapshot_reads(farm, monkeypatch) as reads:
        clock.advance(max_age + 1)
        assert refresh(served_farm) == max_age / 4  # no poll held: nothing read, a look later
        assert reads == []

        hold(served_farm, w)
        refresh(served_farm)
        assert len(reads) == 1
        clock.advance(max_age - REFRESH_AHEAD_S - 0.1)  # not yet within REFRESH_AHEAD_S
        assert refresh(served_farm) == REFRESH_AHEAD_S  # the shortest wait between looks
        assert len(reads) == 1
        clock.advance(0.2)  # now within it: rebuilt ahead of time
        refresh(served_farm)
        assert len(reads) == 2
        assert farm.dispatch_index.refresh_in() == max_age


def test_the_served_controller_keeps_the_index_fresh_while_a_poll_is_held(
    serve: Serve,
) -> None:
    clock = FakeClock()
    # The held poll's own next round (which would rebuild the index too) a minute away.
    served = serve(clock=clock, heartbeat_s=60, lease_s=180, poll_hold_s=60)
    sim = worker(served, "w1")
    assert served.app is not None
    farm: Farm = served.app.state.farm
    answers: list[httpx.Response] = []
    held = threading.Thread(
        target=lambda: answers.append(
            httpx.post(
                f"{served.url}/api/v1/agent/poll",
                json={"lanes": [0], "wait_s": 60},
                headers={"Authorization": f"Bearer {sim.token}"},
                timeout=60,
            )
        ),
        daemon=True,
    )
    held.start()
    wait_until(lambda: len(farm.agents.idle) == 1, timeout=10, what="the poll held")
    clock.advance(farm.settings.index_max_age_s + 1)
    assert farm.dispatch_index.refresh_in() == 0
    # Nothing else happens on the farm: only the controller's own refresher rebuilds it.
    wait_until(
        lambda: farm.dispatch_index.refresh_in() > REFRESH_AHEAD_S,
        timeout=10,
        what="the index rebuilt while the poll is held",
    )
    with Client(served.url, served.admin_token) as admin:
        job = admin.submit("shot", ["true"])
    held.join(30)
    (answer,) = answers
    (task,) = answer.json()["assignments"]
    assert task["job_id"] == job.id
