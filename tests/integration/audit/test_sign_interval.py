"""The service's integrator signs at most once per `sign_interval` per log, however many
batches it integrates, and signs what was integrated meanwhile once the interval has passed:
every leaf ends up under a signed checkpoint, and the log still verifies."""

from __future__ import annotations

import asyncio

import pytest

from consent.audit.checkpoint import NoteSigner
from consent.audit.integrator import Integrator, SignerGuardError
from consent.audit.verify_db import verify_all
from consent.db.database import Database
from tests.integration.conftest import Catalog

pytestmark = [pytest.mark.integration]


async def _write(catalog: Catalog, n: int, prefix: str) -> None:
    for i in range(n):
        await catalog.consent(
            identifier={"type": "device", "value": f"{prefix}-{i}"},
            choices=[{"purpose": "ads", "choice": "granted"}],
        )


async def _leaves(db: Database) -> int:
    """Leaves written so far (setting up the catalogue writes some too)."""
    async with db.pool.acquire() as conn:
        return int(await conn.fetchval("select count(*) from audit_event"))


async def _state(db: Database) -> tuple[int, int, int]:
    """(tree size, checkpoints, size of the last checkpoint) of the one log."""
    async with db.pool.acquire() as conn:
        size = await conn.fetchval("select tree_size from audit_log")
        row = await conn.fetchrow(
            "select count(*) as n, coalesce(max(tree_size), 0) as last from audit_checkpoint"
        )
    assert row is not None
    return int(size), int(row["n"]), int(row["last"])


async def test_batches_within_the_interval_share_one_checkpoint(
    catalog: Catalog, db: Database, signer: NoteSigner
) -> None:
    integrator = Integrator(db, signer, batch_size=3, sign_interval=1.5)
    await _write(catalog, 7, "a")
    n = await _leaves(db)
    await integrator.integrate_all()  # batches of three: only the first one signs
    assert await _state(db) == (n, 1, 3)
    assert await integrator.sign_due() == 0  # the interval has not passed

    await asyncio.sleep(1.55)
    assert await integrator.sign_due() == 1
    assert await _state(db) == (n, 2, n)  # every leaf is under a signed checkpoint
    assert await integrator.sign_due() == 0  # nothing left to sign

    await _write(catalog, 2, "b")
    await asyncio.sleep(1.55)
    await integrator.integrate_all()  # the interval has passed: the batch signs itself
    assert await _state(db) == (n + 2, 3, n + 2)
    report = (await verify_all(db, signer.verifier, catalog.tenant.id))[0]
    assert report.problems == []
    assert report.checkpoints == 3


async def test_the_running_integrator_signs_the_tail(
    catalog: Catalog, db: Database, signer: NoteSigner
) -> None:
    await _write(catalog, 9, "c")
    n = await _leaves(db)  # all pending: the first pass integrates them in batches of two
    integrator = Integrator(db, signer, batch_size=2, sign_interval=1.0)
    stop = asyncio.Event()
    running = asyncio.create_task(integrator.run(stop, interval=0.05))
    try:
        for _ in range(80):  # the tail is signed once the interval has passed
            await asyncio.sleep(0.1)
            size, _, last = await _state(db)
            if size == last == n:
                break
    finally:
        stop.set()
        await running
    # One checkpoint from the pass (its first batch), one for the tail: not one per batch.
    assert await _state(db) == (n, 2, n)


async def test_a_refused_tail_is_retried_once_per_interval(
    catalog: Catalog, db: Database, signer: NoteSigner
) -> None:
    integrator = Integrator(db, signer, batch_size=3, sign_interval=1.0)
    await _write(catalog, 4, "d")
    await integrator.integrate_all()  # the first batch signs; the rest waits for the interval
    async with db.system() as conn:  # the signed checkpoint no longer matches the tree
        await conn.execute("set local session_replication_role = replica")  # past the guard
        await conn.execute("update audit_checkpoint set root_hash = $1", bytes(32))
    await asyncio.sleep(1.05)
    with pytest.raises(SignerGuardError):
        await integrator.sign_due()
    assert await integrator.sign_due() == 0  # not tried again on the next pass
    size, checkpoints, last = await _state(db)
    assert (checkpoints, last) == (1, 3)
    assert size > last
