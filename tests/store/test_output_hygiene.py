"""A task's output as the store keeps it, on SQLite and PostgreSQL: NULs and lone surrogates are
stored as U+FFFD (never a failed insert), each task stores at most so many log bytes with one
marker line counting the rest, and deleting a job gives its log space back (SQLite)."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from tests.statements import statements_run
from tests.store.support import add_worker, block, claim
from thresher.core.model import Assignment, JobSpec
from thresher.core.states import AttemptStatus
from thresher.store.store import FinishReport, Store
from thresher.store.task_output import MARKER
from thresher.testing import FakeClock


def running(store: Store, clock: FakeClock, *, retries: int = 0) -> tuple[int, Assignment]:
    spec = JobSpec(
        name="job",
        owner="u",
        priority=50,
        kind="command",
        blocks=(block("main", "1", 1, retries=retries),),
    )
    job_id = store.jobs.create(spec, now=clock.now())
    worker = add_worker(store, "w1", clock)
    got = claim(store, worker, now=clock.now())
    assert got is not None
    return job_id, got


def log_texts(store: Store, job_id: int) -> list[tuple[str, str]]:
    return [(s, t) for _, _, s, t in store.attempts.task_log(job_id, 0, 0)]


def test_nul_bytes_and_lone_surrogates_in_output_are_stored_replaced(
    store: Store, clock: FakeClock
) -> None:
    job_id, got = running(store, clock)

    store.attempts.record_output(
        got.attempt_id,
        got.token,
        lines=[("stdout", "a\x00b"), ("stderr", "bad \ud800 half")],
        progress=None,
        outputs=["/out/f\x00.png"],
        status_message="step\x00 2",
    )
    store.attempts.finish(
        FinishReport(got.attempt_id, got.token, AttemptStatus.FAILED, message="died\x00"),
        now=clock.now(),
    )

    lines = log_texts(store, job_id)
    assert lines[0] == ("stdout", "a\ufffdb")
    assert lines[1][1].startswith("bad \ufffd")
    assert lines[1][1].endswith(" half")
    (attempt,) = store.attempts.of_job(job_id)
    assert attempt.outputs == ("/out/f\ufffd.png",)
    assert attempt.status_message == "step\ufffd 2"
    assert attempt.message == "died\ufffd"


def test_past_the_cap_lines_are_dropped_and_one_marker_counts_them(
    store: Store, clock: FakeClock
) -> None:
    job_id, got = running(store, clock)

    def send(*texts: str) -> None:
        store.attempts.record_output(
            got.attempt_id,
            got.token,
            lines=[("stdout", t) for t in texts],
            progress=None,
            max_log_bytes=10,
        )

    send("aaaa", "bbbb")  # 8 bytes: stored
    send("cccc", "dd")  # the first does not fit: it and every line after it are dropped
    send("é" * 3)  # 6 bytes in UTF-8

    lines = log_texts(store, job_id)
    assert lines[:2] == [("stdout", "aaaa"), ("stdout", "bbbb")]
    markers = [t for s, t in lines[2:] if s == "system"]
    assert len(lines) == 3
    assert len(markers) == 1
    assert markers[0].startswith(MARKER)
    assert "at most 10 bytes" in markers[0]
    assert "3 lines (12 bytes) dropped so far" in markers[0]


def test_the_cap_is_per_task_over_its_attempts_and_outlives_the_store_object(
    store: Store, db_url: str, clock: FakeClock
) -> None:
    job_id, first = running(store, clock, retries=1)
    store.attempts.record_output(
        first.attempt_id, first.token, lines=[("stdout", "x" * 8)], progress=None, max_log_bytes=10
    )
    store.attempts.finish(
        FinishReport(first.attempt_id, first.token, AttemptStatus.FAILED), now=clock.now()
    )
    worker = add_worker(store, "w2", clock)
    second = claim(store, worker, now=clock.now())
    assert second is not None
    assert second.attempt_id != first.attempt_id

    # Stores opened afresh over the same database (restarted controllers) count what is
    # stored, and the drops the marker already counts.
    for text in ("yyy", "zz", "w"):
        restarted = Store.open(db_url)
        try:
            restarted.attempts.record_output(
                second.attempt_id,
                second.token,
                lines=[("stdout", text)],
                progress=None,
                max_log_bytes=10,
            )
        finally:
            restarted.close()

    lines = log_texts(store, job_id)
    assert lines[0] == ("stdout", "x" * 8)
    assert [s for s, _ in lines[1:]] == ["system"]
    assert "3 lines (6 bytes) dropped so far" in lines[1][1]


def test_a_tasks_first_lines_read_what_it_holds_with_the_attempt(
    store: Store, clock: FakeClock
) -> None:
    """The first output of a task here reads the attempt and the bytes its task's lines hold
    in one statement; later batches read the attempt alone (the bytes are counted here)."""
    job_id, got = running(store, clock)
    with statements_run(store.db.engine) as statements:
        for text in ("one", "two"):
            store.attempts.record_output(
                got.attempt_id, got.token, lines=[("stdout", text)], progress=None
            )
    first, second = [s for s in statements if s.startswith("SELECT")]
    assert "t_stored" in first
    assert "t_stored" not in second
    assert log_texts(store, job_id) == [("stdout", "one"), ("stdout", "two")]


def test_lines_under_the_default_cap_are_all_kept(store: Store, clock: FakeClock) -> None:
    job_id, got = running(store, clock)
    texts = [f"line {i}" for i in range(500)]

    store.attempts.record_output(
        got.attempt_id, got.token, lines=[("stdout", t) for t in texts], progress=None
    )

    assert [t for _, t in log_texts(store, job_id)] == texts


def _pages(engine: sa.Engine) -> tuple[int, int]:
    with engine.connect() as conn:
        return (
            int(conn.exec_driver_sql("PRAGMA page_count").scalar_one()),
            int(conn.exec_driver_sql("PRAGMA freelist_count").scalar_one()),
        )


def test_deleting_a_job_gives_its_log_space_back_on_sqlite(
    tmp_path: Path, clock: FakeClock
) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 'thresher.db'}")
    try:
        with store.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA auto_vacuum").scalar_one() == 2  # incremental
        job_id, got = running(store, clock)
        before, _ = _pages(store.engine)
        for _ in range(20):
            store.attempts.record_output(
                got.attempt_id,
                got.token,
                lines=[("stdout", "x" * 1000)] * 100,
                progress=None,
            )
        grown, _ = _pages(store.engine)
        assert grown > before + 400  # 2 MB of log lines

        store.jobs.delete(job_id)

        after, free = _pages(store.engine)
        assert free == 0
        assert after < before + 50
    finally:
        store.close()


def test_a_log_is_read_in_pages_bounded_by_lines_and_bytes(store: Store, clock: FakeClock) -> None:
    job_id, got = running(store, clock)
    texts = [f"{i:04d} " + "x" * 2000 for i in range(2500)]  # about 5 MB over three slices
    for start in range(0, len(texts), 500):
        store.attempts.record_output(
            got.attempt_id,
            got.token,
            lines=[("stdout", t) for t in texts[start : start + 500]],
            progress=None,
            outputs=[],
            status_message=None,
        )

    seen: list[str] = []
    after, pages = 0, 0
    while True:
        page, more = store.attempts.log_page(job_id, 0, 0, after_id=after, max_bytes=100_000)
        assert sum(len(t.encode()) for *_, t in page) <= 100_000
        seen += [t for *_, t in page]
        pages += 1
        if not more:
            break
        after = page[-1][0]
    assert seen == texts  # every line once, in order, whatever the page boundaries
    assert pages == 52  # 49 lines of 2,005 bytes fit 100,000: 2,500 lines take 52 pages

    page, more = store.attempts.log_page(job_id, 0, 0, limit=2500)
    assert (len(page), more) == (2500, False)  # exactly the rest: no next page
    page, more = store.attempts.log_page(job_id, 0, 0, limit=2499)
    assert (len(page), more) == (2499, True)
    page, more = store.attempts.log_page(job_id, 0, 0, max_bytes=1)
    assert (len(page), more) == (1, True)  # one line at least, so a reader always moves on


def test_a_batch_sent_again_stores_only_the_lines_it_lacks(store: Store, clock: FakeClock) -> None:
    """GIVEN lines 0-2 stored WHEN a repeat batch of lines 1-4 comes (the worker did not hear
    the first answer, and gathered more since) THEN only 3 and 4 are added; a batch not marked
    `repeat`, or one from a worker that does not number its lines, is stored as it comes."""
    job_id, got = running(store, clock)

    def send(first: int | None, texts: list[str], *, repeat: bool) -> None:
        store.attempts.record_output(
            got.attempt_id,
            got.token,
            lines=[("stdout", t) for t in texts],
            progress=None,
            first_line=first,
            repeat=repeat,
        )

    send(0, ["l0", "l1", "l2"], repeat=False)
    send(1, ["l1", "l2", "l3", "l4"], repeat=True)
    send(2, ["l2"], repeat=True)  # all of it stored already
    assert [t for _, t in log_texts(store, job_id)] == ["l0", "l1", "l2", "l3", "l4"]
    send(5, ["l5"], repeat=False)
    send(None, ["unnumbered"], repeat=False)
    send(None, ["unnumbered"], repeat=True)  # no numbers: nothing to compare with
    send(5, ["l5", "l6"], repeat=True)
    assert [t for _, t in log_texts(store, job_id)] == [
        "l0", "l1", "l2", "l3", "l4", "l5", "unnumbered", "unnumbered", "l6",
    ]  # fmt: skip
