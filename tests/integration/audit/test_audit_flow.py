"""A consent becomes a leaf, the leaf gets an index and a proof anyone can verify offline."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from consent.audit.checkpoint import NoteSigner
from consent.audit.integrator import Integrator
from consent.audit.verify_offline import verify_consistency_notes, verify_inclusion_proof
from consent.db.database import Database
from tests.integration.ledger.conftest import Catalog

pytestmark = pytest.mark.integration


async def _consents(catalog: Catalog, n: int, who: str = "device-1") -> list[Any]:
    return [
        await catalog.consent(
            identifier={"type": "device", "value": f"{who}-{i % 3}"},
            choices=[{"purpose": "ads", "choice": "granted" if i % 2 else "withdrawn"}],
        )
        for i in range(n)
    ]


async def test_consent_leaf_is_integrated_and_provable_offline(
    client: Any, catalog: Catalog, integrator: Integrator, signer: NoteSigner
) -> None:
    written = await _consents(catalog, 10)
    pending = (
        await client.get(f"/v1/audit/events/{written[0]['event_id']}", headers=catalog.h)
    ).json()
    assert pending["leaf_index"] is None
    assert pending["kind"] == "consent.recorded"
    early = await client.get(f"/v1/audit/events/{written[0]['event_id']}/proof", headers=catalog.h)
    assert early.status_code == 409
    assert early.json()["type"] == "/problems/audit-pending"

    # 10 consents + 8 admin changes: the policy in force (the tenant's first leaf) and the
    # catalogue set-up (purposes, notice, version).
    assert await integrator.integrate_all() == 18
    vkey = (await client.get("/.well-known/consent-audit-keys")).text.strip()
    assert vkey == signer.vkey
    for item in written:
        info = (await client.get(f"/v1/audit/events/{item['event_id']}", headers=catalog.h)).json()
        assert info["leaf_index"] is not None
        proof = await client.get(f"/v1/audit/events/{item['event_id']}/proof", headers=catalog.h)
        assert proof.status_code == 200
        assert proof.headers["content-type"].startswith("text/plain")
        leaf = base64.b64decode(info["leaf"])
        result = verify_inclusion_proof(proof.text, leaf, vkey, origin=info["log"])
        assert result.ok, result.reason
        tampered = leaf.replace(b"ads", b"adz")
        assert not verify_inclusion_proof(proof.text, tampered, vkey, origin=info["log"]).ok


async def test_checkpoints_are_consistent_over_time(
    client: Any, catalog: Catalog, integrator: Integrator
) -> None:
    await _consents(catalog, 5)
    await integrator.integrate_all()
    old = (await client.get("/v1/audit/checkpoint", headers=catalog.h)).text
    await _consents(catalog, 9, who="device-2")
    await integrator.integrate_all()
    new = (await client.get("/v1/audit/checkpoint", headers=catalog.h)).text
    old_size, new_size = int(old.splitlines()[1]), int(new.splitlines()[1])
    assert (old_size, new_size) == (8 + 5, 8 + 14)
    proof = (
        await client.get(
            "/v1/audit/consistency", params={"from": old_size, "to": new_size}, headers=catalog.h
        )
    ).json()
    vkey = (await client.get("/.well-known/consent-audit-keys")).text.strip()
    origin = old.splitlines()[0]
    hashes = [base64.b64decode(h) for h in proof]
    result = verify_consistency_notes(old, new, hashes, vkey, origin=origin)
    assert result.ok, result.reason
    historical = await client.get(f"/v1/audit/checkpoints/{old_size}", headers=catalog.h)
    assert historical.text == old


async def test_activity_shows_each_event_with_its_leaf_index(
    client: Any, catalog: Catalog, integrator: Integrator
) -> None:
    written = await _consents(catalog, 4)
    await integrator.integrate_all()
    subject = written[0]["subject_id"]
    page = (await client.get(f"/v1/subjects/{subject}/activity", headers=catalog.h)).json()
    mine = [w["event_id"] for w in written if w["subject_id"] == subject]
    assert [i["event_uuid"] for i in page["items"]] == list(reversed(mine))
    for item in page["items"]:
        assert item["kind"] == "consent.recorded"
        assert isinstance(item["leaf_index"], int)
        assert item["choices"][0]["purpose"] == "ads"
        assert item["surface"] == "banner"


async def test_leaves_hold_no_personal_data(
    catalog: Catalog, db: Database, integrator: Integrator
) -> None:
    await catalog.consent(
        identifier={"type": "email", "value": "leafcheck@example.org"},
        choices=[{"purpose": "ads", "choice": "granted"}],
    )
    await integrator.integrate_all()
    async with db.system() as conn:
        leaves = [
            bytes(r["leaf_bytes"]) for r in await conn.fetch("select leaf_bytes from audit_event")
        ]
        subject_ids = [str(r["id"]) for r in await conn.fetch("select id from subject")]
    assert leaves
    for leaf in leaves:
        assert b"leafcheck" not in leaf
        assert b"example.org" not in leaf
        for sid in subject_ids:
            assert sid.encode() not in leaf


async def test_export_for_a_regulator_verifies_offline(
    client: Any, catalog: Catalog, integrator: Integrator
) -> None:
    written = await _consents(catalog, 6)
    await integrator.integrate_all()
    subject = written[0]["subject_id"]
    export = (
        await client.get("/v1/audit/export", params={"subject_id": subject}, headers=catalog.h)
    ).json()
    assert export["entries"]
    from consent.audit import merkle
    from consent.audit.checkpoint import VerifierKey, open_checkpoint

    checkpoint, _ = open_checkpoint(
        export["checkpoint"],
        [VerifierKey.parse(export["vkey"])],
        origin=export["checkpoint"].splitlines()[0],
    )
    for entry in export["entries"]:
        merkle.verify_inclusion(
            merkle.leaf_hash(base64.b64decode(entry["leaf"])),
            entry["leaf_index"],
            checkpoint.size,
            [base64.b64decode(h) for h in entry["inclusion_proof"]],
            checkpoint.root_hash,
        )


async def test_every_kind_of_change_becomes_a_leaf(
    client: Any, catalog: Catalog, db: Database, integrator: Integrator
) -> None:
    device = await catalog.consent(
        identifier={"type": "device", "value": "kinds-1"},
        choices=[{"purpose": "ads", "choice": "granted"}],
    )
    await catalog.post(
        "/v1/preferences",
        {
            "subject_id": device["subject_id"],
            "items": [{"kind": "channel", "key": "email", "value": "opt_in"}],
            "surface": "portal",
            "channel": "web",
        },
    )
    await catalog.post(
        "/v1/subjects/link",
        {
            "subjects": [
                {"subject_id": device["subject_id"]},
                {"identifier": {"type": "email", "value": "kinds@example.com"}},
            ]
        },
        status=200,
    )
    other = await catalog.consent(
        identifier={"type": "customer_id", "value": "K-2"},
        choices=[{"purpose": "ads", "choice": "denied"}],
    )
    await catalog.post(
        "/v1/subjects/link",
        {"subjects": [{"subject_id": device["subject_id"]}, {"subject_id": other["subject_id"]}]},
        status=200,
    )
    await integrator.integrate_all()
    async with db.system() as conn:
        kinds = {
            r["kind"]: r["n"]
            for r in await conn.fetch("select kind, count(*) as n from audit_event group by kind")
        }
    # The policy in force; catalogue set-up: 4 purposes, 1 notice, 1 version created + published.
    assert kinds["admin.changed"] == 8
    assert kinds["consent.recorded"] == 2
    assert kinds["preference.recorded"] == 1
    assert kinds["subject.linked"] == 1
    page = (
        await client.get(f"/v1/subjects/{device['subject_id']}/activity", headers=catalog.h)
    ).json()
    assert [i["kind"] for i in page["items"]] == [
        "subject.linked",
        "consent.recorded",  # of the linked subject: nothing lost
        "preference.recorded",
        "consent.recorded",
    ]
    assert page["items"][2]["choices"] == [{"kind": "channel", "key": "email", "value": "opt_in"}]
