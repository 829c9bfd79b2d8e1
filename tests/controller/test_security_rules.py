"""GIVEN people in groups, workers, access keys and engines on a served controller THEN jobs
(env and logs included) are seen by their owner's groups only; preemption and dedicated pools
need a wrangler; access-key secrets are sealed at rest and the data directory, database and
key files are private; every state-changing call lands in the audit trail; an engine is
checked in a process of its own, with a time limit, and a refused one leaves nothing behind;
the controller serves TLS that clients verify."""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import stat
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import sqlalchemy as sa
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from thresher.client import Client, Forbidden, InvalidRequest, NotFound, TransportError
from thresher.controller import audit as audit_trail
from thresher.controller.settings import ControllerSettings
from thresher.store.db import sqlite_url
from thresher.store.store import Store
from thresher.store.tables import access_keys, engine_revisions
from thresher.testing import ServedController, serve_in_thread, wait_until


@pytest.fixture
def served(tmp_path: Path) -> Iterator[ServedController]:
    settings = ControllerSettings(data_dir=tmp_path / "data", engine_check_timeout_s=3.0)
    with serve_in_thread(settings) as s:
        yield s


@pytest.fixture
def admin(served: ServedController) -> Iterator[Client]:
    with Client(served.url, served.admin_token) as client:
        yield client


def _person(served: ServedController, admin: Client, name: str, role: str, *groups: str) -> Client:
    admin.put_account(name, role=role, groups=groups)
    return Client(served.url, admin.create_token(name, role).token)


def test_a_job_its_env_and_logs_are_seen_by_its_owners_groups_only(
    served: ServedController, admin: Client
) -> None:
    alice = _person(served, admin, "alice", "artist", "show1")
    ann = _person(served, admin, "ann", "artist", "show1", "show2")
    vera = _person(served, admin, "vera", "viewer", "show1")
    bob = _person(served, admin, "bob", "artist")
    job = alice.submit("secret", ["true"], env={"API_KEY": "s3cr3t"}, paused=True)

    for peer in (ann, vera):
        assert peer.job(job.id).env == {"API_KEY": "s3cr3t"}
        assert [j.id for j in peer.jobs()] == [job.id]
        peer.log(job.id, 0)  # the task's log: readable too
    with pytest.raises(Forbidden):
        ann.cancel(job.id)  # seeing is not acting: only the owner and wranglers act
    for stranger in (bob,):
        with pytest.raises(NotFound):
            stranger.job(job.id)
        with pytest.raises(NotFound):
            stranger.log(job.id, 0)
        assert stranger.jobs() == []
    wendy = _person(served, admin, "wendy", "wrangler")
    assert wendy.cancel(job.id).status == "canceled"
    for c in (alice, ann, vera, bob, wendy):
        c.close()


def test_preemption_and_dedicated_pools_need_a_wrangler(
    served: ServedController, admin: Client
) -> None:
    alice = _person(served, admin, "alice", "artist")
    with pytest.raises(Forbidden) as preempt:
        alice.submit("greedy", ["true"], filters="pool:@lighting", preempt=True)
    assert preempt.value.field in ("preempt", "filters")
    with pytest.raises(Forbidden) as dedicated:
        alice.submit("greedy", ["true"], filters="pool:@lighting")
    assert dedicated.value.field == "filters"
    assert alice.submit("fair", ["true"], filters="pool:+lighting", paused=True).id
    wendy = _person(served, admin, "wendy", "wrangler")
    assert wendy.submit("urgent", ["true"], filters="pool:@lighting", preempt=True, paused=True)
    alice.close()
    wendy.close()


def test_access_key_secrets_are_sealed_and_the_data_is_private(
    served: ServedController, admin: Client
) -> None:
    made = admin.create_access_key("deadline-user", "artist")
    with served.store.engine.connect() as conn:
        row = conn.execute(sa.select(access_keys)).one()
    assert made["secret_access_key"] not in (row.secret, row.sealed_secret)
    assert row.sealed_secret.startswith("gAAAAA")  # Fernet

    data = served.settings.data_dir
    for path, mode in (
        (data, 0o700),
        (data / "thresher.db", 0o600),
        (data / "secret.key", 0o600),
        (data / "admin-token", 0o600),
    ):
        assert stat.S_IMODE(os.stat(path).st_mode) == mode, path


def test_secrets_stored_before_sealing_existed_are_sealed_at_start(tmp_path: Path) -> None:
    settings = ControllerSettings(data_dir=tmp_path / "data")
    with serve_in_thread(settings) as first, Client(first.url, first.admin_token) as admin:
        made = admin.create_access_key("old", "artist")
        with first.store.engine.begin() as conn:  # as an earlier release stored it
            conn.execute(
                access_keys.update().values(secret=made["secret_access_key"], sealed_secret=None)
            )
    with serve_in_thread(settings) as again, again.store.engine.connect() as conn:
        row = conn.execute(sa.select(access_keys)).one()
    assert row.secret == ""
    assert row.sealed_secret.startswith("gAAAAA")


def test_every_state_changing_call_is_audited_with_who_what_and_which(
    served: ServedController, admin: Client
) -> None:
    alice = _person(served, admin, "alice", "artist")
    job = alice.submit("audited", ["true"], paused=True)
    alice.set_priority(job.id, 70)
    with pytest.raises(NotFound):
        alice.cancel(job.id + 1000)

    entries = admin.audit(actor="alice")
    seen = [(e.action, e.object, e.status) for e in entries]
    assert ("PUT /api/v1/jobs/{job_id}/priority", f"/api/v1/jobs/{job.id}/priority", 200) in seen
    assert ("POST /api/v1/jobs", f"/api/v1/jobs -> {job.id}", 201) in seen
    assert (
        "POST /api/v1/jobs/{job_id}/cancel",
        f"/api/v1/jobs/{job.id + 1000}/cancel",
        404,
    ) in seen
    assert all(e.actor == "alice" and e.role == "artist" for e in entries)
    assert [e.action for e in admin.audit(contains="/api/v1/accounts/alice")] == [
        "PUT /api/v1/accounts/{name}"
    ]
    assert not [e for e in admin.audit(limit=1000) if "/agent/poll" in e.action]
    alice.close()


def test_an_answer_is_written_to_its_row_without_a_read_of_the_trail(
    served: ServedController, admin: Client
) -> None:
    """The answers' statuses are written a moment after they leave, by the farm thread alone:
    no read of the trail is needed for them to land."""
    job = admin.submit("audited", ["true"], paused=True)
    wanted = ("POST /api/v1/jobs", f"/api/v1/jobs -> {job.id}", 201)

    def written() -> bool:
        return wanted in {(e.action, e.object, e.status) for e in served.store.audit.query()}

    wait_until(written, timeout=10, what="the submission's status in its audit row")


def test_an_answer_whose_write_failed_is_written_by_the_next_try(
    served: ServedController, admin: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failed write of the answers (the database away a moment) keeps them: the next
    write (here, the trail's read) writes them."""
    settle = served.store.audit.settle
    tried: list[int] = []

    def failing(answers: list[tuple[int, str, int]]) -> None:
        tried.extend(row for row, _, _ in answers)
        raise RuntimeError("the database is away")

    monkeypatch.setattr(served.store.audit, "settle", failing)
    job = admin.submit("audited", ["true"], paused=True)
    wait_until(lambda: tried, timeout=10, what="the answer's write to fail")
    monkeypatch.setattr(served.store.audit, "settle", settle)
    rows = {(e.action, e.object, e.status) for e in admin.audit(actor="admin")}
    assert ("POST /api/v1/jobs", f"/api/v1/jobs -> {job.id}", 201) in rows


def test_answers_not_yet_written_are_written_when_the_controller_stops(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An answer noted but not written when the controller stops gracefully is written then."""
    monkeypatch.setattr(audit_trail, "SETTLE_AFTER_S", 3600.0)
    settings = ControllerSettings(data_dir=tmp_path / "data")
    with serve_in_thread(settings) as s, Client(s.url, s.admin_token) as admin:
        job = admin.submit("audited", ["true"], paused=True)
        assert {e.status for e in s.store.audit.query() if e.action == "POST /api/v1/jobs"} == {0}
    store = Store.open(sqlite_url(settings.data_dir))
    try:
        rows = {(e.action, e.object, e.status) for e in store.audit.query()}
    finally:
        store.close()
    assert ("POST /api/v1/jobs", f"/api/v1/jobs -> {job.id}", 201) in rows


def test_a_change_is_committed_with_its_audit_row_even_if_its_answer_is_not_recorded(
    served: ServedController, admin: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The row is written in the change's own transaction; only its status waits for the
    answer. The status never written (a controller dying before it writes it) leaves 0."""
    assert served.app is not None
    access = served.app.state.farm.access
    lost: list[int] = []

    def dying(row_id: int, *, obj: str, status: int) -> bool:
        lost.append(row_id)
        return False  # noted nowhere: nothing will write it

    monkeypatch.setattr(access, "answered", dying)
    job = admin.submit("audited", ["true"], paused=True)
    admin.set_priority(job.id, 60)
    with pytest.raises(NotFound):
        admin.cancel(job.id + 1000)  # no change: written whole, as before
    assert len(lost) == 2
    monkeypatch.undo()

    seen = {(e.action, e.object, e.status) for e in admin.audit(actor="admin", limit=1000)}
    assert ("POST /api/v1/jobs", "/api/v1/jobs", 0) in seen
    assert ("PUT /api/v1/jobs/{job_id}/priority", f"/api/v1/jobs/{job.id}/priority", 0) in seen
    assert (
        "POST /api/v1/jobs/{job_id}/cancel",
        f"/api/v1/jobs/{job.id + 1000}/cancel",
        404,
    ) in seen
    assert admin.job(job.id).priority == 60


SLOW_ENGINE = """
import time
time.sleep(60)
"""
# A refused script with a side effect when loaded: a file in its working directory.
SIDE_EFFECT_ENGINE = """
open("engine-was-here", "w").write("x")
raise RuntimeError("refused on purpose")
"""


def test_an_engine_is_checked_outside_the_controller_with_a_time_limit(
    served: ServedController, admin: Client, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InvalidRequest) as slow:
        admin.publish_engine("slowpoke", SLOW_ENGINE)
    assert "longer than 3 s" in str(slow.value)
    assert admin.health()["status"] == "ok"

    with pytest.raises(InvalidRequest) as refused:
        admin.publish_engine("sidefx", SIDE_EFFECT_ENGINE)
    assert "refused on purpose" in str(refused.value)
    assert not (tmp_path / "engine-was-here").exists()
    with served.store.engine.connect() as conn:
        names = conn.execute(sa.select(engine_revisions.c.name)).scalars().all()
    assert "slowpoke" not in names
    assert "sidefx" not in names


def certificate(folder: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def test_the_controller_serves_tls_that_clients_verify(tmp_path: Path) -> None:
    cert, key = certificate(tmp_path)
    settings = replace(
        ControllerSettings(data_dir=tmp_path / "data"), tls_certfile=cert, tls_keyfile=key
    )
    with serve_in_thread(settings) as served:
        assert served.url.startswith("https://")
        with Client(served.url, served.admin_token, ca_file=str(cert)) as trusted:
            assert trusted.me().role == "admin"
        with Client(served.url, served.admin_token) as untrusted, pytest.raises(TransportError):
            untrusted.me()
