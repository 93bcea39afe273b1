"""Erasure clears the identifier HMACs of decisions about the erased person, and only those.

A decision about an identifier the ledger did not know is logged with the identifier's keyed
HMAC. Once the identifier is a subject's and the subject is erased, erasure clears that HMAC (see
tests/integration/ledger/test_erasure_dump.py for the dump); the decision row stays, as the rest
of the decision log does, and the log stays append-only for every other change.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

import asyncpg
import pytest

from consent.audit.checkpoint import NoteSigner
from consent.audit.integrator import Integrator
from consent.audit.verify_db import verify_all
from consent.db.database import Database
from tests.conftest import Catalog, Tenant

pytestmark = pytest.mark.integration

ANN = {"type": "email", "value": "ann.decided@example.com"}
BOB = {"type": "email", "value": "bob.decided@example.com"}


async def _decide(catalog: Catalog, identifier: dict[str, str]) -> str:
    answer = await catalog.post(
        "/v1/decisions",
        {
            "subject": {"identifier": identifier},
            "action": "web.analytics",
            "context": {"requester": "cdp-main"},
        },
        status=200,
    )
    return str(answer["decision_id"])


async def test_erasure_clears_the_hmacs_of_the_erased_subjects_identifiers_only(
    client: Any, catalog: Catalog, db: Database, integrator: Integrator, signer: NoteSigner
) -> None:
    asked = {"ann": await _decide(catalog, ANN), "bob": await _decide(catalog, BOB)}
    for identifier in (ANN, BOB):
        await catalog.consent(
            identifier=identifier, choices=[{"purpose": "analytics", "choice": "granted"}]
        )
    ann = await catalog.post("/v1/subjects/lookup", {"identifier": ANN}, status=200)
    async with db.system() as conn:
        before = {
            r["id"]: dict(r)
            for r in await conn.fetch(
                "select * from decision_log where id = any($1::uuid[])", list(asked.values())
            )
        }
    assert all(r["lookup_hmac"] is not None for r in before.values())

    erased = await client.delete(f"/v1/subjects/{ann['subject_id']}", headers=catalog.h)
    assert erased.status_code == 200, erased.text

    async with db.system() as conn:
        after = {
            r["id"]: dict(r)
            for r in await conn.fetch(
                "select * from decision_log where id = any($1::uuid[])", list(asked.values())
            )
        }
    ann_row, bob_row = (UUID(asked[k]) for k in ("ann", "bob"))
    # Ann's decision stays, without the HMAC; nothing else of it changed.
    assert after[ann_row] == {**before[ann_row], "lookup_hmac": None}
    # Bob was not erased: his decision keeps it.
    assert after[bob_row] == before[bob_row]

    await integrator.integrate_all()
    reports = await verify_all(db, signer.verifier, catalog.tenant.id)
    assert [r.problems for r in reports] == [[]]


@pytest.mark.parametrize(
    "change",
    [
        "update decision_log set allow = not allow",
        "update decision_log set lookup_hmac = null, allow = not allow",
        "update decision_log set lookup_hmac = sha256(lookup_hmac)",
        "delete from decision_log",
    ],
)
async def test_the_decision_log_stays_append_only_for_anything_else(
    catalog: Catalog, db: Database, change: str
) -> None:
    """Only an HMAC cleared, nothing else with it, passes the guard (even for the owner)."""
    await _decide(catalog, ANN)
    async with db.system() as conn:
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
            await conn.execute(change)


async def test_the_application_role_cannot_clear_hmacs_of_another_tenant(
    catalog: Catalog, db: Database, other_tenant: Tenant
) -> None:
    """The owner's function clears HMACs for the caller's tenant only."""
    await _decide(catalog, ANN)
    await catalog.consent(identifier=ANN, choices=[{"purpose": "analytics", "choice": "granted"}])
    async with db.system() as conn:
        subject_id = await conn.fetchval("select subject_id from subject_identifier")
    async with db.tenant(other_tenant.id) as conn:
        assert await conn.fetchval("select forget_decision_lookups($1::uuid[])", [subject_id]) == 0
    async with db.system() as conn:
        assert (
            await conn.fetchval("select count(*) from decision_log where lookup_hmac is not null")
            == 1
        )
