"""After erasure no personal data of the subject is readable in a dump of the database.

A customer who asked to be forgotten used every part of the service first: consents and
preferences with network evidence, linked identifiers, an import, decisions, an audience run,
writes retried under Idempotency-Keys. After the erasure every row of every table is searched
for her identifiers, her address and browser, and for forms of them anyone holding only the dump
can reverse: hex and base64 of the bytes, an unkeyed SHA-256 of a value, and the SHA-256 of a
request that carried them (the API is public: whoever guesses her e-mail can rebuild the body),
nor the keyed hash the idempotency records held of those requests before the erasure, nor
the keyed HMACs of her identifiers (decisions asked about her before the service knew her
logged them): whoever holds the lookup key could confirm by them that she was asked about.
The service's own log lines, written meanwhile, are searched too, for those and for any key.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from uuid import UUID

import msgspec
import pytest
from litestar.testing import AsyncTestClient

from consent.app import create_app
from consent.audit.checkpoint import NoteSigner
from consent.audit.integrator import Integrator
from consent.audit.verify_db import verify_all
from consent.config import Settings
from consent.consents.importer import import_file
from consent.consents.schemas import ConsentCreate
from consent.crypto.keys import KeyRing
from consent.db.database import Database
from consent.preferences.schemas import PreferenceCreate
from consent.subjects.identifiers import normalize
from consent.subjects.schemas import ErasureRequest, LinkRequest
from tests.conftest import Catalog, Tenant
from tests.support.peer import client_from

pytestmark = pytest.mark.integration

VISITOR_IP = "198.51.100.203"
BROWSER = "ErinBrowser/7.3 (erasure-dump-test)"
EMAIL = {"type": "email", "value": "Erin.Dump@Mail.Example"}
PHONE = {"type": "phone", "value": "+49 151 2233 4455"}
DEVICE = {"type": "device", "value": "cookie-erin-dump-0042"}
CUSTOMER = {"type": "customer_id", "value": "CUST-778899-ERIN"}
# What must not be readable afterwards: each identifier as given and normalised, the visitor's
# address (whole and its stored /24 prefix) and her browser.
PERSONAL = [
    "Erin.Dump@Mail.Example",
    "erin.dump@mail.example",
    "+49 151 2233 4455",
    "+4915122334455",
    "15122334455",
    "cookie-erin-dump-0042",
    "CUST-778899-ERIN",
    VISITOR_IP,
    "198.51.100.0",
    BROWSER,
]


def _readable_forms(text: str) -> list[str]:
    """The text and what a dump shows of it in bytea, base64 or unkeyed-hash form."""
    raw = text.encode()
    return [
        text.lower(),
        raw.hex(),
        base64.b64encode(raw).decode().rstrip("=").lower(),
        base64.urlsafe_b64encode(raw).decode().rstrip("=").lower(),
        hashlib.sha256(raw).hexdigest(),
    ]


@pytest.fixture
async def visitor(
    settings: Settings, db: Database, keyring: KeyRing
) -> AsyncIterator[AsyncTestClient[Any]]:
    """The app as the customer's browser at VISITOR_IP reaches it."""
    async with client_from(create_app(settings, keyring=keyring), VISITOR_IP) as c:
        yield c


async def _dump(db: Database) -> dict[str, str]:
    """Every row of every table, as text (bytea as hex), lower case, per table."""
    async with db.pool.acquire() as conn:
        tables = [
            r["tablename"]
            for r in await conn.fetch(
                "select tablename from pg_tables where schemaname = 'public' order by 1"
            )
        ]
        return {
            t: "\n".join(
                str(r[0]).lower() for r in await conn.fetch(f'select t::text from "{t}" as t')
            )
            for t in tables
        }


async def test_a_dump_after_erasure_holds_nothing_of_the_person(
    visitor: Any,
    tenant: Tenant,
    db: Database,
    keyring: KeyRing,
    integrator: Integrator,
    signer: NoteSigner,
    tmp_path: Path,
    service_log: io.BytesIO,
) -> None:
    catalog = Catalog(visitor, tenant)
    h = {**tenant.headers, "user-agent": BROWSER}
    await catalog.post(
        "/v1/purposes",
        {"key": "email_marketing", "name": "Offers", "legal_basis": "consent"},
    )
    await catalog.post("/v1/purposes", {"key": "ads", "name": "Ads", "legal_basis": "consent"})
    await catalog.post("/v1/notices", {"key": "main", "purposes": ["email_marketing", "ads"]})
    version = await catalog.publish_version()
    on = await visitor.put(
        "/v1/tenant/settings", json={"store_network_evidence": True}, headers=tenant.headers
    )
    assert on.status_code == 200, on.text

    # Decisions asked about her before the service knew her: each is logged with the keyed HMAC
    # of the identifier asked about (a single decision, and a batch).
    context = {"requester": "esp", "jurisdiction": "DE"}
    early = await visitor.post(
        "/v1/decisions",
        json={"subject": {"identifier": EMAIL}, "action": "email.marketing", "context": context},
        headers=h,
    )
    assert early.status_code == 200, early.text
    assert early.json()["allow"] is False
    batch = await visitor.post(
        "/v1/decisions/batch",
        json={
            "decisions": [
                {"subject": {"identifier": ident}, "action": "email.marketing", "context": context}
                for ident in (PHONE, DEVICE, CUSTOMER)
            ]
        },
        headers=h,
    )
    assert batch.status_code == 200, batch.text
    lookup_hmacs = {
        ident["type"]: keyring.lookup_digest(
            tenant.id, ident["type"], normalize(ident["type"], ident["value"])
        ).hex()
        for ident in (EMAIL, PHONE, DEVICE, CUSTOMER)
    }
    async with db.pool.acquire() as conn:
        logged = {
            bytes(r["lookup_hmac"]).hex()
            for r in await conn.fetch(
                "select lookup_hmac from decision_log where lookup_hmac is not null"
            )
        }
    assert logged == set(lookup_hmacs.values())

    consent = {
        "identifier": EMAIL,
        "choices": [{"purpose": "email_marketing", "choice": "granted"}],
        "notice_version_id": version,
        "language": "en",
        "surface": "banner",
        "channel": "web",
    }
    preference = {
        "identifier": PHONE,
        "items": [{"kind": "channel", "key": "sms", "value": "opt_in"}],
        "surface": "portal",
        "channel": "web",
    }
    link = {
        "subjects": [
            {"identifier": EMAIL},
            {"identifier": PHONE},
            {"identifier": DEVICE},
            {"identifier": CUSTOMER},
        ]
    }
    for path, body, key in (
        ("/v1/consents", consent, "consent-1"),
        ("/v1/preferences", preference, "preference-1"),
        ("/v1/consents", {**consent, "identifier": DEVICE}, "consent-2"),
    ):
        written = await visitor.post(path, json=body, headers={**h, "Idempotency-Key": key})
        assert written.status_code == 201, written.text

    imported = tmp_path / "old-consents.csv"
    imported.write_text(
        "identifier_type,identifier_value,purpose,choice,occurred_at,channel\n"
        f"customer_id,{CUSTOMER['value']},ads,granted,2026-01-05T10:00:00Z,store\n"
    )
    result = await import_file(
        db, keyring, UUID(tenant.id), imported, stderr=io.StringIO(), report=io.BytesIO()
    )
    assert result.imported == 1

    linked = await visitor.post(
        "/v1/subjects/link", json=link, headers={**h, "Idempotency-Key": "l1"}
    )
    assert linked.status_code == 200, linked.text
    survivor = linked.json()["subject_id"]

    decided = await visitor.post(
        "/v1/decisions",
        json={"subject": {"identifier": EMAIL}, "action": "email.marketing", "context": context},
        headers=h,
    )
    assert decided.status_code == 200, decided.text
    assert decided.json()["allow"] is True
    lines = [
        json.dumps({"action": "email.marketing", "context": context}),
        json.dumps(EMAIL),
        json.dumps(PHONE),
    ]
    audience = await visitor.post(
        "/v1/audiences/filter",
        content="\n".join(lines).encode() + b"\n",
        headers={**h, "content-type": "application/x-ndjson"},
    )
    assert audience.status_code == 200, audience.text
    await integrator.integrate_all()

    # The requests that carried her identifiers, as a dump reader who guesses them rebuilds
    # them. The idempotency records hold their HMAC under the tenant's key (which the dump does
    # not hold), never their SHA-256; erasure overwrites even the HMAC.
    requests = {
        "consent-1": msgspec.json.encode(msgspec.convert(consent, ConsentCreate)),
        "consent-2": msgspec.json.encode(
            msgspec.convert({**consent, "identifier": DEVICE}, ConsentCreate)
        ),
        "preference-1": b"preferences/"
        + msgspec.json.encode(msgspec.convert(preference, PreferenceCreate)),
        "l1": b"link/" + msgspec.json.encode(msgspec.convert(link, LinkRequest)),
    }
    request_hashes = {k: hashlib.sha256(v).hexdigest() for k, v in requests.items()}
    idem_key = keyring.idempotency_key(tenant.id)
    keyed_hashes = {k: hmac.digest(idem_key, v, "sha256").hex() for k, v in requests.items()}
    async with db.pool.acquire() as conn:
        stored = {
            r["key"]: bytes(r["request_sha256"]).hex()
            for r in await conn.fetch("select key, request_sha256 from idempotency_record")
        }
    assert {k: stored[k] for k in keyed_hashes} == keyed_hashes

    erased = await visitor.delete(
        f"/v1/subjects/{survivor}", headers={**h, "Idempotency-Key": "dsr-1"}
    )
    assert erased.status_code == 200, erased.text
    assert len(erased.json()["erased_subjects"]) == 4
    await integrator.integrate_all()

    dump = await _dump(db)
    found = [
        (table, text)
        for text in PERSONAL
        for form in _readable_forms(text)
        for table, rows in dump.items()
        if form in rows
    ]
    found += [
        ("idempotency_record", f"SHA-256 of request {key}")
        for key, digest in request_hashes.items()
        if digest in dump["idempotency_record"]
    ]
    # Nor the keyed HMACs of her identifiers: whoever holds the lookup key could confirm by
    # them that the service was asked about her.
    found += [
        (table, f"lookup HMAC of her {id_type}")
        for id_type, digest in lookup_hmacs.items()
        for table, rows in dump.items()
        if digest in rows
    ]
    found += [
        ("idempotency_record", f"HMAC of request {key}")
        for key, digest in keyed_hashes.items()
        if digest in dump["idempotency_record"]
    ]
    assert found == []
    # Nor do the service's logs hold any of it, nor any key.
    log_text = service_log.getvalue().decode().lower()
    assert '"event":"request"' in log_text
    keys = [*keyring.keks.values(), keyring.lookup_root]
    assert [t for t in PERSONAL for form in _readable_forms(t) if form in log_text] == []
    assert [k for k in keys if base64.b64encode(k).decode().lower() in log_text] == []
    assert [k for k in keys if k.hex() in log_text] == []

    # A write from before the erasure, retried under its key, brings nobody back.
    for path, body, key in (
        ("/v1/consents", consent, "consent-1"),
        ("/v1/preferences", preference, "preference-1"),
    ):
        retried = await visitor.post(path, json=body, headers={**h, "Idempotency-Key": key})
        assert retried.status_code == 422, retried.text
        assert retried.headers["content-type"].startswith("application/problem+json")
        assert "erased" in retried.json()["detail"]  # not "used for a different request"
    for ident in (EMAIL, PHONE):
        lookup = await visitor.post("/v1/subjects/lookup", json={"identifier": ident}, headers=h)
        assert lookup.status_code == 404, lookup.text

    # The erasure's own answer is still given to its retry, and the audit still verifies.
    again = await visitor.delete(
        f"/v1/subjects/{survivor}", headers={**h, "Idempotency-Key": "dsr-1"}
    )
    assert (again.status_code, again.json()) == (200, erased.json())
    reports = await verify_all(db, signer.verifier, tenant.id)
    assert [r.problems for r in reports] == [[]]


async def test_an_erasure_by_identifier_keeps_no_hash_of_it(
    client: Any, catalog: Catalog, db: Database
) -> None:
    """`POST /v1/subjects/erase` names the person by her e-mail; its idempotency record is
    written after the erasure and kept. A plain SHA-256 of the request (as stored before)
    let anyone with a dump confirm a guess of the address, and that she asked to be erased."""
    await catalog.consent(identifier=EMAIL, choices=[{"purpose": "analytics", "choice": "granted"}])
    body = {"identifier": EMAIL}
    headers = {**catalog.h, "Idempotency-Key": "dsr-by-mail"}
    erased = await client.post("/v1/subjects/erase", json=body, headers=headers)
    assert erased.status_code == 200, erased.text
    canonical = msgspec.json.encode(msgspec.convert(body, ErasureRequest))
    guessed = {
        hashlib.sha256(b"erase-subject-ref/" + canonical).digest(),
        hashlib.sha256(
            b"erase-subject-ref/"
            + canonical.replace(b"Erin.Dump@Mail.Example", b"erin.dump@mail.example")
        ).digest(),
    }
    async with db.pool.acquire() as conn:
        stored = await conn.fetchval(
            "select request_sha256 from idempotency_record where key = 'dsr-by-mail'"
        )
    assert stored is not None
    assert bytes(stored) not in guessed
    # The record still does its job: the retry gets the first answer, another body a 422.
    again = await client.post("/v1/subjects/erase", json=body, headers=headers)
    assert (again.status_code, again.json()) == (200, erased.json())
    other = await client.post(
        "/v1/subjects/erase",
        json={"identifier": {"type": "email", "value": "someone@else.example"}},
        headers=headers,
    )
    assert other.status_code == 422, other.text
