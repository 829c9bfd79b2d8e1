"""People (users with a role and groups), one-time enrolment codes and the audit trail."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import sqlalchemy as sa

from thresher.core.errors import Conflict, NotFound
from thresher.store.base import Repository
from thresher.store.prepared import Prepared
from thresher.store.records import AuditEntry, UserAccount
from thresher.store.tables import audit, enrol_codes, users


def _account(row: Any) -> UserAccount:
    return UserAccount(
        name=row.name,
        role=row.role,
        groups=tuple(row.groups or ()),
        created_at=row.created_at,
        disabled=bool(row.disabled),
    )


class Users(Repository):
    def get(self, name: str) -> UserAccount | None:
        with self.db.connect() as conn:
            row = conn.execute(sa.select(users).where(users.c.name == name)).first()
        return _account(row) if row else None

    def all(self) -> list[UserAccount]:
        with self.db.connect() as conn:
            return [_account(r) for r in conn.execute(sa.select(users).order_by(users.c.name))]

    def put(self, name: str, *, role: str, groups: Sequence[str], now: float) -> None:
        """Create the user or change its role and groups (enabling it again)."""
        with self.db.begin() as conn:
            found = conn.execute(sa.select(users.c.name).where(users.c.name == name)).first()
            values = {"role": role, "groups": list(groups), "disabled": False}
            if found is None:
                conn.execute(users.insert().values(name=name, created_at=now, **values))
            else:
                conn.execute(users.update().where(users.c.name == name).values(**values))

    def disable(self, name: str) -> None:
        with self.db.begin() as conn:
            result = conn.execute(users.update().where(users.c.name == name).values(disabled=True))
            if not result.rowcount:
                raise NotFound(f"no user {name!r}", field="name")

    def sharing_groups(self, groups: Iterable[str]) -> set[str]:
        """Names of the users in any of `groups`."""
        wanted = set(groups)
        if not wanted:
            return set()
        with self.db.connect() as conn:
            rows = conn.execute(sa.select(users.c.name, users.c.groups)).all()
        return {r.name for r in rows if wanted.intersection(r.groups or ())}

    def groups_of(self, name: str) -> tuple[str, ...]:
        with self.db.connect() as conn:
            found = conn.scalar(sa.select(users.c.groups).where(users.c.name == name))
        return tuple(found or ())


class EnrolCodes(Repository):
    def add(self, *, code_hash: str, created_by: str, now: float, expires_at: float) -> int:
        with self.db.begin() as conn:
            result = conn.execute(
                enrol_codes.insert().values(
                    code_hash=code_hash,
                    created_by=created_by,
                    created_at=now,
                    expires_at=expires_at,
                    revoked=False,
                )
            )
            return int(result.inserted_primary_key[0])  # type: ignore[index]

    def use(self, code_hash: str, *, by: str, now: float) -> None:
        """Mark the code used, once: a code unknown, expired, revoked or used before is a
        Conflict (the update is conditional, so two workers racing for it cannot both win)."""
        with self.db.begin() as conn:
            result = conn.execute(
                enrol_codes.update()
                .where(
                    enrol_codes.c.code_hash == code_hash,
                    enrol_codes.c.used_at.is_(None),
                    enrol_codes.c.revoked.is_(False),
                    enrol_codes.c.expires_at > now,
                )
                .values(used_at=now, used_by=by)
            )
            if result.rowcount != 1:
                raise Conflict("the enrolment code is unknown, expired, revoked or already used")

    def revoke(self, code_id: int) -> None:
        with self.db.begin() as conn:
            result = conn.execute(
                enrol_codes.update().where(enrol_codes.c.id == code_id).values(revoked=True)
            )
            if not result.rowcount:
                raise NotFound(f"no enrolment code {code_id}", field="code_id")

    def listed(self) -> list[dict[str, Any]]:
        with self.db.connect() as conn:
            rows = conn.execute(sa.select(enrol_codes).order_by(enrol_codes.c.id)).all()
        return [
            {
                "id": r.id,
                "created_by": r.created_by,
                "created_at": r.created_at,
                "expires_at": r.expires_at,
                "used_at": r.used_at,
                "used_by": r.used_by,
                "revoked": bool(r.revoked),
            }
            for r in rows
        ]


# Built once, values as parameters: building literal values costs more than the statement.
# On the cursor: the row is written in the transaction of a change (a submission's, too).
_AUDIT_ROW = Prepared(
    audit.insert()
    .values(
        {
            name: sa.bindparam(name, type_=audit.c[name].type)
            for name in ("at", "actor", "role", "action", "object", "status")
        }
    )
    .returning(audit.c.id)
)
_AUDIT_SETTLE = Prepared(
    audit.update()
    .where(audit.c.id == sa.bindparam("row_id"))
    .values(object=sa.bindparam("v_obj"), status=sa.bindparam("v_status"))
)


class Audit(Repository):
    def record(
        self, *, at: float, actor: str, role: str, action: str, obj: str, status: int
    ) -> int:
        """A new row, in the caller's open transaction if there is one; its id."""
        row = {
            "at": at,
            "actor": actor[:200],
            "role": role[:20],
            "action": action[:200],
            "object": obj[:300],
            "status": status,
        }
        with self.db.begin() as conn:
            return int(_AUDIT_ROW.first(conn, row).id)

    def settle(self, answers: Sequence[tuple[int, str, int]]) -> None:
        """The answers of rows written with their actions, `(row_id, obj, status)` each: their
        status and what they created, in one transaction."""
        if not answers:
            return
        values = [{"row_id": r, "v_obj": obj[:300], "v_status": st} for r, obj, st in answers]
        with self.db.begin() as conn:
            _AUDIT_SETTLE.run(conn, values)

    def query(
        self,
        *,
        actor: str | None = None,
        since: float | None = None,
        contains: str | None = None,
        limit: int = 100,
        before_id: int | None = None,
    ) -> list[AuditEntry]:
        """Newest first; `before_id` pages back."""
        q = sa.select(audit).order_by(audit.c.id.desc()).limit(limit)
        if actor:
            q = q.where(audit.c.actor == actor)
        if since is not None:
            q = q.where(audit.c.at >= since)
        if contains:
            q = q.where(
                sa.or_(audit.c.object.contains(contains), audit.c.action.contains(contains))
            )
        if before_id is not None:
            q = q.where(audit.c.id < before_id)
        with self.db.connect() as conn:
            return [
                AuditEntry(r.id, r.at, r.actor, r.role, r.action, r.object, r.status)
                for r in conn.execute(q)
            ]
