from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import asyncpg
import pytest

from consent.db.migrate import (
    LOCK_KEY,
    MigrationError,
    apply_migrations,
    default_migrations_dir,
    discover,
    pending_migrations,
)
from consent.db.scratch import create_database, drop_database

pytestmark = pytest.mark.integration


@pytest.fixture
async def fresh_dsn(pg_server_dsn: str) -> object:
    dsn = await create_database(pg_server_dsn, migrate=False)
    yield dsn
    await drop_database(pg_server_dsn, dsn)


@pytest.fixture
def migrations_copy(tmp_path: Path) -> Path:
    target = tmp_path / "migrations"
    shutil.copytree(default_migrations_dir(), target)
    return target


async def test_migrations_apply_once(fresh_dsn: str) -> None:
    conn = await asyncpg.connect(fresh_dsn)
    try:
        first = await apply_migrations(conn, default_migrations_dir())
        second = await apply_migrations(conn, default_migrations_dir())
        assert [m.version for m in first] == [m.version for m in discover(default_migrations_dir())]
        assert second == []
        rows = await conn.fetch("select version, sha256 from schema_migrations order by version")
        assert [(r["version"], r["sha256"]) for r in rows] == [(m.version, m.sha256) for m in first]
        assert await pending_migrations(conn, discover(default_migrations_dir())) == []
    finally:
        await conn.close()


async def test_edited_migration_is_refused_and_nothing_new_applies(
    fresh_dsn: str, migrations_copy: Path
) -> None:
    conn = await asyncpg.connect(fresh_dsn)
    try:
        await apply_migrations(conn, migrations_copy)
        first = min(migrations_copy.glob("*.sql"))
        first.write_text(first.read_text() + "\n-- an innocent-looking edit\n")
        (migrations_copy / "9999_later.sql").write_text("create table later_table (x int);")
        with pytest.raises(MigrationError, match="edited after it was applied"):
            await apply_migrations(conn, migrations_copy)
        assert await conn.fetchval("select to_regclass('later_table')") is None
    finally:
        await conn.close()


async def test_deleted_applied_migration_is_refused(fresh_dsn: str, migrations_copy: Path) -> None:
    conn = await asyncpg.connect(fresh_dsn)
    try:
        await apply_migrations(conn, migrations_copy)
        min(migrations_copy.glob("*.sql")).unlink()
        with pytest.raises(MigrationError, match="file is missing"):
            await apply_migrations(conn, migrations_copy)
    finally:
        await conn.close()


async def test_failing_migration_leaves_nothing_half_applied(
    fresh_dsn: str, migrations_copy: Path
) -> None:
    (migrations_copy / "9998_broken.sql").write_text(
        "create table half_done (x int);\nselect * from no_such_table;"
    )
    conn = await asyncpg.connect(fresh_dsn)
    try:
        # The file and PostgreSQL's reason, in one line (an UndefinedTableError that reached
        # `consent` was told as "the database has not been migrated").
        with pytest.raises(MigrationError, match=r"^9998_broken\.sql could not be applied .*42P01"):
            await apply_migrations(conn, migrations_copy)
        assert await conn.fetchval("select to_regclass('half_done')") is None
        versions = await conn.fetch("select version from schema_migrations")
        assert 9998 not in {r["version"] for r in versions}
    finally:
        await conn.close()


async def test_second_concurrent_migrator_waits(fresh_dsn: str, migrations_copy: Path) -> None:
    (migrations_copy / "9997_slow.sql").write_text(
        "select pg_sleep(1.5);\ncreate table slow_done (x int);"
    )
    first, second, observer = [await asyncpg.connect(fresh_dsn) for _ in range(3)]
    try:
        task_a = asyncio.create_task(apply_migrations(first, migrations_copy))
        await asyncio.sleep(0.5)  # A holds the lock and is inside the slow migration
        task_b = asyncio.create_task(apply_migrations(second, migrations_copy))
        waiting = 0
        for _ in range(50):
            waiting = await observer.fetchval(
                "select count(*) from pg_locks where locktype = 'advisory' and not granted "
                "and objid = $1",
                LOCK_KEY & 0xFFFFFFFF,
            )
            if waiting:
                break
            await asyncio.sleep(0.05)
        assert waiting == 1, "the second migrator should be blocked on the advisory lock"
        assert not task_b.done()
        applied_a = await task_a
        applied_b = await task_b
        assert 9997 in {m.version for m in applied_a}
        assert applied_b == []
        count = await observer.fetchval(
            "select count(*) from schema_migrations where version = 9997"
        )
        assert count == 1
    finally:
        for c in (first, second, observer):
            await c.close()
