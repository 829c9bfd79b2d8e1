"""Several controllers on one PostgreSQL: deadlocks retried, leases, LISTEN/NOTIFY, migrations
racing on an empty database (real PostgreSQL; SQLite where the behaviour differs)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from thresher.controller.farm_thread import retrying
from thresher.controller.sealing import SecretBox
from thresher.core.errors import Contended
from thresher.store import cluster
from thresher.store.base import unavailable_translated
from thresher.store.cluster import PeerChannel, SingletonLease
from thresher.store.db import create_engine, migrate
from thresher.store.tables import metadata
from thresher.testing import wait_until

PG_ONLY = pytest.mark.parametrize(
    "db_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)


@pytest.fixture
def engine(db_url: str) -> Iterator[sa.Engine]:
    e = create_engine(db_url)
    try:
        yield e
    finally:
        e.dispose()


@PG_ONLY
def test_a_real_deadlock_is_contended_and_run_again(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE pair (id int primary key, v int)"))
        conn.execute(sa.text("INSERT INTO pair VALUES (1, 0), (2, 0)"))
    barrier = threading.Barrier(2)
    runs: list[int] = []
    errors: list[BaseException] = []

    def update(first: int, second: int) -> None:
        runs.append(first)
        with unavailable_translated(), engine.begin() as conn:
            conn.execute(sa.text("UPDATE pair SET v = v + 1 WHERE id = :i"), {"i": first})
            if len(runs) <= 2:  # the first run of each side meets the other in a deadlock
                barrier.wait(timeout=10)
            conn.execute(sa.text("UPDATE pair SET v = v + 1 WHERE id = :i"), {"i": second})

    def side(first: int, second: int) -> None:
        try:
            retrying(lambda: update(first, second))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=side, args=pair) for pair in ((1, 2), (2, 1))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert errors == []
    assert len(runs) == 3  # one side was rolled back by the deadlock and ran again
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT sum(v) FROM pair")).scalar() == 4


def test_retrying_gives_up_after_its_tries() -> None:
    calls: list[int] = []

    def always() -> None:
        calls.append(1)
        raise Contended("deadlock")

    with pytest.raises(Contended):
        retrying(always, tries=3)
    assert len(calls) == 3


@PG_ONLY
def test_one_controller_holds_a_lease_and_another_takes_it_when_it_goes(
    engine: sa.Engine,
) -> None:
    a, b = SingletonLease(engine, "sweep"), SingletonLease(engine, "sweep")
    try:
        assert a.held()
        assert not b.held()
        assert a.held()  # still held on the next round
        a.release()  # its connection gone, as when its process is killed
        # PostgreSQL frees the lock once the server side of the connection has ended.
        wait_until(b.held, timeout=10, what="the lease taken over")
        assert not a.held()
    finally:
        a.release()
        b.release()


def test_on_sqlite_the_one_controller_holds_every_lease(tmp_path: object) -> None:
    engine = create_engine(f"sqlite:///{tmp_path}/x.db")
    assert SingletonLease(engine, "sweep").held()
    assert SingletonLease(engine, "sweep").held()


@PG_ONLY
def test_a_change_announced_by_one_controller_is_heard_by_the_others_only(
    engine: sa.Engine,
) -> None:
    heard: dict[str, list[bool]] = {"a": [], "b": []}
    a = PeerChannel(engine, "a", heard["a"].append)
    b = PeerChannel(engine, "b", heard["b"].append)
    for channel in (a, b):
        channel.start()
    try:
        wait_until(lambda: a.listening.is_set() and b.listening.is_set(), timeout=10, what="up")
        a.announce(soft=False)
        wait_until(lambda: heard["b"] == [False], timeout=10, what="b hears a's change")
        a.announce(soft=True)
        wait_until(lambda: heard["b"] == [False, True], timeout=10, what="b hears a finish")
        assert heard["a"] == []  # never its own
    finally:
        a.close()
        b.close()


@PG_ONLY
def test_closing_ends_the_listeners_wait_for_notifications(
    engine: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stopping controller does not wait for its listener's wait to run out (every test
    that served a controller on PostgreSQL waited up to a second for it)."""
    monkeypatch.setattr(cluster, "LISTEN_WAIT_S", 600.0)
    channel = PeerChannel(engine, "a", lambda soft: None)
    channel.start()
    try:
        wait_until(channel.listening.is_set, timeout=10, what="listening")
    finally:
        channel.close()  # joins each thread for 5 s at most
    assert not channel.listener_thread.is_alive()


@PG_ONLY
@pytest.mark.empty_database
def test_controllers_upgrading_an_empty_database_at_once_all_succeed(db_url: str) -> None:
    engines = [create_engine(db_url) for _ in range(3)]
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(engines))

    def upgrade(e: sa.Engine) -> None:
        try:
            barrier.wait(timeout=10)
            migrate(e)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=upgrade, args=(e,)) for e in engines]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    try:
        assert errors == []
        tables = set(sa.inspect(engines[0]).get_table_names())
        assert set(metadata.tables) <= tables
    finally:
        for e in engines:
            e.dispose()


@PG_ONLY
def test_a_listener_whose_connection_is_cut_comes_back_and_counts_it_a_change(
    engine: sa.Engine,
) -> None:
    heard: list[bool] = []
    channel = PeerChannel(engine, "a", heard.append)
    channel.start()
    try:
        wait_until(channel.listening.is_set, timeout=10, what="listening")
        with engine.connect() as conn:  # as a server restart or a network cut would
            conn.execute(
                sa.text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE query LIKE 'LISTEN%' AND datname = current_database() "
                    "AND pid <> pg_backend_pid()"
                )
            )
        wait_until(lambda: heard == [False], timeout=10, what="the missed changes taken as one")
        wait_until(channel.listening.is_set, timeout=10, what="listening again")
        other = PeerChannel(engine, "b", lambda soft: None)
        other.start()
        try:
            other.announce(soft=True)
            wait_until(lambda: heard == [False, True], timeout=10, what="heard after it")
        finally:
            other.close()
    finally:
        channel.close()


def test_controllers_creating_the_sealing_key_at_once_all_read_one_whole_key(
    tmp_path: Path,
) -> None:
    path = tmp_path / "secret.key"
    barrier = threading.Barrier(8)
    boxes: list[SecretBox] = []

    def open_box() -> None:
        barrier.wait(timeout=10)
        boxes.append(SecretBox.from_file(path))

    threads = [threading.Thread(target=open_box) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert len(boxes) == 8  # none read a half-written (empty) key file
    sealed = boxes[0].seal("s3cret")
    assert {box.open(sealed) for box in boxes} == {"s3cret"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["secret.key"]
