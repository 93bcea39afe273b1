"""A phone number typed with its national trunk prefix after the country code (`+49 030
1234567`, as many people and call-centre agents write a German number) is the person's E.164
number (+49301234567), in the ledger, in decisions and in audiences; and one that the rule
before stored as `+490301234567` is found by its E.164 spelling once `consent identifiers
renormalise` has re-spelt it (consent/subjects/identifiers.py, `_without_trunk_prefix`).

Old spellings are written straight into the database as the resolver wrote them
(tests/integration/ledger/test_renormalise.py explains how): the keyed HMAC and the encrypted
value of what the old rule made of the typed number."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from consent.crypto.keys import KeyRing
from consent.db.database import Database
from tests.conftest import Catalog
from tests.support.stored_identifiers import (
    customer_subject,
    lookup_subject,
    renormalise,
    store_identifier,
)

pytestmark = pytest.mark.integration

# What the rule before this one made of "+49 030 1234567" and "+39 06 1234 5678" (decorations
# dropped, every digit kept).
OLD_BERLIN = "+490301234567"
ROME = "+390612345678"


async def _lookup(catalog: Catalog, value: str) -> Any:
    return await lookup_subject(catalog, "phone", value)


def _renormalise(database_dsn: str, keys_dir: Path, tmp_path: Path) -> str:
    done = renormalise(database_dsn, keys_dir, tmp_path)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


async def test_the_trunk_prefix_after_the_country_code_is_the_same_number(
    catalog: Catalog,
) -> None:
    """Germany, the UK and France drop the 0 after the country code; Italy's is part of the
    number: `+39 6 1234 5678` is another number than `+39 06 1234 5678`."""
    for typed, others in (
        ("+49 030 1234567", ("+49 30 1234567", "+49 (0)30 1234567", "0049 030-1234567")),
        ("+44 020 7946 0018", ("+44 20 7946 0018", "+442079460018")),
        ("+33 01 23 45 67 89", ("+33 1 23 45 67 89",)),
        ("+39 06 1234 5678", (ROME,)),
    ):
        written = await catalog.consent(
            identifier={"type": "phone", "value": typed},
            choices=[{"purpose": "analytics", "choice": "granted"}],
        )
        for other in (typed, *others):
            assert await _lookup(catalog, other) == written["subject_id"], (typed, other)
    assert await _lookup(catalog, "+39 6 1234 5678") is None
    # A number libphonenumber calls impossible is taken as before.
    response = await catalog.client.post(
        "/v1/subjects/lookup",
        json={"identifier": {"type": "phone", "value": "+1 555 0100"}},
        headers=catalog.h,
    )
    assert response.status_code == 404, response.text


async def test_a_number_stored_with_its_trunk_zero_is_found_after_renormalise(
    catalog: Catalog,
    db: Database,
    keyring: KeyRing,
    database_dsn: str,
    keys_dir: Path,
    tmp_path: Path,
) -> None:
    """The old rule stored `+49 030 1234567` as +490301234567: a lookup by today's spelling
    misses that person until the command re-spells the stored value. An Italian number keeps
    its 0 and is left alone."""
    berlin = await customer_subject(catalog, "c-berlin")
    rome = await customer_subject(catalog, "c-rome")
    await store_identifier(db, keyring, catalog.tenant, berlin, "phone", OLD_BERLIN)
    await store_identifier(db, keyring, catalog.tenant, rome, "phone", ROME)
    assert await _lookup(catalog, "+49 30 1234567") is None

    assert _renormalise(database_dsn, keys_dir, tmp_path) == (
        "checked 2 identifiers: 1 re-spelt, 0 linked, 0 refused"
    )
    for spelling in ("+49 30 1234567", "+49 030 1234567", "+49301234567"):
        assert await _lookup(catalog, spelling) == berlin, spelling
    assert await _lookup(catalog, "+39 06 1234 5678") == rome
    async with db.system() as conn:
        old = await conn.fetchval(
            "select count(*) from subject_identifier where lookup_hmac = $1",
            keyring.lookup_digest(catalog.tenant.id, "phone", OLD_BERLIN),
        )
    assert old == 0
    assert _renormalise(database_dsn, keys_dir, tmp_path) == (
        "checked 2 identifiers: 0 re-spelt, 0 linked, 0 refused"
    )


async def test_the_old_spelling_and_the_new_one_of_one_number_are_linked(
    catalog: Catalog,
    db: Database,
    keyring: KeyRing,
    database_dsn: str,
    keys_dir: Path,
    tmp_path: Path,
) -> None:
    """The person arrived once under the old rule (+490301234567) and again since, as
    `+49 30 1234567` (a second subject): the command links the two (the older survives)."""
    first = await customer_subject(catalog, "c-1")
    await store_identifier(db, keyring, catalog.tenant, first, "phone", OLD_BERLIN)
    second = await catalog.consent(
        identifier={"type": "phone", "value": "+49 30 1234567"},
        choices=[{"purpose": "ads", "choice": "granted"}],
    )
    assert second["subject_id"] != first

    assert _renormalise(database_dsn, keys_dir, tmp_path) == (
        "checked 2 identifiers: 0 re-spelt, 1 linked, 0 refused"
    )
    assert await _lookup(catalog, "+49 030 1234567") == first
    state = await catalog.client.get(f"/v1/subjects/{first}/consents", headers=catalog.h)
    assert state.status_code == 200, state.text
    assert {c["purpose"] for c in state.json()["consents"]} >= {"newsletter", "ads"}


async def test_decisions_and_audiences_find_the_number_by_either_spelling(
    catalog: Catalog,
) -> None:
    written = await catalog.consent(
        identifier={"type": "phone", "value": "+49 030 1234567"},
        choices=[{"purpose": "analytics", "choice": "granted"}],
    )
    assert written["subject_id"]
    for spelling in ("+49 30 1234567", "+49 030 1234567"):
        response = await catalog.client.post(
            "/v1/decisions",
            json={
                "subject": {"identifier": {"type": "phone", "value": spelling}},
                "action": "web.analytics",
                "context": {"requester": "test-system"},
            },
            headers=catalog.h,
        )
        assert response.status_code == 200, response.text
        assert response.json()["allow"] is True, (spelling, response.text)

    header = {"action": "web.analytics", "context": {"requester": "esp"}, "output": "all"}
    members: list[dict[str, Any]] = [
        {"type": "phone", "value": v}
        for v in ("+49 30 1234567", "+49 030 1234567", "0049 (0)30 1234567", "+49 31 1234567")
    ]
    lines = [json.dumps(header), *(json.dumps(m) for m in members)]
    response = await catalog.client.post(
        "/v1/audiences/filter",
        content="\n".join(lines).encode() + b"\n",
        headers={**catalog.h, "content-type": "application/x-ndjson"},
    )
    assert response.status_code == 200, response.text
    *results, _summary = [json.loads(line) for line in response.text.splitlines() if line]
    assert [r["allow"] for r in results] == [True, True, True, False]
