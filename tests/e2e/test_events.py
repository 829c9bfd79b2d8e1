"""End to end: a webhook receiver and an SMTP server on 127.0.0.1 hear a job's life from a
controller and a worker that are real processes; every webhook's signature is verified."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import default
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import Farm
from thresher.core.events import verify
from thresher.testing import wait_until

pytestmark = pytest.mark.e2e


class Receiver:
    """Webhooks received: (headers, body), in order; answers 500 to the first `fail_first`."""

    def __init__(self, fail_first: int = 0) -> None:
        self.got: list[tuple[dict[str, str], bytes]] = []
        self.refused = 0
        self.fail_first = fail_first
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with receiver.lock:
                    refuse = receiver.refused < receiver.fail_first
                    if refuse:
                        receiver.refused += 1
                    else:
                        receiver.got.append((dict(self.headers.items()), body))
                self.send_response(500 if refuse else 204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def kinds(self) -> list[str]:
        with self.lock:
            return [json.loads(body)["kind"] for _, body in self.got]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver(fail_first=1)  # the first try fails: the event comes again, once
    r.thread.start()
    try:
        yield r
    finally:
        r.server.shutdown()
        r.server.server_close()


def test_a_webhook_hears_every_event_of_a_job_once_signed(
    farm: Farm, receiver: Receiver, tmp_path: Path
) -> None:
    farm.controller()
    farm.worker("w1")
    marker = tmp_path / "failed-once"
    with farm.client() as client:
        sub = client.subscribe("webhook", receiver.url)
        assert sub.secret is not None
        # Fails on its first run, succeeds on its retry: submitted, task.failed, succeeded.
        job = client.submit(
            "flaky",
            ["sh", "-c", 'if test -e "$M"; then exit 0; fi; touch "$M"; exit 3'],
            frames="1",
            env={"M": str(marker)},
        )
        wait_until(lambda: len(receiver.kinds()) >= 3, timeout=60, what="three webhooks")
        assert client.job(job.id).status == "succeeded"
        listed = client.subscriptions()
        assert [s.secret for s in listed] == [None]  # the secret is shown once, at creation
    # Once each; in the order of the events (a retried delivery may arrive after later ones).
    by_id = sorted(receiver.got, key=lambda got: int(got[0]["Thresher-Event-Id"]))
    assert [json.loads(body)["kind"] for _, body in by_id] == [
        "job.submitted",
        "task.failed",
        "job.succeeded",
    ]
    assert receiver.refused == 1
    ids = []
    for headers, body in receiver.got:
        assert verify(sub.secret, headers["Thresher-Signature"], body, now=time.time())
        assert not verify("whsec_wrong", headers["Thresher-Signature"], body, now=time.time())
        event = json.loads(body)
        assert event["job_id"] == job.id
        assert headers["Thresher-Event-Id"] == str(event["id"])
        ids.append(event["id"])
    assert len(set(ids)) == 3
    failed = json.loads(by_id[1][1])
    assert failed["data"]["failures"] == 1
    assert failed["data"]["exit_code"] == 3


class Mailbox:
    """An aiosmtpd handler keeping the messages it receives."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []

    async def handle_DATA(self, server: object, session: object, envelope: Any) -> str:
        parsed = BytesParser(policy=default).parsebytes(envelope.content)
        assert isinstance(parsed, EmailMessage)
        self.messages.append(parsed)
        return "250 OK"


def test_an_email_subscription_gets_a_signed_mail_through_smtp(sqlite_farm: Farm) -> None:
    smtpd = pytest.importorskip("aiosmtpd.controller")
    mailbox = Mailbox()
    with socket.socket() as probe:  # a free port (aiosmtpd cannot be given 0)
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = smtpd.Controller(mailbox, hostname="127.0.0.1", port=port)
    server.start()
    try:
        farm = sqlite_farm
        farm.controller(args=["--smtp-host", "127.0.0.1", "--smtp-port", str(port)])
        farm.worker("w1")
        with farm.client() as client:
            sub = client.subscribe("email", "wrangler@studio.example", events=["job.succeeded"])
            assert sub.secret is not None
            job = client.submit("mailed", ["true"], frames="1-2")
            wait_until(lambda: mailbox.messages, timeout=60, what="a mail")
    finally:
        server.stop()
    (mail,) = mailbox.messages
    assert mail["To"] == "wrangler@studio.example"
    assert mail["Subject"] == f"[thresher] job.succeeded: mailed (job {job.id})"
    (attachment,) = list(mail.iter_attachments())
    body = attachment.get_payload(decode=True)
    assert isinstance(body, bytes)
    assert verify(sub.secret, str(mail["Thresher-Signature"]), body, now=time.time())
    assert json.loads(body)["kind"] == "job.succeeded"


def test_a_worker_short_of_disk_is_one_disk_low_event(sqlite_farm: Farm) -> None:
    farm = sqlite_farm
    farm.controller(args=["--disk-low-gb", "1000000"])  # a petabyte: every disk here is low
    farm.worker("w1")
    with farm.client() as client:
        found = wait_until(
            lambda: [e for e in client.events() if e.kind == "worker.disk_low"],
            timeout=30,
            what="a worker.disk_low event",
        )
        job = client.submit("more-polls", ["true"], frames="1-3")
        wait_until(lambda: client.job(job.id).status == "succeeded", timeout=60, what="job")
        again = [e for e in client.events(limit=1000) if e.kind == "worker.disk_low"]
    assert [e.worker for e in again] == ["w1"]
    assert found[0].data["free_bytes"] > 0
