"""Forward-only SQL migrations: `migrations/NNNN_name.sql`, applied in order, once each.

Each file runs in its own transaction and is recorded with its SHA-256 in `schema_migrations`.
A session-level advisory lock makes concurrent migrators (two replicas starting together) wait
for each other. A file edited after it was applied, or an applied file that disappeared, stops
the run before anything is applied; a file that fails (a privilege the database user lacks)
stops it with the file's name and PostgreSQL's reason, that file rolled back.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import asyncpg

from consent.db.database import APP_ROLE, Conn, Database

__all__ = [
    "EQUIVALENT_CHECKSUMS",
    "Migration",
    "MigrationError",
    "app_role_problem",
    "apply_migrations",
    "default_migrations_dir",
    "discover",
    "migrations_current",
    "pending_migrations",
]

LOCK_KEY: Final = 0x636F6E73656E74  # "consent"
_FILE: Final = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_CREATE_TABLE: Final = """
create table if not exists schema_migrations (
    version integer primary key,
    name text not null,
    sha256 text not null,
    applied_at timestamptz not null default now()
)"""


# A migration file rewritten for databases that could not apply it, where the ones that did are
# left as they are: {version: {SHA-256 of the file now: SHA-256 of the file they applied}}.
# 0001: a database owner without CREATEROLE could not apply it (its `create role consent_app`
# failed even when the DBA had created the role and granted it).
EQUIVALENT_CHECKSUMS: Final[dict[int, dict[str, str]]] = {
    1: {
        "4b88fae0c9387d248fbd1e8e8af0f5fbc976a35cb74c81924d999f943771a901": (
            "000b11308978c7c3c9aa423f1c185fa60fc567f0bb22036802108d26dd095c79"
        ),
    },
}


class MigrationError(Exception):
    """The migrations on disk and in the database disagree; nothing was applied."""


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str
    sha256: str


def default_migrations_dir() -> Path:
    """`migrations/` of a source checkout, else the copy bundled into the wheel."""
    package = Path(__file__).resolve().parent.parent
    checkout = package.parent / "migrations"
    return checkout if checkout.is_dir() else package / "_bundled" / "migrations"


def discover(directory: Path) -> list[Migration]:
    found: list[Migration] = []
    for path in sorted(directory.glob("*.sql")):
        match = _FILE.match(path.name)
        if match is None:
            raise MigrationError(f"{path.name}: migration files are named NNNN_name.sql")
        data = path.read_bytes()
        found.append(
            Migration(
                version=int(match.group(1)),
                name=match.group(2),
                sql=data.decode("utf-8"),
                sha256=hashlib.sha256(data).hexdigest(),
            )
        )
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise MigrationError("two migration files share a version number")
    return found


async def _applied(conn: Conn) -> dict[int, str]:
    exists = await conn.fetchval("select to_regclass('schema_migrations') is not null")
    if not exists:
        return {}
    rows = await conn.fetch("select version, sha256 from schema_migrations")
    return {r["version"]: r["sha256"] for r in rows}


def _same(m: Migration, applied_sha: str, equivalent: dict[int, dict[str, str]]) -> bool:
    return applied_sha == m.sha256 or equivalent.get(m.version, {}).get(m.sha256) == applied_sha


def _plan(
    migrations: list[Migration],
    applied: dict[int, str],
    equivalent: dict[int, dict[str, str]] = EQUIVALENT_CHECKSUMS,
) -> list[Migration]:
    by_version = {m.version: m for m in migrations}
    problems = [
        f"{m.version:04d}_{m.name}.sql was edited after it was applied"
        for m in migrations
        if m.version in applied and not _same(m, applied[m.version], equivalent)
    ]
    problems += [
        f"migration {v:04d} was applied but its file is missing"
        for v in sorted(applied)
        if v not in by_version
    ]
    if problems:
        raise MigrationError("; ".join(problems))
    return [m for m in migrations if m.version not in applied]


async def pending_migrations(
    conn: Conn,
    migrations: list[Migration],
    equivalent: dict[int, dict[str, str]] = EQUIVALENT_CHECKSUMS,
) -> list[int]:
    """Versions not yet applied (raises MigrationError on a checksum mismatch)."""
    return [m.version for m in _plan(migrations, await _applied(conn), equivalent)]


async def migrations_current(db: Database, migrations: list[Migration]) -> bool:
    """Whether every migration in `migrations` is applied (False, not an error, when a checksum
    does not match or the connection fails; ask `db.ping()` first for whether it answers)."""
    try:
        async with db.pool.acquire() as conn:
            return not await pending_migrations(conn, migrations)
    except (MigrationError, OSError):
        return False


async def apply_migrations(
    conn: Conn,
    directory: Path,
    equivalent: dict[int, dict[str, str]] = EQUIVALENT_CHECKSUMS,
) -> list[Migration]:
    """Apply every pending migration in order; returns the ones applied by this call.

    A file the database refuses (a missing privilege, an object in the way) raises
    MigrationError naming it and PostgreSQL's reason; the ones before it stay applied."""
    migrations = discover(directory)
    await conn.execute("select pg_advisory_lock($1)", LOCK_KEY)
    try:
        try:
            await conn.execute(_CREATE_TABLE)
        except asyncpg.InsufficientPrivilegeError as exc:  # no right to create in public
            raise MigrationError(await _privilege_problem(conn, exc)) from None
        todo = _plan(migrations, await _applied(conn), equivalent)
        for migration in todo:
            try:
                await _apply_one(conn, migration)
            except asyncpg.PostgresError as exc:
                if isinstance(exc, asyncpg.InsufficientPrivilegeError):
                    reason = await _privilege_problem(conn, exc)
                else:
                    reason = _reason(exc)
                raise MigrationError(
                    f"{migration.version:04d}_{migration.name}.sql could not be applied "
                    f"(nothing of it was): {reason}"
                ) from None
        return todo
    finally:
        await conn.execute("select pg_advisory_unlock($1)", LOCK_KEY)


async def _apply_one(conn: Conn, migration: Migration) -> None:
    async with conn.transaction():
        await conn.execute(migration.sql)
        await conn.execute(
            "insert into schema_migrations (version, name, sha256) values ($1, $2, $3)",
            migration.version,
            migration.name,
            migration.sha256,
        )


def _reason(exc: asyncpg.PostgresError) -> str:
    """PostgreSQL's message and SQLSTATE (never a value of a row: migrations hold none)."""
    return f"{exc.args[0] if exc.args else type(exc).__name__} (SQLSTATE {exc.sqlstate})"


async def _privilege_problem(conn: Conn, exc: asyncpg.PostgresError) -> str:
    """What a database owner that is no superuser needs, in the words of its DBA."""
    user = await conn.fetchval("select current_user")
    return (
        f"{_reason(exc)}. The database user {user} needs to own the database (its schema "
        f"public included) and be a member of the role {APP_ROLE}: as a superuser, "
        f"`CREATE ROLE {APP_ROLE} NOLOGIN; GRANT {APP_ROLE} TO {user};` "
        f"(or `ALTER ROLE {user} CREATEROLE` for the first migration), then run again"
    )


async def app_role_problem(conn: Conn) -> str | None:
    """Why tenant transactions (`set local role consent_app`) would fail for this database
    user on a migrated database, or None: every request would be a 500 otherwise."""
    user = await conn.fetchval("select current_user")
    try:
        async with conn.transaction():
            await conn.execute(f"set local role {APP_ROLE}")
    except asyncpg.InsufficientPrivilegeError:
        return (
            f"the database user {user} may not act as the role {APP_ROLE}, which every "
            f"tenant's transaction runs as: as a superuser, `GRANT {APP_ROLE} TO {user};`"
        )
    except asyncpg.InvalidParameterValueError:  # no such role (a database never migrated)
        return None
    return None
