"""Policy changes are admin changes: an `admin.changed` leaf in every tenant's audit log.

Whenever a process starts serving a policy revision (at start-up or on reload) that is not the
one in force, the change is recorded in `policy_in_force` (the revision's first sight also in
`policy_revision`) and, in the same transaction, one leaf per tenant is appended (entity
`policy`, entity id = the revision, change digest = the revision's SHA-256). Changes are
serialised by an advisory lock, so many workers reloading to the same revision record it once,
and going back to an earlier revision (a rollback) is a change like any other. A tenant
created later starts its log with a leaf for the revision in force
(`record_policy_for_new_tenant`), so every tenant's log names the policy its decisions use.
Every decision leaf also names the revision it was made under.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Final

from consent.audit.leaf import AdminChanged
from consent.audit.outbox import AuditWriter
from consent.db.database import Conn, Database
from consent.db.sql import SqlFile
from consent.ids import uuid7

__all__ = ["ACTOR", "record_policy_for_new_tenant", "record_policy_served"]

Q = SqlFile.beside(__file__, "policy_leaves.sql")
ACTOR: Final = "policy-runtime"
_PREFIX: Final = "sha256:"


async def record_policy_served(db: Database, audit: AuditWriter, revision: str, engine: str) -> int:
    """Record that `revision` is served; returns the number of leaves appended (0 if it was
    already the revision in force)."""
    if not revision.startswith(_PREFIX):
        raise ValueError("a policy revision is sha256:<hex>")
    async with db.system() as conn:
        await conn.execute(Q.lock_policy_changes)
        await conn.execute(Q.record_revision, revision, engine)
        since: datetime | None = await conn.fetchval(Q.change_in_force, revision)
        if since is None:
            return 0
        tenants = [row["id"] for row in await conn.fetch(Q.tenants)]
        for tenant_id in tenants:
            await _append(conn, audit, tenant_id, revision, since)
        return len(tenants)


async def record_policy_for_new_tenant(
    conn: Conn, audit: AuditWriter, tenant_id: uuid.UUID
) -> bool:
    """In the transaction creating the tenant: a leaf for the revision in force, if any."""
    row = await conn.fetchrow(Q.in_force)
    if row is None:
        return False
    await _append(conn, audit, tenant_id, row["revision"], row["since"])
    return True


async def _append(
    conn: Conn, audit: AuditWriter, tenant_id: uuid.UUID, revision: str, served_at: datetime
) -> None:
    log_id, origin = await audit.log(conn, tenant_id)
    leaf = AdminChanged(
        event_uuid=uuid7(),
        occurred_at=served_at,
        log=origin,
        actor_ref=ACTOR,
        entity="policy",
        entity_id=revision,
        operation="update",
        change_digest=revision.removeprefix(_PREFIX),
    )
    await audit.append(conn, tenant_id, log_id, leaf)
