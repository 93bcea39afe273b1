"""What an operator's mistakes get from the `consent` command: one line and an exit status,
never a traceback."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from consent.crypto.keys import load_keyring
from consent.db.scratch import create_database, drop_database
from tests.support.cli import ROOT, as_an_unprivileged_user, cli_env, run_consent

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture
async def unmigrated_dsn(pg_server_dsn: str) -> AsyncIterator[str]:
    dsn = await create_database(pg_server_dsn, prefix="consent_bare", migrate=False)
    yield dsn
    await drop_database(pg_server_dsn, dsn)


@pytest.mark.parametrize(
    "args", [("audit", "integrate"), ("audit", "verify")], ids=["integrate", "verify"]
)
def test_an_unmigrated_database_is_named_as_such(
    unmigrated_dsn: str, tmp_path: Path, args: tuple[str, ...]
) -> None:
    """`consent audit integrate` against a new database died with asyncpg's
    `UndefinedTableError: relation "key_binding" does not exist` traceback."""
    done = run_consent(*args, env=cli_env(unmigrated_dsn, data_dir=tmp_path))
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    command = " ".join(args)  # the whole command, not just `consent audit`
    assert f"consent {command}: the database has not been migrated (`consent migrate`)" in (
        done.stderr
    )


@pytest.fixture
async def edited_dsn(pg_server_dsn: str) -> AsyncIterator[str]:
    """A database whose first migration's recorded checksum is not its file's any more."""
    dsn = await create_database(pg_server_dsn, prefix="consent_edited")
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("update schema_migrations set sha256 = 'x' where version = 1")
    finally:
        await conn.close()
    yield dsn
    await drop_database(pg_server_dsn, dsn)


@pytest.mark.parametrize(
    "args",
    [("keys", "retire"), ("identifiers", "renormalise"), ("tenant", "create", "Acme")],
    ids=["keys-retire", "renormalise", "tenant-create"],
)
def test_a_migration_edited_after_it_was_applied_is_one_line(
    edited_dsn: str, tmp_path: Path, args: tuple[str, ...]
) -> None:
    """`consent keys retire` and `consent identifiers renormalise` died with a MigrationError
    traceback (`consent migrate` and `consent import` said it in one line)."""
    load_keyring(tmp_path / "keys", create=True)  # a key ring of its own, on disk
    done = run_consent(*args, env=cli_env(edited_dsn, data_dir=tmp_path))
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    command = " ".join(args[:2])  # the whole command, not just `consent keys`
    assert f"consent {command}: 0001_foundation.sql was edited after it was applied" in (
        done.stderr
    )


@pytest.mark.parametrize(
    "args", [("keys", "rotate"), ("audit", "verify")], ids=["keys-rotate", "audit-verify"]
)
def test_a_keys_directory_it_may_not_read_is_one_line_naming_it(
    database_dsn: str, db: object, tmp_path: Path, args: tuple[str, ...]
) -> None:
    keys = tmp_path / "keys"
    keys.mkdir(mode=0)
    try:
        done = subprocess.run(
            [sys.executable, "-m", "consent", *args],
            env=cli_env(database_dsn, keys, tmp_path),
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            preexec_fn=as_an_unprivileged_user,
        )
    finally:
        keys.chmod(0o700)
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    assert f"consent {' '.join(args)}: cannot use {keys}/" in done.stderr
    assert "Permission denied" in done.stderr
