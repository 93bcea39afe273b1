"""Policy changes are admin changes: an `admin.changed` leaf in every tenant's audit log.

The first process to serve a policy revision (at start-up or on reload) records it in
`policy_revision` and, in the same transaction, appends one leaf per tenant (entity `policy`,
entity id = the revision, change digest = the revision's SHA-256). Later processes serving the
same revision find it recorded and append nothing, so a reload across many workers is one leaf
per tenant. Every decision leaf also names the revision it was made under.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final

from consent.audit.leaf import AdminChanged
from consent.audit.outbox import AuditWriter
from consent.db.database import Database
from consent.db.sql import SqlFile
from consent.ids import uuid7

__all__ = ["ACTOR", "record_policy_served"]

Q = SqlFile.beside(__file__, "policy_leaves.sql")
ACTOR: Final = "policy-runtime"
_PREFIX: Final = "sha256:"


async def record_policy_served(db: Database, audit: AuditWriter, revision: str, engine: str) -> int:
    """Record that `revision` is served; returns the number of leaves appended (0 if known)."""
    if not revision.startswith(_PREFIX):
        raise ValueError("a policy revision is sha256:<hex>")
    digest = revision.removeprefix(_PREFIX)
    async with db.system() as conn:
        first: datetime | None = await conn.fetchval(Q.record_revision, revision, engine)
        if first is None:
            return 0
        tenants = [row["id"] for row in await conn.fetch(Q.tenants)]
        for tenant_id in tenants:
            log_id, origin = await audit.log(conn, tenant_id)
            leaf = AdminChanged(
                event_uuid=uuid7(),
                occurred_at=first,
                log=origin,
                actor_ref=ACTOR,
                entity="policy",
                entity_id=revision,
                operation="update",
                change_digest=digest,
            )
            await audit.append(conn, tenant_id, log_id, leaf)
        return len(tenants)
