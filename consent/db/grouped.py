"""Work that concurrent requests hand in and the database does in groups.

Group commit of the decision log and group reads of the consent state share one shape: many
requests each hand in a small piece of work and wait; one task takes everything pending and
does it as one group (one statement or one transaction for all of it), then answers each
request. Up to `concurrent` groups run at once, each on a connection the runner holds between
groups (no pool queue, no reset) and drops after any failure; while every slot is busy the next
group gathers. A held connection that no group used for `idle_release` seconds goes back to the
pool, so that a burst does not leave the other endpoints a smaller pool for good. With `linger`,
a group that would start while another runs waits that long first, so that it grows (not when
idle: an idle runner adds no latency).

A request whose group failed gets the failure (`failure(exc)`), never a result; one that
waits longer than `timeout` gets TimeoutError.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from typing import Any, Final, Generic, TypeVar

import asyncpg
import structlog

from consent.db.database import Conn, Database, DatabaseUnavailable

__all__ = ["DB_UNAVAILABLE", "Grouped"]

_log = structlog.get_logger(__name__)

# The database cannot be reached or is going away: the caller gets a 503, never an answer.
DB_UNAVAILABLE: Final = (
    OSError,
    TimeoutError,
    DatabaseUnavailable,
    asyncpg.InterfaceError,
    # The connection's protocol failed (a rollback over a connection lost mid-statement raises
    # "protocol is in the failed state"): the same to the caller as a lost connection.
    asyncpg.InternalClientError,
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.exceptions.InsufficientResourcesError,
)

T = TypeVar("T")
R = TypeVar("R")


def _expire(future: asyncio.Future[Any]) -> None:
    if not future.done():
        future.set_exception(TimeoutError())


class Grouped(Generic[T, R]):
    """Subclasses define `process` (do a group, set each future's result) and may define
    `weight` (how much an item counts towards `max_weight`, past which a group stops
    lingering), `failure` (what a request of a failed group gets) and `closed` (what a
    request gets once the runner stopped accepting)."""

    def __init__(
        self,
        db: Database,
        *,
        name: str,
        concurrent: int = 2,
        timeout: float = 10.0,
        linger: float = 0.0,
        max_weight: int = 20_000,
        idle_release: float = 1.0,
    ) -> None:
        self.db = db
        self.name = name
        self.timeout = timeout
        self.linger = linger
        self.max_weight = max_weight
        self.groups = 0
        self._pending: list[tuple[T, asyncio.Future[R]]] = []
        self._pending_weight = 0
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._slots = asyncio.Semaphore(concurrent)
        self._in_flight: set[asyncio.Task[None]] = set()
        # Connections held between groups, with when each was last used (most recent last).
        self._idle: list[tuple[Any, float]] = []
        self.idle_release = idle_release
        self._trim_timer: asyncio.TimerHandle | None = None
        self._releasing: set[asyncio.Task[None]] = set()

    # -- what subclasses define ----------------------------------------------------------------

    async def process(self, conn: Conn, group: Sequence[tuple[T, asyncio.Future[R]]]) -> None:
        raise NotImplementedError

    def weight(self, item: T) -> int:  # noqa: ARG002 - subclasses weigh
        return 1

    def failure(self, exc: Exception) -> Exception:
        return exc

    def closed(self) -> Exception:
        return ConnectionError(f"{self.name}: not accepting work (the service is stopping)")

    # -- running -------------------------------------------------------------------------------

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name=self.name)

    async def submit(self, item: T) -> R:
        """The result `process` gives `item`; raises `failure(...)` of a failed group,
        `closed()`, or TimeoutError after `timeout` seconds."""
        if self._closing or self._task is None or self._task.done():
            raise self.closed()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[R] = loop.create_future()
        self._pending.append((item, future))
        self._pending_weight += self.weight(item)
        self._wake.set()
        # The request's deadline is one timer on its own future (cheaper than a timeout scope
        # and a shield per request, ~9 % of a worker's time at 2,000 decisions/s). A request
        # cancelled meanwhile cancels only its own future; groups skip futures already done.
        expiry = loop.call_later(self.timeout, _expire, future)
        try:
            return await future
        finally:
            expiry.cancel()

    async def _run(self) -> None:
        while True:
            if not self._pending:
                if self._closing:
                    break
                self._wake.clear()
                await self._wake.wait()
                continue
            if (
                self.linger > 0
                and self._in_flight
                and self._pending_weight < self.max_weight
                and not self._closing
            ):
                await asyncio.sleep(self.linger)
            await self._slots.acquire()  # more gathers while every slot is busy
            taken, self._pending, self._pending_weight = self._pending, [], 0
            task = asyncio.get_running_loop().create_task(self._group(taken))
            self._in_flight.add(task)
            task.add_done_callback(self._done)
        await asyncio.gather(*self._in_flight, return_exceptions=True)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        self._slots.release()

    async def _group(self, taken: list[tuple[T, asyncio.Future[R]]]) -> None:
        conn: Any = None
        failed = True
        try:
            async with asyncio.timeout(self.timeout):
                conn = await self._connection()
                await self.process(conn, taken)
            failed = False
            self.groups += 1
        except DB_UNAVAILABLE as exc:
            _log.warning(f"{self.name}.failed", error=type(exc).__name__, items=len(taken))
            self._fail(taken, exc)
        except Exception as exc:  # noqa: BLE001 - a bug must not leave requests waiting
            _log.exception(f"{self.name}.crashed", items=len(taken))
            self._fail(taken, exc)
        finally:
            if failed:  # cancelled, or failed above (then every future is done already)
                self._fail(taken, ConnectionError(f"{self.name}: cancelled"))
            if conn is not None:
                if failed or conn.is_closed():
                    await self._release(conn)
                else:
                    self._keep(conn)

    def _fail(self, taken: list[tuple[T, asyncio.Future[R]]], exc: Exception) -> None:
        for _, future in taken:
            if not future.done():
                failure = self.failure(exc)
                if failure is not exc:
                    failure.__cause__ = exc
                future.set_exception(failure)

    @property
    def held(self) -> int:
        """Connections this runner holds between groups (not counting those in use)."""
        return len(self._idle)

    async def _connection(self) -> Any:
        """The runner's most recently used idle connection that is still open (so that the
        others age out), or one from the pool."""
        while self._idle:
            conn, _ = self._idle.pop()
            if not conn.is_closed():
                return conn
            await self._release(conn)
        return await self.db.pool.acquire()

    def _keep(self, conn: Any) -> None:
        loop = asyncio.get_running_loop()
        self._idle.append((conn, loop.time()))
        if self._trim_timer is None:
            self._trim_timer = loop.call_later(self.idle_release, self._trim)

    def _trim(self) -> None:
        """Give the pool back the connections idle for `idle_release` seconds; look again
        when the next one is due."""
        loop = asyncio.get_running_loop()
        self._trim_timer = None
        due = loop.time() - self.idle_release
        expired = [conn for conn, used in self._idle if used <= due]
        self._idle = [(conn, used) for conn, used in self._idle if used > due]
        for conn in expired:
            task = loop.create_task(self._release(conn))
            self._releasing.add(task)
            task.add_done_callback(self._releasing.discard)
        if self._idle:
            wait = self._idle[0][1] + self.idle_release - loop.time()
            self._trim_timer = loop.call_later(max(wait, 0.0), self._trim)

    async def _release(self, conn: Any) -> None:
        with contextlib.suppress(*DB_UNAVAILABLE):
            await self.db.pool.release(conn, timeout=self.timeout)

    async def aclose(self) -> None:
        """Finish the pending work (within `timeout`), refuse new work, give back the
        connections."""
        self._closing = True
        self._wake.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                try:
                    async with asyncio.timeout(self.timeout):
                        await self._task
                except TimeoutError:
                    self._task.cancel()
                    await self._task
        for _, future in self._pending:
            if not future.done():
                future.set_exception(self.closed())
        self._pending.clear()
        if self._trim_timer is not None:
            self._trim_timer.cancel()
            self._trim_timer = None
        while self._idle:
            await self._release(self._idle.pop()[0])
        if self._releasing:
            await asyncio.gather(*self._releasing, return_exceptions=True)
