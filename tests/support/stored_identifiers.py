"""Identifiers written straight into the database, as the resolver wrote them under earlier
normalisation rules, and what `consent identifiers renormalise` then makes of them
(tests/integration/ledger/test_renormalise.py explains why rows are seeded this way)."""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path
from typing import Any

from consent.crypto.datakeys import DataKeys
from consent.crypto.keys import KeyRing
from consent.db.database import Database
from tests.conftest import Catalog, Tenant
from tests.support.cli import cli_env, run_consent


async def customer_subject(catalog: Catalog, customer: str) -> str:
    """A subject with a consent (so a data key, audit token and state), by a customer id."""
    written = await catalog.consent(
        identifier={"type": "customer_id", "value": customer},
        choices=[{"purpose": "newsletter", "choice": "granted"}],
    )
    return str(written["subject_id"])


async def store_identifier(
    db: Database,
    keyring: KeyRing,
    tenant: Tenant,
    subject: str,
    id_type: str,
    spelling: str,
    stored: str | None = None,
) -> None:
    """Give `subject` an identifier found by the keyed HMAC of `spelling`, its value encrypted
    as the resolver does: `stored` if given, else `spelling` (what the resolver stored)."""
    tid, sid = uuid.UUID(tenant.id), uuid.UUID(subject)
    async with db.tenant(tid) as conn:
        dek = await DataKeys(keyring).get(conn, tid, sid)
        value = (stored if stored is not None else spelling).encode()
        enc = DataKeys.encrypt(dek, tid, sid, value, b"identifier/" + id_type.encode())
        await conn.execute(
            "insert into subject_identifier (tenant_id, id_type, lookup_hmac, subject_id, "
            "value_enc) values ($1, $2, $3, $4, $5)",
            tid,
            id_type,
            keyring.lookup_digest(tenant.id, id_type, spelling),
            sid,
            enc,
        )


async def lookup_subject(
    catalog: Catalog, id_type: str, value: str, tenant: Tenant | None = None
) -> Any:
    """The subject id `POST /v1/subjects/lookup` finds for the identifier, None for a 404."""
    response = await catalog.client.post(
        "/v1/subjects/lookup",
        json={"identifier": {"type": id_type, "value": value}},
        headers=(tenant or catalog.tenant).headers,
    )
    if response.status_code == 404:
        return None
    assert response.status_code == 200, response.text
    return response.json()["subject_id"]


def renormalise(
    database_dsn: str, keys_dir: Path, tmp_path: Path, *args: str
) -> subprocess.CompletedProcess[str]:
    """`consent identifiers renormalise ARGS` against the test database."""
    env = cli_env(database_dsn, keys_dir, tmp_path / "data")
    return run_consent("identifiers", "renormalise", *args, env=env)
