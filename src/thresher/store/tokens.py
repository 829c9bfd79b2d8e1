"""Bearer tokens, stored as hashes."""

from __future__ import annotations

import sqlalchemy as sa

from thresher.store.base import Repository
from thresher.store.records import (
    TokenRecord,
)
from thresher.store.tables import tokens

# Built once: every request looks its token up, and building a statement costs more than
# running it.
_FIND = sa.select(tokens.c.id, tokens.c.name, tokens.c.role).where(
    tokens.c.token_hash == sa.bindparam("token_hash"), tokens.c.revoked.is_(False)
)


class Tokens(Repository):
    def add(self, *, name: str, role: str, token_hash: str, now: float) -> int:
        with self.db.begin() as conn:
            result = conn.execute(
                tokens.insert().values(
                    name=name, role=role, token_hash=token_hash, created_at=now, revoked=False
                )
            )
            return int(result.inserted_primary_key[0])  # type: ignore[index]

    def find(self, token_hash: str) -> TokenRecord | None:
        with self.db.connect() as conn:
            row = conn.execute(_FIND, {"token_hash": token_hash}).first()
        return TokenRecord(row.id, row.name, row.role) if row else None

    def revoke(self, token_id: int) -> None:
        """The token no longer works (a worker's old token when it re-attached)."""
        with self.db.begin() as conn:
            conn.execute(tokens.update().where(tokens.c.id == token_id).values(revoked=True))

    def count(self, role: str) -> int:
        with self.db.connect() as conn:
            n = conn.scalar(sa.select(sa.func.count()).where(tokens.c.role == role))
        return int(n or 0)
