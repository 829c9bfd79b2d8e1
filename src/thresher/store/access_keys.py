"""AWS-style access keys (Deadline Cloud compatible routes): the secret must be readable,
since checking a SigV4 signature needs it, so it is kept sealed (the controller seals and
opens it with a key outside the database); each key acts as the token it was issued with."""

from __future__ import annotations

import sqlalchemy as sa

from thresher.store.base import Repository
from thresher.store.records import TokenRecord
from thresher.store.tables import access_keys, tokens, users


class AccessKeys(Repository):
    def add(self, *, access_key_id: str, sealed_secret: str, token_id: int, now: float) -> None:
        with self.db.begin() as conn:
            conn.execute(
                access_keys.insert().values(
                    access_key_id=access_key_id,
                    secret="",
                    sealed_secret=sealed_secret,
                    token_id=token_id,
                    created_at=now,
                )
            )

    def find(self, access_key_id: str, *, now: float) -> tuple[str, TokenRecord] | None:
        """(sealed secret, the token it acts as) of a key whose token works now."""
        with self.db.connect() as conn:
            row = conn.execute(
                sa.select(
                    access_keys.c.secret,
                    access_keys.c.sealed_secret,
                    tokens.c.id,
                    tokens.c.name,
                    tokens.c.role,
                    users.c.groups,
                )
                .select_from(
                    access_keys.join(tokens, tokens.c.id == access_keys.c.token_id).outerjoin(
                        users, users.c.name == tokens.c.name
                    )
                )
                .where(
                    access_keys.c.access_key_id == access_key_id,
                    tokens.c.revoked.is_(False),
                    sa.or_(tokens.c.expires_at.is_(None), tokens.c.expires_at > now),
                    sa.or_(users.c.disabled.is_(None), users.c.disabled.is_(False)),
                )
            ).first()
        if row is None:
            return None
        record = TokenRecord(row.id, row.name, row.role, tuple(row.groups or ()))
        return (row.sealed_secret or row.secret, record)

    def unsealed(self) -> list[tuple[str, str]]:
        """(key id, secret) of keys stored before secrets were sealed."""
        with self.db.connect() as conn:
            rows = conn.execute(
                sa.select(access_keys.c.access_key_id, access_keys.c.secret).where(
                    access_keys.c.sealed_secret.is_(None)
                )
            ).all()
        return [(r.access_key_id, r.secret) for r in rows]

    def seal(self, access_key_id: str, sealed_secret: str) -> None:
        with self.db.begin() as conn:
            conn.execute(
                access_keys.update()
                .where(access_keys.c.access_key_id == access_key_id)
                .values(secret="", sealed_secret=sealed_secret)
            )
