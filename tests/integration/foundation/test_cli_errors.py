"""What an operator's mistakes get from the `consent` command: one line and an exit status,
never a traceback."""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from consent.db.scratch import create_database, drop_database
from tests.support.cli import ROOT, cli_env, run_consent

pytestmark = [pytest.mark.integration, pytest.mark.slow]

_PR_CAPBSET_DROP = 24
_CAP_DAC_OVERRIDE = 1
_CAP_DAC_READ_SEARCH = 2


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
    assert "consent audit: the database has not been migrated (`consent migrate`)" in (done.stderr)


def _as_an_unprivileged_user() -> None:
    """In the child: file permissions apply to it even when the tests run as root."""
    if os.geteuid() != 0:
        return
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (_CAP_DAC_OVERRIDE, _CAP_DAC_READ_SEARCH):
        if libc.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


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
            preexec_fn=_as_an_unprivileged_user,
        )
    finally:
        keys.chmod(0o700)
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    assert f"consent {args[0]}: cannot use {keys}/" in done.stderr
    assert "Permission denied" in done.stderr
