"""Forward-only SQL migrations: `migrations/NNNN_name.sql`, applied in order, once each.

Each file runs in its own transaction and is recorded with its SHA-256 in `schema_migrations`.
A session-level advisory lock makes concurrent migrators (two replicas starting together) wait
for each other. A file edited after it was applied, or an applied file that disappeared, stops
the run before anything is applied.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from consent.db.database import Conn, Database

__all__ = [
    "Migration",
    "MigrationError",
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


def _plan(migrations: list[Migration], applied: dict[int, str]) -> list[Migration]:
    by_version = {m.version: m for m in migrations}
    problems = [
        f"{m.version:04d}_{m.name}.sql was edited after it was applied"
        for m in migrations
        if m.version in applied and applied[m.version] != m.sha256
    ]
    problems += [
        f"migration {v:04d} was applied but its file is missing"
        for v in sorted(applied)
        if v not in by_version
    ]
    if problems:
        raise MigrationError("; ".join(problems))
    return [m for m in migrations if m.version not in applied]


async def pending_migrations(conn: Conn, migrations: list[Migration]) -> list[int]:
    """Versions not yet applied (raises MigrationError on a checksum mismatch)."""
    return [m.version for m in _plan(migrations, await _applied(conn))]


async def migrations_current(db: Database, migrations: list[Migration]) -> bool:
    """Whether every migration in `migrations` is applied (False, not an error, when a checksum
    does not match or the connection fails; ask `db.ping()` first for whether it answers)."""
    try:
        async with db.pool.acquire() as conn:
            return not await pending_migrations(conn, migrations)
    except (MigrationError, OSError):
        return False


async def apply_migrations(conn: Conn, directory: Path) -> list[Migration]:
    """Apply every pending migration in order; returns the ones applied by this call."""
    migrations = discover(directory)
    await conn.execute("select pg_advisory_lock($1)", LOCK_KEY)
    try:
        await conn.execute(_CREATE_TABLE)
        todo = _plan(migrations, await _applied(conn))
        for migration in todo:
            async with conn.transaction():
                await conn.execute(migration.sql)
                await conn.execute(
                    "insert into schema_migrations (version, name, sha256) values ($1, $2, $3)",
                    migration.version,
                    migration.name,
                    migration.sha256,
                )
        return todo
    finally:
        await conn.execute("select pg_advisory_unlock($1)", LOCK_KEY)
