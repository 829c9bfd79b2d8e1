"""Who hears of which event, the retry backoff, and the webhook signature."""

from __future__ import annotations

import pytest

from thresher.core.events import (
    EventFacts,
    Wants,
    backoff_s,
    matches,
    sign,
    signature_header,
    verify,
)

ANN = Wants(owner="ann", kinds=("*",))


@pytest.mark.parametrize(
    ("wants", "event", "heard"),
    [
        (ANN, EventFacts("job.succeeded", job_id=1, owner="ann"), True),
        (ANN, EventFacts("job.succeeded", job_id=1, owner="bob"), False),
        (Wants("ann", ("job.failed",)), EventFacts("job.succeeded", 1, "ann"), False),
        (Wants("ann", ("*",), job_id=2), EventFacts("job.failed", 1, "ann"), False),
        (Wants("ann", ("*",), job_id=2), EventFacts("job.failed", 2, "ann"), True),
        (Wants("adm", ("*",), all_users=True), EventFacts("job.failed", 2, "bob"), True),
        (ANN, EventFacts("worker.lost"), False),  # workers' events: all_users subscriptions
        (Wants("adm", ("worker.lost",), all_users=True), EventFacts("worker.lost"), True),
        (
            Wants("ann", ("task.failed",), min_failures=3),
            EventFacts("task.failed", 1, "ann", 2),
            False,
        ),
        (
            Wants("ann", ("task.failed",), min_failures=3),
            EventFacts("task.failed", 1, "ann", 3),
            True,
        ),
    ],
)
def test_who_hears_what(wants: Wants, event: EventFacts, heard: bool) -> None:
    assert matches(wants, event) is heard


def test_backoff_doubles_up_to_its_cap() -> None:
    assert [backoff_s(n, base_s=1, cap_s=10) for n in (1, 2, 3, 4, 5)] == [1, 2, 4, 8, 10]


def test_a_signature_verifies_only_with_its_secret_body_and_time() -> None:
    header = signature_header("s3cret", 1000, b'{"id":1}')
    assert header == "t=1000,v1=" + sign("s3cret", 1000, b'{"id":1}')
    assert verify("s3cret", header, b'{"id":1}', now=1100)
    assert not verify("other", header, b'{"id":1}', now=1100)
    assert not verify("s3cret", header, b'{"id":2}', now=1100)
    assert not verify("s3cret", header, b'{"id":1}', now=1000 + 301)  # a replay, too late
    assert not verify("s3cret", "garbage", b'{"id":1}', now=1000)
