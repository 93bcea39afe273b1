"""Group reads of the consent state: the ledger reads of concurrent single decisions, in one
statement per tenant.

A single decision reads its subject's state with `decision_subject_states`, a statement whose
fixed cost (a round trip, the tenant's catalogue, the current material versions of its notices)
is paid once per call however many subjects it reads. Under load many single decisions wait
for their reads at the same moment, so a `GroupReader` takes what is pending, reads it all in
one call per tenant (the union of the purposes asked about) and gives each request the rows of
its own subjects restricted to its own purposes: exactly what its own call would have read.
An idle reader reads at once; while a read is running the next one gathers.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING
from uuid import UUID

from consent.db.database import Conn, Database
from consent.db.grouped import Grouped

if TYPE_CHECKING:
    from consent.decisions.service import Catalogue, Ref, SubjectRow

    Loaded = tuple[Catalogue, list[SubjectRow]]
    Load = Callable[[Conn, UUID, Sequence[str], Sequence[Ref]], Awaitable[Loaded]]

__all__ = ["GroupReader", "ReadRequest"]


@dataclass(frozen=True, slots=True)
class ReadRequest:
    tenant_id: UUID
    purposes: tuple[str, ...]
    refs: Sequence[Ref]


class GroupReader(Grouped[ReadRequest, "Loaded"]):
    """`read(request)` returns what `DecisionService.load` returns for it, read together with
    the requests pending at the same time. `load` is `DecisionService.load` (passed in to keep
    one definition of the statement and its rows). A failed read raises its error in every
    request of the group (DB_UNAVAILABLE errors for an unreachable database)."""

    def __init__(
        self, db: Database, load: Load, *, concurrent_reads: int = 2, timeout: float = 10.0
    ) -> None:
        super().__init__(db, name="state_reads", concurrent=concurrent_reads, timeout=timeout)
        self._load = load
        self.reads = 0
        self.requests = 0

    async def read(self, request: ReadRequest) -> Loaded:
        """(Catalogue, rows) for `request`."""
        return await self.submit(request)

    async def process(
        self, conn: Conn, group: Sequence[tuple[ReadRequest, asyncio.Future[Loaded]]]
    ) -> None:
        by_tenant: dict[UUID, list[tuple[ReadRequest, asyncio.Future[Loaded]]]] = {}
        for item in group:
            by_tenant.setdefault(item[0].tenant_id, []).append(item)
        for tenant_id, items in by_tenant.items():
            union = sorted({p for request, _ in items for p in request.purposes})
            refs = [ref for request, _ in items for ref in request.refs]
            catalogue, rows = await self._load(conn, tenant_id, union, refs)
            self.reads += 1
            self.requests += len(items)
            start = 0
            for request, future in items:
                end = start + len(request.refs)
                if not future.done():
                    own = [row.only(request.purposes) for row in rows[start:end]]
                    future.set_result((catalogue.restrict(request.purposes), own))
                start = end
