"""The engine registry in the store, on SQLite and PostgreSQL: revisions, the current pointer,
built-in revision 0, and the revision an attempt is stamped with when it is claimed."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from tests.store import support
from tests.store.support import add_worker, block
from thresher.core.errors import NotFound
from thresher.core.model import Assignment, JobSpec
from thresher.engines import source_hash
from thresher.store.engines import EngineSource
from thresher.store.store import Store
from thresher.store.tables import attempts
from thresher.testing import FakeClock


def source(text: str, **settings: object) -> EngineSource:
    return EngineSource(
        source=text,
        source_hash=source_hash(text),
        settings={"type": "render", **settings},
        parameters={"arguments": []},
    )


def engine_job(store: Store, engine: str, *, frames: str = "1-4") -> int:
    spec_block = block(name="main", frames=frames, chunk=1, engine=engine)
    spec = JobSpec(
        name=engine, owner="alice", priority=50, kind="engine", blocks=(spec_block,), payload={}
    )
    return store.jobs.create(spec, now=0.0)


def claim(store: Store, worker_id: int) -> Assignment:
    got = support.claim(store, worker_id, now=1.0)
    if got is None:
        raise AssertionError("nothing to claim")
    return got


def test_builtins_are_revision_0_and_resyncing_follows_the_package(store: Store) -> None:
    # GIVEN built-in engines written into the registry
    store.engines.sync_builtins({"blender": source("v1"), "povray": source("p")}, now=1.0)
    blender = store.engines.get("blender")
    assert (blender.current_revision, blender.enabled, blender.has_builtin) == (0, True, True)
    assert blender.current is not None
    assert blender.current.source_hash == source_hash("v1")
    # WHEN the package changes: blender's source differs and povray is gone
    store.engines.sync_builtins({"blender": source("v2")}, now=2.0)
    # THEN revision 0 holds the new source and povray has no current revision left
    assert store.engines.source("blender", 0)[1] == "v2"
    povray = store.engines.get("povray")
    assert povray.current is None
    assert not povray.has_builtin
    assert [e.name for e in store.engines.all()] == ["blender", "povray"]


def test_each_publish_adds_a_revision_and_rollback_moves_the_pointer(store: Store) -> None:
    store.engines.sync_builtins({"blender": source("builtin")}, now=0.0)
    clock = FakeClock()
    assert store.engines.publish("blender", source("r1"), by="admin", now=clock.now()) == 1
    assert store.engines.publish("blender", source("r2"), by="admin", now=clock.now()) == 2
    assert store.engines.publish("mine", source("m1"), by="admin", now=clock.now()) == 1

    store.engines.set_current("blender", 1, now=clock.now())
    rolled = store.engines.get("blender")
    assert (rolled.current_revision, rolled.latest_revision) == (1, 2)
    assert rolled.current is not None
    assert rolled.current.source_hash == source_hash("r1")
    # a publish after a rollback takes the next number: numbers always name one source
    assert store.engines.publish("blender", source("r3"), by="bob", now=clock.now()) == 3
    revisions = store.engines.revisions("blender")
    assert [(r.revision, r.builtin, r.published_by) for r in revisions] == [
        (0, True, "(built in)"),
        (1, False, "admin"),
        (2, False, "admin"),
        (3, False, "bob"),
    ]
    store.engines.set_current("blender", 0, now=clock.now())  # back to the built-in
    assert store.engines.get("blender").current_revision == 0
    mine = store.engines.get("mine")
    assert (mine.current_revision, mine.has_builtin) == (1, False)


def test_unknown_names_and_revisions_are_not_found(store: Store) -> None:
    store.engines.publish("mine", source("m1"), by="admin", now=0.0)
    with pytest.raises(NotFound, match="no engine named 'nope'"):
        store.engines.get("nope")
    with pytest.raises(NotFound, match="no revision 7"):
        store.engines.set_current("mine", 7, now=0.0)
    with pytest.raises(NotFound, match="no revision 0"):
        store.engines.source("mine", 0)
    with pytest.raises(NotFound):
        store.engines.set_enabled("nope", False, now=0.0)
    store.engines.set_enabled("mine", False, now=0.0)
    assert store.engines.get("mine").enabled is False


def test_a_claim_stamps_the_current_revision_on_its_attempt(store: Store) -> None:
    worker_id = add_worker(store, "w1", FakeClock(0.0))
    store.engines.publish("mine", source("m1"), by="admin", now=0.0)
    engine_job(store, "mine")
    # GIVEN a task claimed while revision 1 is current
    first = claim(store, worker_id)
    # WHEN revision 2 is published
    store.engines.publish("mine", source("m2"), by="admin", now=0.0)
    second = claim(store, worker_id)
    # THEN each assignment names the revision and hash current at its claim, and so does the
    # attempt row
    assert (first.engine, first.engine_revision, first.engine_hash) == (
        "mine",
        1,
        source_hash("m1"),
    )
    assert (second.engine_revision, second.engine_hash) == (2, source_hash("m2"))
    with store.engine.connect() as conn:
        stamped = dict(conn.execute(sa.select(attempts.c.id, attempts.c.engine_revision)).all())
    assert stamped == {first.attempt_id: 1, second.attempt_id: 2}
    assert [a.engine_revision for a in store.attempts.of_job(first.job_id)] == [1, 2]


def test_command_jobs_carry_no_engine(store: Store) -> None:
    worker_id = add_worker(store, "w1", FakeClock(0.0))
    spec_block = block(name="main", frames="1", chunk=1)
    spec = JobSpec(
        name="cmd",
        owner="alice",
        priority=50,
        kind="command",
        blocks=(spec_block,),
        payload={"commands": [["true"]]},
    )
    store.jobs.create(spec, now=0.0)
    got = claim(store, worker_id)
    assert (got.engine, got.engine_revision, got.engine_hash) == (None, None, None)


def test_an_engine_without_a_current_revision_is_stamped_empty(store: Store) -> None:
    worker_id = add_worker(store, "w1", FakeClock(0.0))
    store.engines.sync_builtins({"gone": source("g")}, now=0.0)
    engine_job(store, "gone", frames="1")
    store.engines.sync_builtins({}, now=0.0)  # the package no longer ships it
    got = claim(store, worker_id)
    assert (got.engine, got.engine_revision, got.engine_hash) == ("gone", None, None)


def test_output_files_are_kept_on_the_attempt_once_each(store: Store) -> None:
    worker_id = add_worker(store, "w1", FakeClock(0.0))
    store.engines.publish("mine", source("m1"), by="admin", now=0.0)
    engine_job(store, "mine", frames="1")
    a = claim(store, worker_id)
    store.attempts.record_output(
        a.attempt_id, a.token, lines=[], progress=50.0, outputs=["/r/f1.png"]
    )
    store.attempts.record_output(
        a.attempt_id, a.token, lines=[], progress=None, outputs=["/r/f1.png", "/r/f2.png"]
    )
    (attempt,) = store.attempts.of_job(a.job_id)
    assert attempt.outputs == ("/r/f1.png", "/r/f2.png")
    assert attempt.progress == 50.0


def test_the_migration_creates_the_engine_tables_and_columns(store: Store) -> None:
    inspector = sa.inspect(store.engine)
    assert {c["name"] for c in inspector.get_columns("engines")} == {
        "name",
        "current_revision",
        "enabled",
        "updated_at",
    }
    assert {"source", "source_hash", "settings", "parameters"} <= {
        c["name"] for c in inspector.get_columns("engine_revisions")
    }
    assert {"engine_revision", "outputs"} <= {c["name"] for c in inspector.get_columns("attempts")}
    assert "engine" in {c["name"] for c in inspector.get_columns("blocks")}
