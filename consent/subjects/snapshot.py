"""One read snapshot for a whole subject export.

A subject's export reads many lists, a page at a time, through the services that answer the
subject endpoints (state, histories, activity). Each of those opens its own transaction, so
read one after the other they could each see a different moment: a preference recorded between
two reads would be in the history but not in the current state of the same document. An export
therefore reads everything in one REPEATABLE READ transaction on one held connection
(`snapshot`), and hands the services a `HeldDatabase` whose every transaction is that one.

The snapshot cannot see an erasure that commits after it began. Before each page the export
asks `still_there`, which tries to lock the subject's row inside a savepoint that it rolls
back at once (so an erasure is never kept waiting for the download): under REPEATABLE READ,
locking a row that another transaction changed since the snapshot began fails with a
serialization error, and so the subject erased (or merged into another subject by a link)
while its document is written ends the document short, as before, instead of completing it
from the snapshot.

The connection stays out of the pool while the client downloads the document. A client that
stops reading cannot hold it for ever: the transaction sets `idle_in_transaction_session_timeout`,
so PostgreSQL ends a session idle between two pages longer than `IDLE_LIMIT` and the document
ends short.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, Final, cast
from uuid import UUID

import asyncpg

from consent.db.database import Conn, Database, IsolationLevel
from consent.db.sql import SqlFile
from consent.errors import NotFound
from consent.locales import Localized

if TYPE_CHECKING:
    from asyncpg.pool import Pool

__all__ = ["IDLE_LIMIT", "HeldDatabase", "snapshot", "still_there"]

Q = SqlFile.beside(__file__)
IDLE_LIMIT: Final = "120s"
"""How long the export's transaction may wait for the client between two pages."""


class _HeldPool:
    """What the services ask of `Database.pool`: `acquire()`, here the held connection."""

    def __init__(self, conn: Conn) -> None:
        self._conn = conn

    @asynccontextmanager
    async def acquire(self, *_: Any, **__: Any) -> AsyncIterator[Conn]:
        yield self._conn


class HeldDatabase(Database):
    """A `Database` whose every tenant transaction (and pool connection) is the snapshot held
    on one connection for one tenant: the services read through it as they read through the
    service's database, and all see the same moment."""

    def __init__(self, conn: Conn, tenant_id: UUID) -> None:
        super().__init__(cast("Pool", _HeldPool(conn)))
        self.conn = conn
        self.tenant_id = tenant_id

    def _held(self, tenant_id: UUID | str) -> Conn:
        if UUID(str(tenant_id)) != self.tenant_id:  # never another tenant's reads in it
            raise RuntimeError("a snapshot of one tenant asked for another tenant's data")
        return self.conn

    @asynccontextmanager
    async def tenant(
        self,
        tenant_id: UUID | str,
        isolation: IsolationLevel | None = None,  # noqa: ARG002 - the snapshot's level holds
    ) -> AsyncIterator[Conn]:
        yield self._held(tenant_id)

    @asynccontextmanager
    async def tenant_hot(self, tenant_id: UUID) -> AsyncIterator[Conn]:
        yield self._held(tenant_id)

    @asynccontextmanager
    async def system(self) -> AsyncIterator[Conn]:
        raise RuntimeError("a tenant's snapshot has no owner's connection")
        yield self.conn  # pragma: no cover - makes this an async generator

    async def close(self) -> None:
        """The held connection goes back to the pool when `snapshot` ends, not here."""


@asynccontextmanager
async def snapshot(db: Database, tenant_id: UUID) -> AsyncIterator[HeldDatabase]:
    """A REPEATABLE READ transaction under the tenant's row-level security, on a connection
    held until the block ends, as a `HeldDatabase`. It only reads, but is not READ ONLY:
    `still_there` takes (and at once gives up) a row lock."""
    async with db.tenant(tenant_id, isolation="repeatable_read") as conn:
        await conn.execute(Q.idle_limit, IDLE_LIMIT)
        yield HeldDatabase(conn, tenant_id)


async def still_there(held: HeldDatabase, subject_id: UUID) -> None:
    """NotFound when the subject has been erased, or merged into another one by a link, since
    the snapshot began (or is being so now: this waits for that transaction's end). Holds no
    lock afterwards."""
    savepoint = held.conn.transaction()
    await savepoint.start()
    try:
        found = await held.conn.fetchval(Q.lock_unchanged_subject, subject_id)
    except asyncpg.SerializationError:
        found = None
    finally:
        await savepoint.rollback()
    if found is None:
        raise NotFound(Localized("no-such-subject"))
