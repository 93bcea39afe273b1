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
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final
from uuid import UUID

import structlog

from consent.db.database import Conn, Database
from consent.decisions.logwriter import DB_UNAVAILABLE

if TYPE_CHECKING:
    from consent.decisions.service import Catalogue, Ref, SubjectRow

    Loaded = tuple[Catalogue, list[SubjectRow]]
    Load = Callable[[Conn, UUID, Sequence[str], Sequence[Ref]], Awaitable[Loaded]]

__all__ = ["GroupReader", "ReadRequest"]

_log = structlog.get_logger(__name__)
_MAX_REFS: Final = 2_000


@dataclass(frozen=True, slots=True)
class ReadRequest:
    tenant_id: UUID
    purposes: tuple[str, ...]
    refs: Sequence[Ref]


class GroupReader:
    """`read(request)` returns what `DecisionService.load` returns for it, read together with
    the requests pending at the same time. `load` is `DecisionService.load` (passed in to keep
    one definition of the statement and its rows)."""

    def __init__(
        self,
        db: Database,
        load: Load,
        *,
        concurrent_reads: int = 2,
        timeout: float = 10.0,
    ) -> None:
        self.db = db
        self._load = load
        self.timeout = timeout
        self.reads = 0
        self.requests = 0
        self._pending: list[tuple[ReadRequest, asyncio.Future[Loaded]]] = []
        self._slots = asyncio.Semaphore(concurrent_reads)
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._in_flight: set[asyncio.Task[None]] = set()
        self._idle: list[Any] = []
        self._closing = False

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="state-reads")

    async def read(self, request: ReadRequest) -> Loaded:
        """(Catalogue, rows) for `request`; raises what the read raised (DB_UNAVAILABLE errors
        for an unreachable database), or TimeoutError."""
        if self._closing or self._task is None or self._task.done():
            raise ConnectionError("the state reader is not running")
        future: asyncio.Future[Loaded] = asyncio.get_running_loop().create_future()
        self._pending.append((request, future))
        self._wake.set()
        async with asyncio.timeout(self.timeout):
            return await asyncio.shield(future)

    async def _run(self) -> None:
        while True:
            if not self._pending:
                if self._closing:
                    break
                self._wake.clear()
                await self._wake.wait()
                continue
            await self._slots.acquire()  # more requests gather while every slot reads
            taken = self._pending[:_MAX_REFS]
            del self._pending[:_MAX_REFS]
            task = asyncio.get_running_loop().create_task(self._read(taken))
            self._in_flight.add(task)
            task.add_done_callback(self._done)
        await asyncio.gather(*self._in_flight, return_exceptions=True)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        self._slots.release()

    async def _read(self, taken: list[tuple[ReadRequest, asyncio.Future[Loaded]]]) -> None:
        by_tenant: dict[UUID, list[tuple[ReadRequest, asyncio.Future[Loaded]]]] = {}
        for item in taken:
            by_tenant.setdefault(item[0].tenant_id, []).append(item)
        conn: Any = None
        failed = True
        try:
            async with asyncio.timeout(self.timeout):
                conn = await self._connection()
                for tenant_id, items in by_tenant.items():
                    await self._read_tenant(conn, tenant_id, items)
            failed = False
        except DB_UNAVAILABLE as exc:
            self._fail(taken, exc)
        except Exception as exc:  # noqa: BLE001 - a bug must not leave requests waiting
            _log.exception("state_reads.crashed", requests=len(taken))
            self._fail(taken, exc)
        finally:
            if failed:
                self._fail(taken, ConnectionError("the state read was cancelled"))
            if conn is not None:
                if failed or conn.is_closed():
                    await self._release(conn)
                else:
                    self._idle.append(conn)

    async def _connection(self) -> Any:
        """An idle connection of the reader's that is still open, or one from the pool."""
        while self._idle:
            conn = self._idle.pop()
            if not conn.is_closed():
                return conn
            await self._release(conn)
        return await self.db.pool.acquire()

    @staticmethod
    def _fail(taken: list[tuple[ReadRequest, asyncio.Future[Loaded]]], exc: Exception) -> None:
        for _, future in taken:
            if not future.done():
                future.set_exception(exc)

    async def _read_tenant(
        self,
        conn: Conn,
        tenant_id: UUID,
        items: list[tuple[ReadRequest, asyncio.Future[Loaded]]],
    ) -> None:
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

    async def _release(self, conn: Any) -> None:
        with contextlib.suppress(*DB_UNAVAILABLE):
            await self.db.pool.release(conn, timeout=self.timeout)

    async def aclose(self) -> None:
        """Finish the reads under way, refuse new ones, give back the connections."""
        self._closing = True
        self._wake.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                async with asyncio.timeout(self.timeout):
                    await self._task
        for _, future in self._pending:
            if not future.done():
                future.set_exception(ConnectionError("the service is shutting down"))
        self._pending.clear()
        while self._idle:
            await self._release(self._idle.pop())
