"""AWS-style access keys (Deadline Cloud compatible routes): the secret is kept readable,
since checking a SigV4 signature needs it; each key acts as the token it was issued with."""

from __future__ import annotations

import sqlalchemy as sa

from thresher.store.base import Repository
from thresher.store.records import TokenRecord
from thresher.store.tables import access_keys, tokens


class AccessKeys(Repository):
    def add(self, *, access_key_id: str, secret: str, token_id: int, now: float) -> None:
        with self.db.begin() as conn:
            conn.execute(
                access_keys.insert().values(
                    access_key_id=access_key_id, secret=secret, token_id=token_id, created_at=now
                )
            )

    def find(self, access_key_id: str) -> tuple[str, TokenRecord] | None:
        """(secret, the token it acts as) of a key whose token is not revoked."""
        with self.db.connect() as conn:
            row = conn.execute(
                sa.select(access_keys.c.secret, tokens.c.id, tokens.c.name, tokens.c.role)
                .select_from(access_keys.join(tokens, tokens.c.id == access_keys.c.token_id))
                .where(access_keys.c.access_key_id == access_key_id, tokens.c.revoked.is_(False))
            ).first()
        return (row.secret, TokenRecord(row.id, row.name, row.role)) if row else None
