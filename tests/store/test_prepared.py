"""Statements run on the transaction's DBAPI cursor (`store.prepared`) behave as SQLAlchemy's
`execute` would: same values in and out, same transaction, same errors."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from thresher.core.errors import Unavailable
from thresher.store.prepared import Prepared
from thresher.store.store import Store
from thresher.store.tables import tokens, users

_ADD = Prepared(
    tokens.insert()
    .values(
        name=sa.bindparam("name"),
        role="worker",  # a literal value of the statement
        token_hash=sa.bindparam("token_hash"),
        created_at=sa.bindparam("at"),
        revoked=sa.bindparam("revoked"),
    )
    .returning(tokens.c.id, tokens.c.revoked)
)
_FIND = Prepared(
    sa.select(tokens.c.id, tokens.c.role, tokens.c.revoked, users.c.groups)
    .select_from(tokens.outerjoin(users, users.c.name == tokens.c.name))
    .where(tokens.c.created_at >= sa.bindparam("since"))
    .order_by(tokens.c.id)
)
_REVOKE = Prepared(tokens.update().where(tokens.c.id == sa.bindparam("id")).values(revoked=True))


def test_values_in_and_out_and_one_transaction(store: Store) -> None:
    store.users.put("ann", role="user", groups=["lighting"], now=1.0)
    with store.transaction() as conn:
        added = _ADD.first(conn, {"name": "ann", "token_hash": "h1", "at": 10.0, "revoked": False})
        _ADD.run(
            conn,
            [
                {"name": "bob", "token_hash": "h2", "at": 11.0, "revoked": False},
                {"name": "cy", "token_hash": "h3", "at": 12.0, "revoked": False},
            ],
        )
        assert _REVOKE.run(conn, {"id": added.id}) == 1
        # What SQLAlchemy sees in the same transaction, and the other way round.
        seen = conn.execute(sa.select(tokens.c.revoked).where(tokens.c.id == added.id)).scalar()
        assert seen is True
        rows = _FIND.all(conn, {"since": 10.0})
    assert added.revoked is False  # booleans come back as booleans (SQLite stores 0/1)
    assert [(r.role, r.revoked, r.groups) for r in rows] == [
        ("worker", True, ["lighting"]),  # JSON decoded as SQLAlchemy decodes it
        ("worker", False, None),
        ("worker", False, None),
    ]
    assert _FIND.first(store.engine.connect(), {"since": 99.0}) is None


def test_rolled_back_with_the_transaction(store: Store) -> None:
    def failing_use_case() -> None:
        with store.transaction() as conn:
            _ADD.run(conn, {"name": "ann", "token_hash": "h1", "at": 10.0, "revoked": False})
            raise RuntimeError("the use case failed")

    with pytest.raises(RuntimeError):
        failing_use_case()
    with store.engine.connect() as conn:
        assert _FIND.all(conn, {"since": 0.0}) == []


def test_errors_wrapped_as_sqlalchemy_wraps_them(store: Store) -> None:
    with store.transaction() as conn:
        _ADD.run(conn, {"name": "ann", "token_hash": "h1", "at": 10.0, "revoked": False})
    with store.transaction() as conn, pytest.raises(sa.exc.IntegrityError):
        _ADD.run(conn, {"name": "bob", "token_hash": "h1", "at": 11.0, "revoked": False})


def test_a_lost_connection_is_unavailable(store: Store) -> None:
    if store.dialect != "postgresql":
        pytest.skip("a server connection to lose: PostgreSQL")

    def read_after_losing_the_connection() -> None:
        with store.transaction() as conn:
            pid = conn.execute(sa.text("SELECT pg_backend_pid()")).scalar()
            with store.engine.connect() as other:
                other.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
            _FIND.all(conn, {"since": 0.0})

    with pytest.raises(Unavailable):
        read_after_losing_the_connection()
    with store.transaction() as conn:  # the pool gives a live connection again
        assert _FIND.all(conn, {"since": 0.0}) == []


def test_tokens_found_together_as_one_by_one(store: Store) -> None:
    """`Tokens.find_many` (polls confirmed together) answers as `find` would for each hash,
    past one statement's worth of hashes too: revoked and expired ones left out."""
    for i in range(70):
        store.tokens.add(
            name=f"w{i}",
            role="worker",
            token_hash=f"h{i}",
            now=1.0,
            expires_at=5.0 if i % 7 == 3 else None,
        )
    revoked = store.tokens.find("h5", now=2.0)
    assert revoked is not None
    store.tokens.revoke(revoked.id)
    hashes = [f"h{i}" for i in range(70)] + ["unknown", "h1"]
    found = store.tokens.find_many(hashes, now=10.0)
    assert found == {h: r for h in hashes if (r := store.tokens.find(h, now=10.0)) is not None}
    assert len(found) == 70 - 1 - 10  # h5 revoked, ten expired


def test_parameters_as_sqlalchemy_binds_them(store: Store) -> None:
    """A run's value overrides the statement's literal value of the same name, and the
    dialect's conversions apply (SQLite's floats) to values that are not None, for one run
    and for several."""
    add = Prepared(
        tokens.insert()
        .values(
            name=sa.bindparam("name"),
            role=sa.bindparam("role", value="worker"),  # a literal the run may override
            token_hash=sa.bindparam("token_hash"),
            created_at=sa.bindparam("at"),
            expires_at=sa.bindparam("expires"),
            revoked=False,
        )
        .returning(tokens.c.id)
    )
    with store.transaction() as conn:
        add.first(conn, {"name": "ann", "token_hash": "h1", "at": 10, "expires": None})
        add.run(
            conn,
            [
                {"name": "bob", "token_hash": "h2", "at": 11.5, "role": "admin", "expires": None},
                {"name": "cy", "token_hash": "h3", "at": 12, "expires": 99},
            ],
        )
        rows = conn.execute(
            sa.select(tokens.c.name, tokens.c.role, tokens.c.created_at, tokens.c.expires_at)
            .where(tokens.c.token_hash.in_(["h1", "h2", "h3"]))
            .order_by(tokens.c.name)
        ).all()
    assert [tuple(r) for r in rows] == [
        ("ann", "worker", 10.0, None),
        ("bob", "admin", 11.5, None),
        ("cy", "worker", 12.0, 99.0),
    ]
    assert all(isinstance(r.created_at, float) for r in rows)
