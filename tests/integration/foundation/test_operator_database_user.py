"""What an operator meets with a database user that is no superuser (production DBAs do not
hand those out), and with a database that cannot be reached: one line in words naming the
file, the privilege and the remedy, never a traceback."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from consent.db.migrate import (
    MigrationError,
    app_role_problem,
    apply_migrations,
    default_migrations_dir,
    discover,
    pending_migrations,
)
from consent.db.scratch import create_database, drop_database, with_database
from tests.support.cli import cli_env, run_consent

pytestmark = pytest.mark.integration


def _as_user(dsn: str, user: str) -> str:
    """`dsn` logging in as `user` (no password: the test servers trust local connections)."""
    parts = urlsplit(dsn)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{user}@{host}"))


@pytest.fixture
async def plain_user(pg_server_dsn: str) -> AsyncIterator[str]:
    """A login role with no superuser, no CREATEROLE and no membership of consent_app."""
    name = f"consent_test_owner_{secrets.token_hex(4)}"
    conn = await asyncpg.connect(pg_server_dsn)
    try:
        await conn.execute(f"create role {name} login")
        yield name
        await conn.execute(f"drop role if exists {name}")
    finally:
        await conn.close()


@pytest.fixture
async def owned_database(pg_server_dsn: str, plain_user: str) -> AsyncIterator[str]:
    """An empty database that `plain_user` owns, as a DBA hands one out; its DSN as that user."""
    dsn = await create_database(pg_server_dsn, migrate=False)
    name = urlsplit(dsn).path.lstrip("/")
    conn = await asyncpg.connect(pg_server_dsn)
    try:
        await conn.execute(f'alter database "{name}" owner to {plain_user}')
    finally:
        await conn.close()
    yield _as_user(dsn, plain_user)
    await drop_database(pg_server_dsn, dsn)


async def test_a_migration_the_user_may_not_apply_is_one_line_with_the_remedy(
    owned_database: str, plain_user: str, tmp_path: Path
) -> None:
    """It was a traceback ending in `InsufficientPrivilegeError: permission denied to create
    role`, from `consent migrate` and from every worker of `consent serve`."""
    env = cli_env(owned_database, data_dir=tmp_path)
    done = run_consent("migrate", env=env)
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    line = done.stderr.strip()
    assert line.startswith("consent migrate: 0001_foundation.sql could not be applied"), line
    assert "SQLSTATE 42501" in line
    assert f"GRANT consent_app TO {plain_user};" in line
    assert "\n" not in line


async def test_serve_refuses_a_user_that_cannot_act_as_the_app_role(
    pg_server_dsn: str, plain_user: str
) -> None:
    """Such a user passed every check of `consent serve` and /health/ready said ready, while
    every tenant request was a 500 (`permission denied to set role "consent_app"`)."""
    dsn = await create_database(pg_server_dsn)  # migrated: consent_app exists
    try:
        conn = await asyncpg.connect(_as_user(dsn, plain_user))
        try:
            problem = await app_role_problem(conn)
            assert problem is not None
            assert f"GRANT consent_app TO {plain_user};" in problem
            admin = await asyncpg.connect(pg_server_dsn)
            try:
                await admin.execute(f"grant consent_app to {plain_user}")
            finally:
                await admin.close()
            assert await app_role_problem(conn) is None
        finally:
            await conn.close()
    finally:
        await drop_database(pg_server_dsn, dsn)


async def test_a_rewritten_migration_keeps_the_databases_that_applied_it(
    pg_server_dsn: str, tmp_path: Path
) -> None:
    """A migration rewritten so that more databases can apply it (0001, for database users
    without CREATEROLE) must not stop the ones that applied its first text; any other edit
    still does."""
    migrations = tmp_path / "migrations"
    migrations.mkdir()
    for m in discover(default_migrations_dir()):
        (migrations / f"{m.version:04d}_{m.name}.sql").write_text(m.sql, encoding="utf-8")
    dsn = await create_database(pg_server_dsn, migrate=False)
    try:
        conn = await asyncpg.connect(dsn)
        try:
            await apply_migrations(conn, migrations)
            first = min(migrations.glob("*.sql"))
            applied_sha = discover(migrations)[0].sha256
            first.write_text(first.read_text() + "\n-- rewritten\n", encoding="utf-8")
            rewritten_sha = discover(migrations)[0].sha256
            equivalent = {1: {rewritten_sha: applied_sha}}
            assert await pending_migrations(conn, discover(migrations), equivalent) == []
            assert await apply_migrations(conn, migrations, equivalent) == []
            first.write_text(first.read_text() + "\n-- edited again\n", encoding="utf-8")
            with pytest.raises(MigrationError, match="edited after it was applied"):
                await apply_migrations(conn, migrations, equivalent)
        finally:
            await conn.close()
    finally:
        await drop_database(pg_server_dsn, dsn)


def test_an_unreachable_database_is_said_in_words(pg_server_dsn: str, tmp_path: Path) -> None:
    """It named the exception class alone (`InvalidCatalogNameError`)."""
    missing = with_database(pg_server_dsn, f"consent_test_missing_{secrets.token_hex(4)}")
    done = run_consent("tenant", "list", env=cli_env(missing, data_dir=tmp_path))
    assert done.returncode == 1, done.stderr
    assert done.stderr.strip() == (
        "consent tenant list: cannot reach the database "
        "(no such database on that server; InvalidCatalogNameError)"
    )
