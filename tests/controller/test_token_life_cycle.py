"""GIVEN tokens, accounts and one-time enrolment codes on a served controller THEN a token is
shown once and stored hashed, expires, and a revoked one (or one whose user was removed or
changed role) is refused from the very next request, on every controller; an enrolment code
buys one worker its own token once; a worker claims for its own lanes only."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from thresher.client import AgentClient, Client, Conflict, Forbidden, Unauthorized
from thresher.controller.settings import ControllerSettings
from thresher.schemas import api
from thresher.store.db import sqlite_url
from thresher.store.tables import tokens
from thresher.testing import FakeClock, ServedController, serve_in_thread


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def served(db_url: str, tmp_path: Path, clock: FakeClock) -> Iterator[ServedController]:
    settings = ControllerSettings(data_dir=tmp_path / "data")
    with serve_in_thread(settings, database_url=db_url, clock=clock) as s:
        yield s


@pytest.fixture
def admin(served: ServedController) -> Iterator[Client]:
    with Client(served.url, served.admin_token) as client:
        yield client


def test_a_token_is_shown_once_stored_hashed_listed_and_revoked_on_the_next_request(
    served: ServedController, admin: Client
) -> None:
    admin.put_account("alice", role="artist")
    first = admin.create_token("alice", "artist").token
    with Client(served.url, first) as alice:
        made = alice.create_own_token("laptop")
        assert made.token.startswith("thr_")
        assert (made.name, made.role) == ("alice", "artist")
        with Client(served.url, made.token) as laptop:
            assert laptop.me().name == "alice"
            listed = {t.id: t for t in alice.tokens()}
            assert listed[made.id].label == "laptop"
            assert "token" not in listed[made.id].model_dump()  # never shown again

            alice.revoke_token(made.id)
            with pytest.raises(Unauthorized):
                laptop.me()  # the very next request
            assert made.id not in {t.id for t in alice.tokens()}
            assert made.id in {t.id for t in alice.tokens(revoked=True)}

    with served.store.engine.connect() as conn:
        stored = conn.execute(sa.select(tokens.c.token_hash)).scalars().all()
    assert made.token not in stored
    assert first not in stored
    assert all(len(h) == 64 for h in stored)  # SHA-256 hex


def test_a_token_expires_and_a_person_gives_at_most_its_own_role(
    served: ServedController, admin: Client, clock: FakeClock
) -> None:
    artist = admin.create_token("alice", "artist").token
    with Client(served.url, artist) as alice:
        with pytest.raises(Forbidden):
            alice.create_own_token("up", role="wrangler")
        short = alice.create_own_token("ci", role="viewer", expires_in_s=60)
        assert short.expires_at == pytest.approx(clock.now() + 60)
    with Client(served.url, short.token) as ci:
        assert ci.me().role == "viewer"
        clock.advance(61)
        with pytest.raises(Unauthorized):
            ci.me()


def test_removing_a_user_or_changing_its_role_bites_on_the_next_request(
    served: ServedController, admin: Client
) -> None:
    admin.put_account("bob", role="artist")
    token = admin.create_token("bob", "artist").token
    dashboard = admin.create_token("bob", "viewer").token
    with Client(served.url, token) as bob, Client(served.url, dashboard) as screen:
        bob.submit("mine", ["true"], paused=True)
        admin.put_account("bob", role="wrangler")  # his tokens of the old role follow...
        assert bob.me().role == "wrangler"
        assert screen.me().role == "viewer"  # ...one made lower on purpose stays so
        admin.put_account("bob", role="viewer")  # and none keeps a role above his
        with pytest.raises(Forbidden):
            bob.submit("again", ["true"], paused=True)
        assert bob.me().role == "viewer"
        admin.remove_account("bob")
        with pytest.raises(Unauthorized):
            bob.me()


def test_a_revocation_on_one_controller_bites_on_the_next_request_to_another(
    db_url: str, tmp_path: Path
) -> None:
    """Two controllers over one database (as several controllers share one PostgreSQL)."""
    data = tmp_path / "data"
    url = db_url if db_url.startswith("postgresql") else sqlite_url(data)
    data.mkdir(mode=0o700)
    with contextlib.ExitStack() as stack:
        one = stack.enter_context(
            serve_in_thread(ControllerSettings(data_dir=data), database_url=url)
        )
        two = stack.enter_context(
            serve_in_thread(ControllerSettings(data_dir=data), database_url=url)
        )
        admin = stack.enter_context(Client(one.url, one.admin_token))
        made = admin.create_token("carol", "artist")
        on_two = stack.enter_context(Client(two.url, made.token))
        assert on_two.me().name == "carol"
        assert on_two.me().name == "carol"  # looked up again: no cache to wait out

        admin.revoke_token(made.id)

        with pytest.raises(Unauthorized):
            on_two.me()


# -- enrolment codes --------------------------------------------------------------------------


def _facts(name: str, lanes: int = 1) -> api.RegisterIn:
    return api.RegisterIn(
        name=name, hostname=name, os="linux", cores=2, ram_bytes=2**30, lanes=lanes
    )


def test_an_enrolment_code_enrols_one_worker_once(
    served: ServedController, admin: Client, clock: FakeClock
) -> None:
    asyncio.run(_enrol_once(served, admin, clock))


async def _enrol_once(served: ServedController, admin: Client, clock: FakeClock) -> None:
    code = admin.create_enrol_code()
    assert len(code.code) == 9
    assert code.code[4] == "-"

    first = AgentClient(served.url, "", enrol_code=code.code.lower())  # typed any case
    try:
        out = await first.register(_facts("node1"))
        assert out.token.startswith("thr_worker_")
        assert (await first.poll(api.PollIn(wait_s=0))).assignments == []
    finally:
        await first.aclose()

    again = AgentClient(served.url, "", enrol_code=code.code)
    try:
        with pytest.raises(Conflict):
            await again.register(_facts("node2"))  # used once already
    finally:
        await again.aclose()

    listed = {c.id: c for c in admin.enrol_codes()}
    assert (listed[code.id].used_by, listed[code.id].used_at) == ("node1", clock.now())

    revoked = admin.create_enrol_code()
    admin.revoke_enrol_code(revoked.id)
    expired = admin.create_enrol_code(ttl_s=10)
    clock.advance(11)
    for spent in (revoked.code, expired.code):
        late = AgentClient(served.url, "", enrol_code=spent)
        try:
            with pytest.raises(Conflict):
                await late.register(_facts("node3"))
        finally:
            await late.aclose()


def test_a_worker_claims_only_for_its_own_lanes(served: ServedController, admin: Client) -> None:
    asyncio.run(_own_lanes(served, admin))


async def _own_lanes(served: ServedController, admin: Client) -> None:
    admin.submit("work", ["true"], frames="1-4")
    enrol = admin.create_token("enroller", "enrol").token
    agent = AgentClient(served.url, enrol)
    try:
        await agent.register(_facts("two-lanes", lanes=2))
        with pytest.raises(Forbidden) as refused:
            await agent.poll(api.PollIn(wait_s=0, lanes=[0, 2]))
        assert refused.value.field == "lanes"
        with pytest.raises(Forbidden):
            await agent.poll(api.PollIn(wait_s=0, lanes=[0], ahead_lanes=[7]))
        got = await agent.poll(api.PollIn(wait_s=0, lanes=[0, 1]))
        assert len(got.assignments) == 2
    finally:
        await agent.aclose()
