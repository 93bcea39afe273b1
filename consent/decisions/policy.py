"""The policy the service decides with: opening it, reloading it without a restart.

`consent policy reload` checks the bundle on disk (it compiles, its Rego tests pass, an empty input
is denied, and the decision cache's normalisation keeps the decision of every policy case) and
then sends a PostgreSQL notification on `consent_policy`. Every worker of every replica listens,
loads the bundle again, checks it again and swaps engines only if all of that succeeds; a broken
bundle is refused and the previous one keeps serving. Each worker answers on
`consent_policy_status` with what it serves now. A listener that lost its connection reloads when
it reconnects, so a notification sent meanwhile is not missed for long.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Literal
from urllib.parse import quote

import asyncpg
import msgspec
import structlog

from consent.config import Settings
from consent.db.database import Database, EmbeddedPostgres
from consent.db.grouped import DB_UNAVAILABLE
from consent.db.listening import Listener
from consent.decisions.actions import (
    SUMMARY_SHOWN,
    UndefinedPurposes,
    action_problems,
    undefined_purpose_lines,
    undefined_purposes,
)
from consent.decisions.engine import (
    CachedPolicyEngine,
    ManagedPolicyEngine,
    PolicyBundle,
    PolicyLoadError,
    check_bundle,
    default_policy_root,
    open_engine,
)
from consent.decisions.reasons import check_reason_texts
from consent.decisions.schemas import PolicyStatus
from consent.decisions.shape import check_normalisation

__all__ = [
    "RELOAD_CHANNEL",
    "STATUS_CHANNEL",
    "NoRunningService",
    "PolicyRuntime",
    "ReloadAck",
    "check_actions",
    "check_policy",
    "check_serving",
    "defined_purpose_keys",
    "describe_ack",
    "embedded_service_dsn",
    "load_bundle",
    "policy_dir_problem",
    "policy_root",
    "reload_everywhere",
    "request_reload",
    "warn_undefined_purposes",
]

RELOAD_CHANNEL: Final = "consent_policy"
STATUS_CHANNEL: Final = "consent_policy_status"
_log = structlog.get_logger(__name__)


class ReloadAck(msgspec.Struct, frozen=True, kw_only=True):
    """A worker's answer to a reload request."""

    pid: int
    ok: bool
    revision: str
    error: str | None = None
    # The directory the process loads its policy from (its CONSENT_POLICY_DIR); absent in the
    # answers of older versions.
    root: str | None = None


def policy_root(settings: Settings) -> Path:
    return settings.policy_dir or default_policy_root()


def policy_dir_problem(root: Path) -> str | None:
    """Why `root` is no policy directory at all (a misspelt --root or CONSENT_POLICY_DIR: a
    usage error, not a policy that is wrong), or None."""
    if not root.is_dir():
        return f"{root} is not a directory" if root.exists() else f"{root} does not exist"
    if next(root.rglob("*.rego"), None) is None:
        return f"no policies (*.rego files) under {root}"
    return None


def load_bundle(root: Path) -> PolicyBundle:
    """`PolicyBundle.load`, with a Rego file that is not UTF-8 refused by name (raises
    PolicyLoadError) instead of the codec's message about some byte of some file."""
    try:
        return PolicyBundle.load(root)
    except UnicodeDecodeError as exc:
        names = []
        for path in sorted(root.rglob("*.rego")):
            try:
                path.read_bytes().decode()
            except UnicodeDecodeError as bad:
                names.append(f"{path.relative_to(root).as_posix()}: not UTF-8 ({bad.reason})")
        raise PolicyLoadError("; ".join(names) or str(exc)) from exc


def check_actions(bundle: PolicyBundle) -> None:
    """Raise PolicyLoadError naming every `action_problems` of the bundle."""
    problems = action_problems(bundle)
    if problems:
        raise PolicyLoadError("; ".join(problems))


def check_serving(bundle: PolicyBundle) -> None:
    """What a bundle must pass beyond compiling and its Rego tests (which the engines check)
    before this service serves it: well-formed actions, words for every reason code, and
    decisions the cache keeps exact. Raises PolicyLoadError."""
    check_actions(bundle)
    check_reason_texts(bundle)
    check_normalisation(bundle)


def check_policy(root: Path) -> PolicyBundle:
    """Load and check a bundle as a reload would (raises PolicyLoadError)."""
    bundle = load_bundle(root)
    check_actions(bundle)  # before the Rego tests: their failure would not name the action
    check_bundle(bundle)
    check_serving(bundle)
    return bundle


class PolicyRuntime:
    """The serving engine (behind the decision cache), its reloads and the reload listener."""

    def __init__(
        self, engine: ManagedPolicyEngine, *, root: Path, kind: Literal["in-process", "opa-server"]
    ) -> None:
        self.engine = engine
        self.root = root
        self.kind: Literal["in-process", "opa-server"] = kind
        self.loaded_at = datetime.now(UTC)
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[Any]] = set()
        # Called with each revision this process starts serving after a reload (the audit
        # log's admin.changed leaves); a failure there is logged, the new policy serves anyway.
        self.on_served: Callable[[str], Awaitable[object]] | None = None

    @classmethod
    async def open(cls, settings: Settings) -> PolicyRuntime:
        """Load, check and serve the bundle of `settings` (raises PolicyLoadError if refused)."""
        root = policy_root(settings)
        bundle = await asyncio.to_thread(load_bundle, root)
        await asyncio.to_thread(check_serving, bundle)
        engine = await open_engine(
            root,
            opa_url=settings.opa_url,
            pool_size=settings.opa_pool_size,
            timeout=settings.opa_timeout_ms / 1000,
            cache_size=settings.decision_cache_size,
            bundle=bundle,
        )
        return cls(engine, root=root, kind="opa-server" if settings.opa_url else "in-process")

    @property
    def revision(self) -> str:
        return self.engine.revision

    def status(self) -> PolicyStatus:
        cache = self.engine if isinstance(self.engine, CachedPolicyEngine) else None
        return PolicyStatus(
            revision=self.revision,
            engine=self.kind,
            loaded_at=self.loaded_at,
            cache_entries=len(cache) if cache else 0,
            cache_hits=cache.hits if cache else 0,
            cache_misses=cache.misses if cache else 0,
        )

    async def reload(self) -> str:
        """Serve the bundle now on disk if it passes every check; raises PolicyLoadError (the
        current bundle keeps serving). Unchanged content is not reloaded."""
        async with self._lock:
            bundle = await asyncio.to_thread(load_bundle, self.root)
            if bundle.revision == self.engine.revision:
                return bundle.revision
            await asyncio.to_thread(check_serving, bundle)
            revision = await self.engine.reload(bundle)
            self.loaded_at = datetime.now(UTC)
            _log.info("policy.reloaded", revision=revision)
            return revision

    # -- the reload listener ---------------------------------------------------------------------

    def listen(self, listener: Listener) -> None:
        """Follow reload requests (`consent policy reload`) on `listener`, before it starts; a
        listener back after a lost connection reloads (a request may have been sent while it
        was not listening)."""
        db = listener.db

        def reload(_payload: str) -> None:
            self._spawn(self._reload_and_answer(db))

        def listening(again: bool) -> None:
            if again:
                reload("")

        listener.on(RELOAD_CHANNEL, reload, listening)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _reload_and_answer(self, db: Database) -> None:
        try:
            before = self.revision
            revision = await self.reload()
            if revision != before and self.on_served is not None:
                try:
                    await self.on_served(revision)
                except DB_UNAVAILABLE as exc:
                    _log.warning("policy.record_failed", error=type(exc).__name__)
            ok, served, error = True, revision, None
        except PolicyLoadError as exc:
            _log.warning("policy.reload_refused", error=str(exc)[:2000])
            ok, served, error = False, self.revision, str(exc)[:4000]
        except (OSError, ValueError) as exc:
            _log.warning("policy.reload_failed", error=str(exc)[:2000])
            ok, served, error = False, self.revision, str(exc)
        ack = ReloadAck(pid=os.getpid(), ok=ok, revision=served, error=error, root=str(self.root))
        try:
            async with db.pool.acquire() as conn:
                await conn.execute(
                    "select pg_notify($1, $2)",
                    STATUS_CHANNEL,
                    msgspec.json.encode(ack).decode(),
                )
        except DB_UNAVAILABLE as exc:
            _log.warning("policy.reload_ack_failed", error=type(exc).__name__)

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.engine.aclose()


_ACK_QUIET_SECONDS: Final = 1.5


def describe_ack(ack: ReloadAck, revision: str, root: Path) -> str:
    """One line for `consent policy reload`: what process `ack.pid` serves after a request to
    reload the bundle of `revision`, checked at `root`, and why it differs if it does."""
    if not ack.ok:
        return f"process {ack.pid}: refused ({ack.error}); still serving {ack.revision}"
    if ack.revision == revision:
        return f"process {ack.pid}: serving {ack.revision}"
    if ack.root is not None and Path(ack.root).resolve() != root.resolve():
        why = (
            f"it loads its policy from {ack.root} (its CONSENT_POLICY_DIR), not from {root}: "
            "reload with --root pointing there, or start it with this directory"
        )
    else:
        why = "the bundle changed again after this command checked it: run the reload again"
    return f"process {ack.pid}: serving {ack.revision}, not {revision}: {why}"


async def defined_purpose_keys(db: Database) -> frozenset[str]:
    """Every purpose key some tenant defines (as the schema owner: across tenants)."""
    async with db.system() as conn:
        rows = await conn.fetch("select distinct key from purpose")
    return frozenset(row["key"] for row in rows)


async def warn_undefined_purposes(
    db: Database, bundle: PolicyBundle, warn: Callable[[str], object] | None = None
) -> list[UndefinedPurposes]:
    """Tell of the actions of `bundle` that need a purpose no tenant defines (a misspelt key in
    the policy's data denies every decision on it): a line to `warn`, else a
    `policy.purpose_undefined` warning in the log, for each action with a likely typo (the
    "did you mean" case); one line, or one `policy.purposes_undefined_summary` warning, for
    all the others (purposes not created yet, GET /v1/policy/actions lists them). Never
    refuses the bundle (a purpose may be created after the policy); a database that cannot
    answer skips the check. One query, at start and reload, never on a decision. Returns
    every such action."""
    try:
        defined = await defined_purpose_keys(db)
    except (*DB_UNAVAILABLE, asyncpg.PostgresError) as exc:
        _log.info("policy.purposes_unchecked", error=type(exc).__name__)
        return []
    found = undefined_purposes(bundle, defined)
    if warn is not None:
        for line in undefined_purpose_lines(found):
            warn(line)
        return found
    rest = [item for item in found if not item.did_you_mean]
    for item in found:
        if item.did_you_mean:
            _log.warning(
                "policy.purpose_undefined",
                action=item.action,
                purposes=list(item.purposes),
                did_you_mean=item.did_you_mean,
                revision=bundle.revision,
            )
    if rest:
        _log.warning(
            "policy.purposes_undefined_summary",
            count=len(rest),
            actions=sorted(item.action for item in rest)[:SUMMARY_SHOWN],
            revision=bundle.revision,
        )
    return found


# The database `consent serve` creates in its embedded server (`EmbeddedPostgres.start`).
_EMBEDDED_DATABASE: Final = "consent"


class NoRunningService(Exception):
    """No CONSENT_DATABASE_URL, and no embedded PostgreSQL runs for the data directory: no
    `consent serve` of this data directory runs on this machine (the bundle passed its
    checks; nothing was asked to reload it)."""

    def __init__(self, revision: str, pgdata: Path) -> None:
        super().__init__(f"no embedded PostgreSQL runs in {pgdata}")
        self.revision = revision
        self.pgdata = pgdata


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process (the embedded server's own user)
        return True
    return True


def embedded_service_dsn(data_dir: Path) -> str | None:
    """A DSN for the database of the embedded PostgreSQL that `consent serve` runs in
    `data_dir`, read from the server's `postmaster.pid`; None when that server is not running
    (no such file, its postmaster gone, or its socket gone). Never starts, joins or creates
    anything: the server stays the service's, and stops when the service stops. A file this
    process may not read raises PermissionError (a service may run: say so, not "none")."""
    pgdata = EmbeddedPostgres(data_dir).pgdata
    try:
        # PostgreSQL's postmaster.pid: pid, data directory, start time, port, socket directory
        lines = (pgdata / "postmaster.pid").read_text().splitlines()
        pid, port, socket_dir = int(lines[0]), int(lines[3]), lines[4].strip()
    except (FileNotFoundError, NotADirectoryError, ValueError, IndexError):
        return None
    if pid <= 0 or not socket_dir or not _pid_alive(pid):
        return None
    if not (Path(socket_dir) / f".s.PGSQL.{port}").exists():  # a crashed server's leftovers
        return None
    return f"postgresql://postgres@/{_EMBEDDED_DATABASE}?host={quote(socket_dir)}&port={port}"


async def _service_database(settings: Settings, revision: str) -> Database:
    """A connection pool to the database the running service uses: CONSENT_DATABASE_URL, else
    the embedded server a running `consent serve` holds for the data directory (raises
    NoRunningService when none runs; it is never started here)."""
    if settings.database_url is not None:
        return await Database.from_settings(settings)
    dsn = embedded_service_dsn(settings.data_dir)
    if dsn is None:
        raise NoRunningService(revision, EmbeddedPostgres(settings.data_dir).pgdata)
    return await Database.connect(dsn, min_size=1, max_size=2)


async def reload_everywhere(
    settings: Settings,
    root: Path | None = None,
    *,
    wait: float = 3.0,
    warn: Callable[[str], object] | None = None,
) -> tuple[PolicyBundle, list[ReloadAck]]:
    """`request_reload` from outside the service (`consent policy reload`, SIGHUP to `consent
    serve`), on a database connection opened for it and closed after: CONSENT_DATABASE_URL,
    else the embedded PostgreSQL of a `consent serve` running for the same data directory
    (NoRunningService when there is none: an embedded server is never started for this). The
    bundle is checked first: a refused one needs no database."""
    root = root or policy_root(settings)
    bundle = await asyncio.to_thread(check_policy, root)
    db = await _service_database(settings, bundle.revision)
    try:
        return await request_reload(db, root, wait=wait, checked=bundle, warn=warn)
    finally:
        await db.close()


async def request_reload(
    db: Database,
    root: Path,
    *,
    wait: float = 3.0,
    checked: PolicyBundle | None = None,
    warn: Callable[[str], object] | None = None,
) -> tuple[PolicyBundle, list[ReloadAck]]:
    """Check the bundle at `root` (raises PolicyLoadError; `checked`: already checked), warn
    of actions needing purposes no tenant defines (`warn_undefined_purposes`), ask every
    running worker to reload and collect their answers for up to `wait` seconds, or until
    none came for `_ACK_QUIET_SECONDS` (workers compile the bundle at their own pace: on a busy
    machine one answers a second after another)."""
    bundle = checked if checked is not None else await asyncio.to_thread(check_policy, root)
    await warn_undefined_purposes(db, bundle, warn)
    acks: list[ReloadAck] = []
    last = asyncio.Event()

    def on_ack(_conn: object, _pid: int, _channel: str, payload: object) -> None:
        with contextlib.suppress(msgspec.DecodeError, msgspec.ValidationError):
            acks.append(msgspec.json.decode(str(payload), type=ReloadAck))
            last.set()

    async with db.pool.acquire() as conn:
        await conn.add_listener(STATUS_CHANNEL, on_ack)
        try:
            await conn.execute("select pg_notify($1, $2)", RELOAD_CHANNEL, bundle.revision)
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline:
                last.clear()
                remaining = deadline - time.monotonic()
                timeout = remaining if not acks else min(_ACK_QUIET_SECONDS, remaining)
                try:
                    async with asyncio.timeout(max(0.0, timeout)):
                        await last.wait()
                except TimeoutError:
                    if acks:
                        break
        finally:
            await conn.remove_listener(STATUS_CHANNEL, on_ack)
    return bundle, acks
