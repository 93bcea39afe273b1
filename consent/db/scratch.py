"""Throw-away databases on a PostgreSQL server, for the test suite and the benchmarks."""

from __future__ import annotations

import secrets
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from consent.db.migrate import apply_migrations, default_migrations_dir

__all__ = ["create_database", "drop_database", "with_database"]


def with_database(dsn: str, name: str) -> str:
    """`dsn` with its database replaced by `name`."""
    return urlunsplit(urlsplit(dsn)._replace(path="/" + name))


async def create_database(
    server_dsn: str, *, prefix: str = "consent_test", migrate: bool = True
) -> str:
    """Create `<prefix>_<random>` on the server of `server_dsn` (migrated unless told not to)
    and return its DSN."""
    name = f"{prefix}_{secrets.token_hex(4)}"
    conn = await asyncpg.connect(server_dsn)
    try:
        await conn.execute(f'create database "{name}"')
    finally:
        await conn.close()
    dsn = with_database(server_dsn, name)
    if migrate:
        conn = await asyncpg.connect(dsn)
        try:
            await apply_migrations(conn, default_migrations_dir())
        finally:
            await conn.close()
    return dsn


async def drop_database(server_dsn: str, dsn: str) -> None:
    """Drop the database of `dsn`, closing its connections."""
    name = urlsplit(dsn).path.lstrip("/")
    conn = await asyncpg.connect(server_dsn)
    try:
        await conn.execute(f'drop database if exists "{name}" with (force)')
    finally:
        await conn.close()
