"""A crash between append and integration loses nothing."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from consent.audit.checkpoint import NoteSigner
from consent.audit.integrator import Integrator
from consent.audit.verify_db import verify_all
from consent.db.database import Database
from tests.integration.conftest import Catalog

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[3]


async def test_killed_integrator_loses_nothing(
    catalog: Catalog,
    db: Database,
    integrator: Integrator,
    signer: NoteSigner,
    database_dsn: str,
    keys_dir: Path,
    tmp_path: Path,
) -> None:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("CONSENT_")},
        "CONSENT_DATABASE_URL": database_dsn,
        "CONSENT_KEYS_DIR": str(keys_dir),
        "CONSENT_DATA_DIR": str(tmp_path),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "consent", "audit", "integrate", "--loop", "--interval", "0.02"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    written: list[Any] = []
    try:
        for i in range(120):
            written.append(
                await catalog.consent(
                    identifier={"type": "device", "value": f"crash-{i % 10}"},
                    choices=[{"purpose": "ads", "choice": "granted"}],
                )
            )
            if i == 60:
                async with db.pool.acquire() as conn:
                    for _ in range(100):  # the integrator is demonstrably working
                        if await conn.fetchval("select max(tree_size) from audit_log"):
                            break
                        await asyncio.sleep(0.05)
                proc.send_signal(signal.SIGKILL)
                proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    async with db.pool.acquire() as conn:
        integrated_before = await conn.fetchval("select max(tree_size) from audit_log")
        pending = await conn.fetchval("select count(*) from audit_pending")
    assert integrated_before > 0
    assert pending > 0  # leaves written after the kill wait, durable, in the outbox

    await integrator.integrate_all()  # the restarted integrator
    async with db.pool.acquire() as conn:
        size = await conn.fetchval("select tree_size from audit_log")
        unmatched = await conn.fetchval(
            "select count(*) from consent_event c "
            "left join audit_event a on a.event_uuid = c.id "
            "left join audit_leaf f on f.event_id = a.event_id where f.leaf_index is null"
        )
    assert size == len(written) + 8 == 128  # plus the policy's and the catalogue's admin changes
    assert unmatched == 0
    reports = await verify_all(db, signer.verifier, catalog.tenant.id)
    assert reports[0].ok, reports[0].problems


async def test_two_integrators_do_not_corrupt_the_tree(
    catalog: Catalog, db: Database, signer: NoteSigner
) -> None:
    for i in range(60):
        await catalog.consent(
            identifier={"type": "device", "value": f"pair-{i % 5}"},
            choices=[{"purpose": "ads", "choice": "denied"}],
        )
    first, second = Integrator(db, signer, batch_size=5), Integrator(db, signer, batch_size=3)
    await asyncio.gather(*(first.integrate_all() for _ in range(3)), second.integrate_all())
    await first.integrate_all()
    async with db.pool.acquire() as conn:
        indexes = [
            r["leaf_index"]
            for r in await conn.fetch("select leaf_index from audit_leaf order by 1")
        ]
    assert indexes == list(range(60 + 8))
    reports = await verify_all(db, signer.verifier, catalog.tenant.id)
    assert reports[0].ok, reports[0].problems


async def test_an_integrator_with_another_key_ring_signs_nothing(
    catalog: Catalog, db: Database, database_dsn: str, keys_dir: Path, tmp_path: Path
) -> None:
    """`consent audit integrate` checks that its keys are the database's before it integrates:
    started with another key directory it would sign the tenants' checkpoints with a key their
    verifiers do not know. It exits 1, saying why, and leaves the outbox as it was."""
    await catalog.consent(
        identifier={"type": "device", "value": "keys"},
        choices=[{"purpose": "ads", "choice": "granted"}],
    )
    async with db.pool.acquire() as conn:
        pending = await conn.fetchval("select count(*) from audit_pending")
    assert pending > 0
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("CONSENT_")},
        "CONSENT_DATABASE_URL": database_dsn,
        "CONSENT_DATA_DIR": str(tmp_path),
    }
    for keys, expect in ((tmp_path / "stranger", 1), (keys_dir, 0)):
        done = subprocess.run(
            [sys.executable, "-m", "consent", "audit", "integrate"],
            env={**env, "CONSENT_KEYS_DIR": str(keys)},
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == expect, done.stderr[-2000:]
        async with db.pool.acquire() as conn:
            left = await conn.fetchval("select count(*) from audit_pending")
            signed = await conn.fetchval("select count(*) from audit_checkpoint")
        if expect:  # an empty directory: refused before any key is generated in it
            assert "CONSENT_KEYS_DIR" in done.stderr
            assert not any((tmp_path / "stranger").rglob("*"))
            assert (left, signed) == (pending, 0)
        else:  # the service's own keys: integrated and signed
            assert (left, signed) == (0, 1)
