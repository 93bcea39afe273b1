"""Every subject access export is a disclosure of a person's data, and is accountable like every
other use of it: a `subject.exported` leaf in the tamper-evident audit log, with the subject's
pseudonymous token and the API key that asked, appended in the export's opening transaction."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from consent.audit.checkpoint import NoteSigner
from consent.audit.integrator import Integrator
from consent.audit.leaf import SubjectErased, SubjectExported, decode_leaf
from consent.audit.outbox import AuditWriter, token_text
from consent.audit.verify_db import verify_all
from consent.audit.verify_offline import verify_export, verify_inclusion_proof
from consent.config import Settings
from consent.crypto.keys import KeyRing
from consent.db.database import Database
from consent.errors import NotFound
from consent.subjects.erasure import erase_subject
from consent.subjects.export import SubjectExporter
from consent.subjects.resolver import SubjectResolver
from consent.subjects.schemas import SubjectRef
from tests.integration.conftest import Catalog
from tests.support.cli import cli_env, run_consent
from tests.support.locks import waiting_for_a_lock

pytestmark = pytest.mark.integration

EMAIL = {"type": "email", "value": "Olga.Oversight@Example.ORG"}
DEVICE = {"type": "device", "value": "cookie-olga"}


def _key_id(catalog: Catalog) -> str:
    return catalog.h["Authorization"].removeprefix("Bearer ").split("_")[1]


async def _exported_events(db: Database, tenant_id: str) -> list[Any]:
    async with db.system() as conn:
        return list(
            await conn.fetch(
                "select event_uuid, subject_id, leaf_bytes from audit_event "
                "where tenant_id = $1 and kind = 'subject.exported' order by event_id",
                UUID(tenant_id),
            )
        )


async def _token(db: Database, subject_id: str) -> str | None:
    async with db.system() as conn:
        token = await conn.fetchval(
            "select token from audit_subject_token where subject_id = $1", UUID(subject_id)
        )
    return None if token is None else token_text(bytes(token))


async def _verified(db: Database, signer: NoteSigner, tenant_id: str) -> None:
    [report] = await verify_all(db, signer.verifier, tenant_id)
    assert report.ok, report.problems


async def test_an_export_is_an_audited_disclosure(
    client: Any,
    catalog: Catalog,
    db: Database,
    integrator: Integrator,
    signer: NoteSigner,
    database_dsn: str,
    keys_dir: Path,
    tmp_path: Path,
) -> None:
    written = await catalog.consent(
        identifier=EMAIL, choices=[{"purpose": "newsletter", "choice": "granted"}]
    )
    subject = written["subject_id"]
    h = catalog.h
    token = await _token(db, subject)
    assert token is not None

    answer = await client.get(f"/v1/subjects/{subject}/export", headers=h)
    assert answer.status_code == 200, answer.text
    document = answer.json()

    # One leaf, filed under the subject, naming only its token, the key that asked and when.
    [event] = await _exported_events(db, catalog.tenant.id)
    assert str(event["subject_id"]) == subject
    leaf_bytes = bytes(event["leaf_bytes"])
    leaf = decode_leaf(leaf_bytes)
    assert isinstance(leaf, SubjectExported)
    assert leaf.subject_token == token
    assert leaf.actor_ref == f"api-key:{_key_id(catalog)}"
    # When: the instant the document says it was made.
    assert leaf.occurred_at == dt.datetime.fromisoformat(document["exported_at"])
    for personal in (b"olga", b"example.org", subject.encode(), b"cookie"):
        assert personal not in leaf_bytes.lower()
    # Recorded before the lists were read: the document shows its own disclosure.
    assert str(event["event_uuid"]) in {a["event_uuid"] for a in document["activity"]}

    # Integrated, provable offline against a signed checkpoint.
    await integrator.integrate_all()
    info = (await client.get(f"/v1/audit/events/{event['event_uuid']}", headers=h)).json()
    assert info["kind"] == "subject.exported"
    assert isinstance(info["leaf_index"], int)
    proof = await client.get(f"/v1/audit/events/{event['event_uuid']}/proof", headers=h)
    assert proof.status_code == 200, proof.text
    result = verify_inclusion_proof(proof.text, leaf_bytes, signer.vkey, origin=info["log"])
    assert result.ok, result.reason

    # The subject's activity lists it as a use of the data, with who asked.
    activity = (await client.get(f"/v1/subjects/{subject}/activity", headers=h)).json()["items"]
    [item] = [a for a in activity if a["kind"] == "subject.exported"]
    assert item["event_uuid"] == str(event["event_uuid"])
    assert item["leaf_index"] == info["leaf_index"]
    assert item["requester"] == f"api-key:{_key_id(catalog)}"
    assert base64.b64decode(item["leaf"]) == leaf_bytes

    # A later export (here by identifier) shows the earlier one, and is logged in turn.
    again = await client.post("/v1/subjects/export", json={"identifier": EMAIL}, headers=h)
    assert again.status_code == 200, again.text
    events = await _exported_events(db, catalog.tenant.id)
    assert len(events) == 2
    later = {a["event_uuid"]: a for a in again.json()["activity"]}
    assert {str(e["event_uuid"]) for e in events} <= set(later)
    assert later[str(event["event_uuid"])]["leaf_index"] == info["leaf_index"]

    # The audit export of the subject holds both, and a regulator verifies it alone.
    await integrator.integrate_all()
    audit_export = await client.get("/v1/audit/export", params={"subject_id": subject}, headers=h)
    assert audit_export.status_code == 200, audit_export.text
    kinds = [
        decode_leaf(base64.b64decode(e["leaf"])).__struct_config__.tag
        for e in audit_export.json()["entries"]
    ]
    assert kinds.count("subject.exported") == 2
    checked = verify_export(audit_export.content, signer.vkey)
    assert checked.ok, checked.reason
    await _verified(db, signer, catalog.tenant.id)

    # Erased: the export leaves stay as pseudonymous proof (the token that linked them to the
    # subject is gone), and the log still verifies, by function and by `consent audit verify`.
    erased = await client.delete(f"/v1/subjects/{subject}", headers=h)
    assert erased.status_code == 200, erased.text
    assert await _token(db, subject) is None
    await integrator.integrate_all()
    assert len(await _exported_events(db, catalog.tenant.id)) == 2
    proof = await client.get(f"/v1/audit/events/{event['event_uuid']}/proof", headers=h)
    assert proof.status_code == 200, proof.text
    assert verify_inclusion_proof(proof.text, leaf_bytes, signer.vkey, origin=info["log"]).ok
    await _verified(db, signer, catalog.tenant.id)
    run = run_consent(
        "audit",
        "verify",
        "--tenant",
        catalog.tenant.id,
        env=cli_env(database_dsn, keys_dir, tmp_path),
    )
    assert run.returncode == 0, run.stderr


async def test_a_subject_never_written_to_gets_its_token_at_its_first_export(
    client: Any, catalog: Catalog, db: Database, integrator: Integrator, signer: NoteSigner
) -> None:
    """A link of identifiers the ledger did not know makes a subject that no leaf names yet
    (no audit token). Its export discloses its identifiers all the same: the export creates its
    token, as a first write does, and its leaf names it; its erasure then has a token to prove
    (a `subject.erased` leaf) and deletes."""
    linked = await catalog.post(
        "/v1/subjects/link", {"subjects": [{"identifier": EMAIL}, {"identifier": DEVICE}]}, 200
    )
    subject = linked["subject_id"]
    assert await _token(db, subject) is None

    answer = await client.get(f"/v1/subjects/{subject}/export", headers=catalog.h)
    assert answer.status_code == 200, answer.text
    assert {i["value"] for i in answer.json()["identifiers"]} == {
        "olga.oversight@example.org",
        "cookie-olga",
    }
    token = await _token(db, subject)
    assert token is not None
    [event] = await _exported_events(db, catalog.tenant.id)
    leaf = decode_leaf(bytes(event["leaf_bytes"]))
    assert isinstance(leaf, SubjectExported)
    assert leaf.subject_token == token

    erased = await client.delete(f"/v1/subjects/{subject}", headers=catalog.h)
    assert erased.status_code == 200, erased.text
    [erasure] = erased.json()["audit_events"]
    async with db.system() as conn:
        erasure_leaf = decode_leaf(
            bytes(
                await conn.fetchval(
                    "select leaf_bytes from audit_event where event_uuid = $1", UUID(erasure)
                )
            )
        )
    assert isinstance(erasure_leaf, SubjectErased)
    assert erasure_leaf.subject_token == token
    assert await _token(db, subject) is None
    await integrator.integrate_all()
    await _verified(db, signer, catalog.tenant.id)


async def test_an_export_that_is_refused_records_nothing(
    client: Any, catalog: Catalog, db: Database
) -> None:
    """Only a disclosure is logged: an unknown subject or identifier (404) and a key without
    the admin scope (403) leave no `subject.exported` leaf, and create no subject."""
    written = await catalog.consent(
        identifier=EMAIL, choices=[{"purpose": "newsletter", "choice": "granted"}]
    )
    unknown = {"type": "email", "value": "nobody@example.org"}
    assert (
        await client.post("/v1/subjects/export", json={"identifier": unknown}, headers=catalog.h)
    ).status_code == 404
    assert (
        await client.get(f"/v1/subjects/{UUID(int=7)}/export", headers=catalog.h)
    ).status_code == 404
    reader = await catalog.post("/v1/api-keys", {"name": "crm", "scopes": ["read", "write"]})
    read = {"Authorization": f"Bearer {reader['secret']}"}
    answer = await client.get(f"/v1/subjects/{written['subject_id']}/export", headers=read)
    assert answer.status_code == 403
    assert await _exported_events(db, catalog.tenant.id) == []
    async with db.system() as conn:
        subjects = await conn.fetchval(
            "select count(*) from subject where tenant_id = $1", UUID(catalog.tenant.id)
        )
    assert subjects == 1


async def test_an_export_racing_an_erasure_is_a_404_or_in_the_log_before_it(
    catalog: Catalog,
    db: Database,
    keyring: KeyRing,
    settings: Settings,
    integrator: Integrator,
    signer: NoteSigner,
) -> None:
    """An export opened while an erasure of the subject is under way waits for it (the
    opening locks the subject as a write does) and then finds nothing: never the identifiers of
    a person being erased, nor a token made again for the erased subject."""
    written = await catalog.consent(
        identifier=EMAIL, choices=[{"purpose": "newsletter", "choice": "granted"}]
    )
    subject, tenant_id = UUID(written["subject_id"]), UUID(catalog.tenant.id)
    writer = AuditWriter(settings.audit_origin)
    exporter = SubjectExporter(
        db, keyring, tenant_id, signer.vkey, writer=writer, actor="api-key:race"
    )
    async with db.tenant(tenant_id) as conn:
        await erase_subject(conn, tenant_id, subject, SubjectResolver(keyring), writer)
        opening = asyncio.create_task(exporter.open(SubjectRef(subject_id=subject)))
        assert await waiting_for_a_lock(db, opening, locktype=None)
    with pytest.raises(NotFound):
        await opening
    assert await _exported_events(db, catalog.tenant.id) == []
    assert await _token(db, str(subject)) is None
    await integrator.integrate_all()
    await _verified(db, signer, catalog.tenant.id)
