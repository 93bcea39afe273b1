"""Policy changes are admin changes: an `admin.changed` leaf in every tenant's audit log.

The first process to serve a policy revision (at start-up or on reload) records it in
`policy_revision` and, in the same transaction, appends one leaf per tenant (entity `policy`,
entity id = the revision, change digest = the revision's SHA-256). Later processes serving the
same revision find it recorded and append nothing, so a reload across many workers is one leaf
per tenant. A tenant created later starts its log with a leaf for the revision served last
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
    """Record that `revision` is served; returns the number of leaves appended (0 if known)."""
    if not revision.startswith(_PREFIX):
        raise ValueError("a policy revision is sha256:<hex>")
    async with db.system() as conn:
        first: datetime | None = await conn.fetchval(Q.record_revision, revision, engine)
        if first is None:
            return 0
        tenants = [row["id"] for row in await conn.fetch(Q.tenants)]
        for tenant_id in tenants:
            await _append(conn, audit, tenant_id, revision, first)
        return len(tenants)


async def record_policy_for_new_tenant(
    conn: Conn, audit: AuditWriter, tenant_id: uuid.UUID
) -> bool:
    """In the transaction creating the tenant: a leaf for the revision served last, if any."""
    row = await conn.fetchrow(Q.latest_revision)
    if row is None:
        return False
    await _append(conn, audit, tenant_id, row["revision"], row["first_served_at"])
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
