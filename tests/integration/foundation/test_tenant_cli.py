"""An operator's tenant commands: `consent tenant list` shows what exists (never a secret), and
`consent tenant admin-key` gives a tenant whose admins lost their key a new one."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from uuid import UUID

import pytest

from consent.db.database import Database
from consent.db.scratch import create_database, drop_database
from consent.tenancy.auth import authenticate
from tests.support.cli import cli_env, free_port, run_consent

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture
async def fresh_dsn(pg_server_dsn: str) -> AsyncIterator[str]:
    dsn = await create_database(pg_server_dsn, prefix="consent_tenants")
    yield dsn
    await drop_database(pg_server_dsn, dsn)


def _created(out: str) -> tuple[str, str]:
    """(tenant id, admin key) from `consent tenant create`'s output."""
    lines = out.splitlines()
    return lines[0].split()[1], lines[-1]


async def test_tenant_list_and_a_new_admin_key(
    fresh_dsn: str, keys_dir: Path, tmp_path: Path
) -> None:
    env = cli_env(fresh_dsn, keys_dir, tmp_path, CONSENT_LOG_LEVEL="warning")
    acme, acme_key = _created(run_consent("tenant", "create", "Acme Shop", env=env).stdout)
    globex, _ = _created(run_consent("tenant", "create", "Globex", env=env).stdout)

    listed = run_consent("tenant", "list", env=env)
    assert listed.returncode == 0, listed.stderr
    rows = [line.split("\t") for line in listed.stdout.splitlines()]
    assert [(r[0], r[1], r[3]) for r in rows] == [(acme, "Acme Shop", "1"), (globex, "Globex", "1")]
    assert "csk_" not in listed.stdout + listed.stderr

    issued = run_consent("tenant", "admin-key", acme, "--name", "after the lost one", env=env)
    assert issued.returncode == 0, issued.stderr
    new_key = issued.stdout.splitlines()[-1]
    assert new_key.startswith("csk_")
    assert new_key != acme_key
    db = await Database.connect(fresh_dsn, min_size=1, max_size=2)
    try:
        who = await authenticate(db, f"Bearer {new_key}")
    finally:
        await db.close()
    assert who.tenant_id == UUID(acme)
    assert who.has("admin")
    listed = run_consent("tenant", "list", env=env)
    assert [line.split("\t")[3] for line in listed.stdout.splitlines()] == ["2", "1"]


def test_admin_key_for_no_such_tenant_or_a_bad_id_is_one_line(
    fresh_dsn: str, keys_dir: Path, tmp_path: Path
) -> None:
    env = cli_env(fresh_dsn, keys_dir, tmp_path, CONSENT_LOG_LEVEL="warning")
    missing = run_consent("tenant", "admin-key", "0190a000-0000-7000-8000-000000000001", env=env)
    assert missing.returncode == 1, missing.stderr
    assert missing.stderr.strip() == (
        "consent tenant admin-key: No tenant 0190a000-0000-7000-8000-000000000001."
    )
    assert missing.stdout == ""
    malformed = run_consent("tenant", "admin-key", "acme", env=env)
    assert malformed.returncode == 2
    assert "not a tenant id (a UUID): 'acme'" in malformed.stderr
    assert "Traceback" not in malformed.stderr


def test_an_unreachable_database_names_the_whole_command(tmp_path: Path) -> None:
    """It said `consent tenant: cannot reach …`: which tenant command?"""
    env = cli_env(f"postgresql://postgres@127.0.0.1:{free_port()}/consent", data_dir=tmp_path)
    for action in ("list", "create"):
        args = ("tenant", action, *(["Acme"] if action == "create" else []))
        done = run_consent(*args, env=env)
        assert done.returncode == 1, done.stderr
        assert done.stderr.startswith(f"consent tenant {action}: cannot reach the database ("), (
            done.stderr
        )
