"""`consent identifiers renormalise`: stored e-mail and phone identifiers re-spelt under the
current normalisation rules (consent/subjects/identifiers.py), so that a lookup by the current
spelling finds the person the ledger already knows.

Identifiers are written here straight into the database, with the tenant's real lookup key and
the subject's real data key, as the resolver writes them (consent/subjects/resolver.py). What
the resolver encrypts is the value as normalised at the time (never the value as typed), so
what the command can read back is that normalised value. The rules before commit 05ae932
(`_old_email`, `_old_phone` below) lost information in it: IDNA 2003 spelt `straße.de` as
`strasse.de`, and `+49 (0)30 ...` was kept as `+49030...`. The first cannot be recovered from
the stored value (`strasse.de` is another domain), and the command never guesses; the second
can, where the country's rules make a 0 after its code a trunk prefix (Germany: yes; Italy: no,
its 0 is part of the number): see the first test. The re-spelling and linking tests store
values as typed (`store_identifier(..., stored=...)`), as a system that kept them that way would
have: the real old code never wrote such rows.
"""

from __future__ import annotations

import asyncio
import re
import signal
import subprocess
import sys
import unicodedata
import uuid
from pathlib import Path
from typing import Any

import pytest

from consent.crypto.datakeys import DataKeys
from consent.crypto.keys import KeyRing
from consent.db.database import Database
from consent.subjects.resolver import SubjectResolver
from tests.conftest import Catalog, Tenant
from tests.support.cli import ROOT, cli_env
from tests.support.locks import waiting_for_a_lock
from tests.support.stored_identifiers import (
    customer_subject,
    lookup_subject,
    renormalise,
    store_identifier,
)

pytestmark = pytest.mark.integration

_OLD_DECORATION = re.compile(r"[\s().\-/]")


def _old_email(value: str) -> str:
    """The e-mail spelling of the rules before 05ae932 (IDNA 2003: Python's `idna` codec)."""
    value = unicodedata.normalize("NFC", value.strip()).lower()
    local, _, domain = value.rpartition("@")
    return local + "@" + domain.encode("idna").decode("ascii")


def _old_phone(value: str) -> str:
    """The phone spelling of the rules before 05ae932 (a "(0)" kept as a 0)."""
    compact = _OLD_DECORATION.sub("", value.strip())
    return "+" + compact[2:] if compact.startswith("00") else compact


async def _two_with_old_spellings(catalog: Catalog, db: Database, keyring: KeyRing) -> list[str]:
    """Two subjects, in id order, each with an e-mail stored under the old rules."""
    subjects = sorted(
        [await customer_subject(catalog, "c-1"), await customer_subject(catalog, "c-2")],
        key=uuid.UUID,
    )
    for i, subject in enumerate(subjects):
        typed = f"p{i}@Straße.de"
        await store_identifier(
            db, keyring, catalog.tenant, subject, "email", _old_email(typed), stored=typed
        )
    return subjects


async def _rows(db: Database) -> list[tuple[Any, ...]]:
    """Every identifier and subject row as stored (what a run may change)."""
    async with db.system() as conn:
        ids = await conn.fetch(
            "select tenant_id, id_type, lookup_hmac, subject_id, value_enc "
            "from subject_identifier order by 1, 2, 3"
        )
        subjects = await conn.fetch("select id, merged_into from subject order by id")
        leaves = await conn.fetchval("select count(*) from audit_event")
    return [tuple(r) for r in ids] + [tuple(r) for r in subjects] + [(leaves,)]


def _summary(done: subprocess.CompletedProcess[str]) -> str:
    return done.stdout.strip().splitlines()[-1]


# -- the data the old rules wrote --------------------------------------------------------------


async def test_what_the_old_rules_lost_is_never_guessed(
    catalog: Catalog,
    db: Database,
    keyring: KeyRing,
    database_dsn: str,
    keys_dir: Path,
    tmp_path: Path,
) -> None:
    """The old rules stored `anna@strasse.de` for `Anna@Straße.de`: also a real identifier of
    other people (the domain strasse.de), so the command leaves it as it is: the person who owns
    it is still found by it, and nobody else becomes her. They stored `+49030123456` for
    `+49 (0)30 123456`: a 0 after Germany's country code is always its trunk prefix, so that one
    is re-spelt (`+4930123456`), and an Italian number's 0, part of the number, is kept."""
    subject = await customer_subject(catalog, "c-1")
    await store_identifier(
        db, keyring, catalog.tenant, subject, "email", _old_email("Anna@Straße.de")
    )
    await store_identifier(
        db, keyring, catalog.tenant, subject, "phone", _old_phone("+49 (0)30 123456")
    )
    await store_identifier(
        db, keyring, catalog.tenant, subject, "phone", _old_phone("+39 06 1234 5678")
    )

    done = renormalise(database_dsn, keys_dir, tmp_path)
    assert done.returncode == 0, done.stderr
    assert _summary(done) == "checked 3 identifiers: 1 re-spelt, 0 linked, 0 refused"
    assert await lookup_subject(catalog, "email", "anna@strasse.de") == subject
    assert await lookup_subject(catalog, "phone", "+49 30 123456") == subject
    assert await lookup_subject(catalog, "phone", "+39 06 1234 5678") == subject


async def test_an_address_the_current_rules_refuse_is_reported_by_subject_id_only(
    catalog: Catalog,
    db: Database,
    keyring: KeyRing,
    database_dsn: str,
    keys_dir: Path,
    tmp_path: Path,
) -> None:
    """The old rules took a zero-width space or soft hyphen in the local part; the current
    ones refuse it (400), so that person is no longer found by any spelling. The command
    leaves the row, counts it and names the subject, never the address."""
    subject = await customer_subject(catalog, "c-1")
    other = await customer_subject(catalog, "c-2")
    await store_identifier(
        db, keyring, catalog.tenant, subject, "email", _old_email("Ann\u200b@Example.com")
    )
    await store_identifier(
        db, keyring, catalog.tenant, other, "email", _old_email("bo\u00adb@example.com")
    )
    before = await _rows(db)

    done = renormalise(database_dsn, keys_dir, tmp_path)
    assert done.returncode == 0, done.stderr
    assert _summary(done) == "checked 2 identifiers: 0 re-spelt, 0 linked, 2 refused"
    refused = [line for line in done.stdout.splitlines() if line.startswith("refused")]
    assert sorted(refused) == sorted(
        f"refused: tenant {catalog.tenant.id} subject {s} (email): not valid under the current "
        "rules, left as it is"
        for s in (subject, other)
    )
    for value in ("ann", "bo\u00adb", "example"):
        assert value not in (done.stdout + done.stderr).lower()
    assert await _rows(db) == before


async def test_a_value_the_current_rules_write_themselves_is_left_alone(
    catalog: Catalog, db: Database, database_dsn: str, keys_dir: Path, tmp_path: Path
) -> None:
    """What today's rules write is current: even a spelling whose lower case needs reordering
    (a dotted capital I with a mark below) is stored in the order a lookup computes."""
    spelling = "x\u0130\u0316@example.com"
    written = await catalog.consent(
        identifier={"type": "email", "value": spelling},
        choices=[{"purpose": "newsletter", "choice": "granted"}],
    )
    before = await _rows(db)

    done = renormalise(database_dsn, keys_dir, tmp_path)
    assert done.returncode == 0, done.stderr
    assert _summary(done) == "checked 1 identifier: 0 re-spelt, 0 linked, 0 refused"
    assert await _rows(db) == before
    assert await lookup_subject(catalog, "email", spelling) == written["subject_id"]


# -- re-spelling and linking -------------------------------------------------------------------


async def test_a_stored_spelling_is_respelt_and_found_by_the_current_one(
    catalog: Catalog,
    db: Database,
    keyring: KeyRing,
    database_dsn: str,
    keys_dir: Path,
    tmp_path: Path,
) -> None:
    subject = await customer_subject(catalog, "c-1")
    email, phone = "Anna@Straße.de", "+49 (0)30 123456"
    await store_identifier(
        db, keyring, catalog.tenant, subject, "email", _old_email(email), stored=email
    )
    await store_identifier(
        db, keyring, catalog.tenant, subject, "phone", _old_phone(phone), stored=phone
    )
    assert await lookup_subject(catalog, "email", "anna@xn--strae-oqa.de") is None

    done = renormalise(database_dsn, keys_dir, tmp_path, "--batch-size", "1")
    assert done.returncode == 0, done.stderr
    assert _summary(done) == "checked 2 identifiers: 2 re-spelt, 0 linked, 0 refused"
    assert "checked: 2/2" in done.stderr  # the progress line (not a terminal: the final one)
    for id_type, spelling in (
        ("email", "anna@xn--strae-oqa.de"),
        ("email", email),
        ("phone", "+4930123456"),
        ("phone", phone),
    ):
        assert await lookup_subject(catalog, id_type, spelling) == subject, spelling
    # The old spellings are gone: strasse.de is someone else's domain.
    assert await lookup_subject(catalog, "email", "anna@strasse.de") is None
    # The value is the current spelling, under the same data key (what an access request reads).
    tid = uuid.UUID(catalog.tenant.id)
    async with db.tenant(tid) as conn:
        resolver = SubjectResolver(keyring)
        members = await resolver.group(conn, uuid.UUID(subject))
        held = await resolver.identifiers(conn, tid, members)
    assert sorted((i.type, i.value) for i in held) == [
        ("customer_id", "c-1"),
        ("email", "anna@xn--strae-oqa.de"),
        ("phone", "+4930123456"),
    ]

    again = renormalise(database_dsn, keys_dir, tmp_path)
    assert again.returncode == 0, again.stderr
    assert _summary(again) == "checked 2 identifiers: 0 re-spelt, 0 linked, 0 refused"


async def test_a_respelling_that_belongs_to_another_subject_links_the_two(
    catalog: Catalog,
    db: Database,
    keyring: KeyRing,
    database_dsn: str,
    keys_dir: Path,
    tmp_path: Path,
) -> None:
    """Anna arrived once as `Anna@Straße.de` (stored under the old spelling) and once, from
    another system, as `anna@xn--strae-oqa.de` (a second subject): one person, linked as
    `POST /v1/subjects/link` links (the older subject survives, with both histories)."""
    first = await customer_subject(catalog, "c-1")
    second = await catalog.consent(
        identifier={"type": "email", "value": "anna@xn--strae-oqa.de"},
        choices=[{"purpose": "ads", "choice": "granted"}],
    )
    email = "Anna@Straße.de"
    await store_identifier(
        db, keyring, catalog.tenant, first, "email", _old_email(email), stored=email
    )
    async with db.system() as conn:
        leaves = await conn.fetchval("select count(*) from audit_event")

    done = renormalise(database_dsn, keys_dir, tmp_path)
    assert done.returncode == 0, done.stderr
    assert _summary(done) == "checked 2 identifiers: 0 re-spelt, 1 linked, 0 refused"
    for id_type, value in (
        ("email", "anna@xn--strae-oqa.de"),
        ("email", email),
        ("customer_id", "c-1"),
    ):
        assert await lookup_subject(catalog, id_type, value) == first
    async with db.system() as conn:
        merged = await conn.fetchval(
            "select merged_into from subject where id = $1", uuid.UUID(second["subject_id"])
        )
        kinds = await conn.fetch("select kind from audit_event order by event_id offset $1", leaves)
        old = await conn.fetchval(
            "select count(*) from subject_identifier where lookup_hmac = $1",
            keyring.lookup_digest(catalog.tenant.id, "email", "anna@strasse.de"),
        )
    assert str(merged) == first
    assert [r["kind"] for r in kinds] == ["subject.linked"]
    assert old == 0
    state = await catalog.client.get(f"/v1/subjects/{first}/consents", headers=catalog.h)
    assert state.status_code == 200, state.text
    assert {c["purpose"] for c in state.json()["consents"]} >= {"newsletter", "ads"}

    again = renormalise(database_dsn, keys_dir, tmp_path)
    assert again.returncode == 0, again.stderr
    assert _summary(again) == "checked 1 identifier: 0 re-spelt, 0 linked, 0 refused"


async def test_a_dry_run_changes_nothing_and_says_what_it_would_do(
    catalog: Catalog,
    db: Database,
    keyring: KeyRing,
    database_dsn: str,
    keys_dir: Path,
    tmp_path: Path,
) -> None:
    a, b = await customer_subject(catalog, "c-1"), await customer_subject(catalog, "c-2")
    await catalog.consent(
        identifier={"type": "phone", "value": "+4930123456"},
        choices=[{"purpose": "ads", "choice": "granted"}],
    )
    phone = "+49 (0)30 123456"
    await store_identifier(
        db, keyring, catalog.tenant, a, "email", "x@strasse.de", stored="x@Straße.de"
    )
    await store_identifier(db, keyring, catalog.tenant, b, "phone", _old_phone(phone), stored=phone)
    await store_identifier(db, keyring, catalog.tenant, b, "email", "zw\u200b@example.com")
    before = await _rows(db)

    done = renormalise(database_dsn, keys_dir, tmp_path, "--dry-run")
    assert done.returncode == 0, done.stderr
    assert _summary(done) == (
        "dry run, nothing changed: checked 4 identifiers: would re-spell 1, would link 1, 1 refused"
    )
    assert await _rows(db) == before


async def test_another_tenant_is_untouched_and_bad_arguments_exit_2(
    catalog: Catalog,
    other_tenant: Tenant,
    db: Database,
    keyring: KeyRing,
    database_dsn: str,
    keys_dir: Path,
    tmp_path: Path,
) -> None:
    mine = await customer_subject(catalog, "c-1")
    email = "Anna@Straße.de"
    await store_identifier(
        db, keyring, catalog.tenant, mine, "email", _old_email(email), stored=email
    )
    other_id = uuid.UUID(other_tenant.id)
    async with db.tenant(other_id) as conn:
        theirs = str(
            await conn.fetchval(
                "insert into subject (tenant_id) values ($1) returning id", other_id
            )
        )
        await DataKeys(keyring).ensure(conn, other_id, uuid.UUID(theirs))
    await store_identifier(
        db, keyring, other_tenant, theirs, "email", _old_email(email), stored=email
    )

    async def snapshot(tenant: Tenant) -> list[Any]:
        return [r for r in await _rows(db) if r[0] == uuid.UUID(tenant.id)]

    before_theirs = await snapshot(other_tenant)
    done = renormalise(database_dsn, keys_dir, tmp_path, "--tenant", catalog.tenant.id)
    assert done.returncode == 0, done.stderr
    assert _summary(done) == "checked 1 identifier: 1 re-spelt, 0 linked, 0 refused"
    assert await lookup_subject(catalog, "email", "anna@xn--strae-oqa.de") == mine
    assert await snapshot(other_tenant) == before_theirs

    for args, message in (
        (("--tenant", "not-a-tenant"), "--tenant"),
        (("--tenant", str(uuid.uuid4())), "no tenant"),
        (("--batch-size", "0"), "--batch-size"),
    ):
        refused = renormalise(database_dsn, keys_dir, tmp_path, *args)
        assert refused.returncode == 2, (args, refused.stderr)
        assert message in refused.stderr
    assert await snapshot(other_tenant) == before_theirs

    everyone = renormalise(database_dsn, keys_dir, tmp_path)
    assert everyone.returncode == 0, everyone.stderr
    assert _summary(everyone) == "checked 2 identifiers: 1 re-spelt, 0 linked, 0 refused"
    assert await snapshot(other_tenant) != before_theirs


async def test_a_run_that_stops_part_way_keeps_its_batches_and_a_rerun_finishes(
    catalog: Catalog,
    db: Database,
    keyring: KeyRing,
    database_dsn: str,
    keys_dir: Path,
    tmp_path: Path,
) -> None:
    """One batch per subject; the second subject's data key cannot be unwrapped (a damaged
    row): exit 1, the first batch stays done, the second untouched; once the key is back, a
    second run finishes the work."""
    subjects = await _two_with_old_spellings(catalog, db, keyring)
    later = uuid.UUID(subjects[1])
    async with db.system() as conn:
        wrapped = await conn.fetchval(
            "select dek_wrapped from subject_key where subject_id = $1", later
        )
        damaged = bytes(wrapped[:-1]) + bytes([wrapped[-1] ^ 1])
        await conn.execute(
            "update subject_key set dek_wrapped = $2 where subject_id = $1", later, damaged
        )

    stopped = renormalise(database_dsn, keys_dir, tmp_path, "--batch-size", "1")
    assert stopped.returncode == 1, stopped.stderr
    assert "run the command again" in stopped.stderr
    assert f"subject {later}" in stopped.stderr  # which key: the operator can look at it
    assert "Traceback" not in stopped.stderr
    assert await lookup_subject(catalog, "email", "p0@xn--strae-oqa.de") == subjects[0]
    assert await lookup_subject(catalog, "email", "p1@xn--strae-oqa.de") is None
    assert await lookup_subject(catalog, "email", "p1@strasse.de") == subjects[1]

    async with db.system() as conn:
        await conn.execute(
            "update subject_key set dek_wrapped = $2 where subject_id = $1", later, wrapped
        )
    finished = renormalise(database_dsn, keys_dir, tmp_path, "--batch-size", "1")
    assert finished.returncode == 0, finished.stderr
    assert _summary(finished) == "checked 2 identifiers: 1 re-spelt, 0 linked, 0 refused"
    assert await lookup_subject(catalog, "email", "p1@xn--strae-oqa.de") == subjects[1]


async def test_an_erasure_after_a_respelling_still_clears_the_old_spellings_decisions(
    catalog: Catalog,
    db: Database,
    keyring: KeyRing,
    database_dsn: str,
    keys_dir: Path,
    tmp_path: Path,
) -> None:
    """A decision asked about an identifier the ledger did not know yet is logged with its
    keyed HMAC, which erasure clears by the subject's identifier rows (migration 0022). The
    re-spelling removes the row with the old HMAC, so it clears those decisions' HMACs first:
    else they would outlive her erasure, the last trace that the address was asked about."""
    old = "x@strasse.de"
    asked = await catalog.post(
        "/v1/decisions",
        {
            "subject": {"identifier": {"type": "email", "value": old}},
            "action": "web.analytics",
            "context": {"requester": "cdp-main"},
        },
        status=200,
    )
    subject = await customer_subject(catalog, "c-1")
    await store_identifier(db, keyring, catalog.tenant, subject, "email", old, stored="x@Straße.de")

    done = renormalise(database_dsn, keys_dir, tmp_path)
    assert done.returncode == 0, done.stderr
    assert _summary(done) == "checked 1 identifier: 1 re-spelt, 0 linked, 0 refused"
    erased = await catalog.client.delete(f"/v1/subjects/{subject}", headers=catalog.h)
    assert erased.status_code == 200, erased.text
    async with db.system() as conn:
        left = await conn.fetchval(
            "select lookup_hmac from decision_log where id = $1", uuid.UUID(asked["decision_id"])
        )
    assert left is None


async def test_identifiers_a_link_brings_into_a_checked_subject_are_checked_too(
    catalog: Catalog,
    db: Database,
    keyring: KeyRing,
    database_dsn: str,
    keys_dir: Path,
    tmp_path: Path,
) -> None:
    """Subjects are taken in id order. The link that joins the first subject (the older, so
    the survivor) with the last one moves the last one's identifiers onto the first, already
    past: they are checked in the same run, so a second run has nothing left to do."""
    tid = uuid.UUID(catalog.tenant.id)
    first = uuid.UUID("00000000-0000-4000-8000-000000000001")
    last = uuid.UUID("ffffffff-ffff-4fff-bfff-ffffffffffff")
    for sid in (first, last):  # `first` created before `last`: it survives the link
        async with db.tenant(tid) as conn:
            await conn.execute("insert into subject (id, tenant_id) values ($1, $2)", sid, tid)
            await DataKeys(keyring).ensure(conn, tid, sid)
    email, phone = "Anna@Straße.de", "+49 (0)30 123456"
    await store_identifier(
        db, keyring, catalog.tenant, str(first), "email", _old_email(email), stored=email
    )
    await store_identifier(db, keyring, catalog.tenant, str(last), "email", "anna@xn--strae-oqa.de")
    await store_identifier(
        db, keyring, catalog.tenant, str(last), "phone", _old_phone(phone), stored=phone
    )

    done = renormalise(database_dsn, keys_dir, tmp_path, "--batch-size", "1")
    assert done.returncode == 0, done.stderr
    assert _summary(done).endswith(": 1 re-spelt, 1 linked, 0 refused"), done.stdout
    assert await lookup_subject(catalog, "phone", "+4930123456") == str(first)
    assert await lookup_subject(catalog, "email", "anna@xn--strae-oqa.de") == str(first)

    again = renormalise(database_dsn, keys_dir, tmp_path)
    assert again.returncode == 0, again.stderr
    assert _summary(again) == "checked 2 identifiers: 0 re-spelt, 0 linked, 0 refused"


# -- the dry run says what a real run does -----------------------------------------------------


def _as_dry(summary: str) -> str:
    """The dry run's summary of what a real run reported as `summary`."""
    checked, _, rest = summary.partition(": ")
    respelt, linked, refused = rest.split(", ")[:3]
    return (
        f"dry run, nothing changed: {checked}: would re-spell {respelt.split()[0]}, "
        f"would link {linked.split()[0]}, {refused}"
    )


async def test_two_stored_spellings_that_become_one_are_linked_and_the_dry_run_says_so(
    catalog: Catalog,
    db: Database,
    keyring: KeyRing,
    database_dsn: str,
    keys_dir: Path,
    tmp_path: Path,
) -> None:
    """Anna is stored twice under old spellings, by two subjects, that the current rules both
    spell `anna@xn--strae-oqa.de`, which nobody holds yet. The first is re-spelt; the second
    then finds it held by the other subject, and the two are linked (nothing lost: both
    histories, every spelling finds the survivor). The dry run, which writes nothing, says
    exactly that, not "would re-spell 2"."""
    first = await customer_subject(catalog, "c-1")
    second = await catalog.consent(
        identifier={"type": "customer_id", "value": "c-2"},
        choices=[{"purpose": "ads", "choice": "granted"}],
    )
    await store_identifier(
        db, keyring, catalog.tenant, first, "email", "anna@strasse.de", stored="Anna@Straße.de"
    )
    await store_identifier(
        db,
        keyring,
        catalog.tenant,
        second["subject_id"],
        "email",
        "anna@straße.de",
        stored="anna@STRAßE.de",
    )
    before = await _rows(db)

    dry = renormalise(database_dsn, keys_dir, tmp_path, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert await _rows(db) == before
    done = renormalise(database_dsn, keys_dir, tmp_path)
    assert done.returncode == 0, done.stderr
    assert _summary(done) == "checked 2 identifiers: 1 re-spelt, 1 linked, 0 refused"
    assert _summary(dry) == _as_dry(_summary(done))

    for id_type, value in (
        ("email", "anna@xn--strae-oqa.de"),
        ("email", "Anna@Straße.de"),
        ("customer_id", "c-1"),
        ("customer_id", "c-2"),
    ):
        assert await lookup_subject(catalog, id_type, value) == first, value
    state = await catalog.client.get(f"/v1/subjects/{first}/consents", headers=catalog.h)
    assert state.status_code == 200, state.text
    assert {c["purpose"] for c in state.json()["consents"]} >= {"newsletter", "ads"}

    again = renormalise(database_dsn, keys_dir, tmp_path)
    assert _summary(again) == "checked 1 identifier: 0 re-spelt, 0 linked, 0 refused"


async def test_the_dry_run_counts_a_link_it_would_have_made_earlier_in_the_run(
    catalog: Catalog,
    db: Database,
    keyring: KeyRing,
    database_dsn: str,
    keys_dir: Path,
    tmp_path: Path,
) -> None:
    """One person, two subjects, each holding the current spelling of an old one the other
    holds: the first re-spelling links them, so the second is one person's own (re-spelt, not
    a second link). The dry run, which links nothing, still counts one link."""
    a, b = await customer_subject(catalog, "c-1"), await customer_subject(catalog, "c-2")
    email, phone = "Anna@Straße.de", "+49 (0)30 123456"
    await store_identifier(db, keyring, catalog.tenant, a, "email", _old_email(email), stored=email)
    await store_identifier(db, keyring, catalog.tenant, b, "email", "anna@xn--strae-oqa.de")
    await store_identifier(db, keyring, catalog.tenant, b, "phone", _old_phone(phone), stored=phone)
    await store_identifier(db, keyring, catalog.tenant, a, "phone", "+4930123456")

    dry = renormalise(database_dsn, keys_dir, tmp_path, "--dry-run")
    done = renormalise(database_dsn, keys_dir, tmp_path)
    assert done.returncode == 0, done.stderr
    assert _summary(done) == "checked 4 identifiers: 1 re-spelt, 1 linked, 0 refused"
    assert _summary(dry) == _as_dry(_summary(done))
    assert await lookup_subject(catalog, "phone", phone) == await lookup_subject(
        catalog, "email", email
    )


async def test_identifiers_a_link_moves_ahead_are_checked_and_reported_once(
    catalog: Catalog,
    db: Database,
    keyring: KeyRing,
    database_dsn: str,
    keys_dir: Path,
    tmp_path: Path,
) -> None:
    """Subjects are taken in id order, and a link keeps the older subject. The first subject
    (the newer one) is linked into the last: its identifiers, checked already, move onto a
    subject the run reaches later, which must not check, count or report them again."""
    tid = uuid.UUID(catalog.tenant.id)
    first = uuid.UUID("00000000-0000-4000-8000-000000000001")
    last = uuid.UUID("ffffffff-ffff-4fff-bfff-ffffffffffff")
    for sid in (last, first):  # `last` created first: it survives the link
        async with db.tenant(tid) as conn:
            await conn.execute("insert into subject (id, tenant_id) values ($1, $2)", sid, tid)
            await DataKeys(keyring).ensure(conn, tid, sid)
    phone = "+49 (0)30 123456"
    await store_identifier(
        db, keyring, catalog.tenant, str(first), "phone", _old_phone(phone), stored=phone
    )
    await store_identifier(db, keyring, catalog.tenant, str(first), "email", "zw\u200b@example.com")
    await store_identifier(db, keyring, catalog.tenant, str(last), "phone", "+4930123456")

    dry = renormalise(database_dsn, keys_dir, tmp_path, "--dry-run", "--batch-size", "1")
    done = renormalise(database_dsn, keys_dir, tmp_path, "--batch-size", "1")
    assert done.returncode == 0, done.stderr
    assert _summary(done) == "checked 3 identifiers: 0 re-spelt, 1 linked, 1 refused"
    assert _summary(dry) == _as_dry(_summary(done))
    refused = [line for line in done.stdout.splitlines() if line.startswith("refused")]
    line = (
        f"refused: tenant {tid} subject {first} (email): not valid under the current rules, "
        "left as it is"
    )
    assert refused == [line]
    assert await lookup_subject(catalog, "phone", phone) == str(last)


async def _terminate_batch(db: Database) -> bool:
    """End the connection of the batch under way (the one holding the tenant's link lock),
    as a database restart or a failover does. False: no batch was under way."""
    async with db.system() as conn:
        return bool(
            await conn.fetchval(
                "select pg_terminate_backend(pid) from pg_locks where locktype = 'advisory' "
                "and granted and pid <> pg_backend_pid() limit 1"
            )
        )


@pytest.mark.parametrize(
    ("stop", "status", "says"),
    [("ctrl-c", 130, "interrupted"), ("connection-lost", 1, "the database failed")],
)
async def test_a_run_stopped_part_way_leaves_every_batch_done_or_untouched(
    catalog: Catalog,
    db: Database,
    keyring: KeyRing,
    database_dsn: str,
    keys_dir: Path,
    tmp_path: Path,
    stop: str,
    status: int,
    says: str,
) -> None:
    """Ctrl-C, or the database connection lost part-way: the command says what happened (no
    traceback) and what to do; each batch of subjects is re-spelt whole or untouched, and a
    second run finishes the work."""
    tid = uuid.UUID(catalog.tenant.id)
    count, batch = 200, 4
    subjects = [uuid.UUID(int=(1 << 78) | i) for i in range(1, count + 1)]  # version-4 bits
    emails = {s: f"p{i}@Straße.de" for i, s in enumerate(subjects)}
    phones = {s: f"+49 (0)30 {100000 + i}" for i, s in enumerate(subjects)}
    async with db.tenant(tid) as conn:
        rows = []
        for sid in subjects:
            await conn.execute("insert into subject (id, tenant_id) values ($1, $2)", sid, tid)
            dek = await DataKeys(keyring).ensure(conn, tid, sid)
            for id_type, typed, old in (
                ("email", emails[sid], _old_email(emails[sid])),
                ("phone", phones[sid], _old_phone(phones[sid])),
            ):
                context = f"identifier/{id_type}".encode()
                enc = DataKeys.encrypt(dek, tid, sid, typed.encode(), context)
                rows.append((tid, id_type, keyring.lookup_digest(str(tid), id_type, old), sid, enc))
        await conn.executemany(
            "insert into subject_identifier (tenant_id, id_type, lookup_hmac, subject_id, "
            "value_enc) values ($1, $2, $3, $4, $5)",
            rows,
        )
    current = {
        keyring.lookup_digest(str(tid), "email", f"p{i}@xn--strae-oqa.de") for i in range(count)
    } | {keyring.lookup_digest(str(tid), "phone", f"+4930{100000 + i}") for i in range(count)}

    async def respelt() -> dict[uuid.UUID, int]:
        async with db.system() as conn:
            found = await conn.fetch(
                "select subject_id, lookup_hmac from subject_identifier where tenant_id = $1",
                tid,
            )
        done: dict[uuid.UUID, int] = {}
        for r in found:
            done[r["subject_id"]] = done.get(r["subject_id"], 0) + (r["lookup_hmac"] in current)
        return done

    env = cli_env(database_dsn, keys_dir, tmp_path / "data")
    args = ["identifiers", "renormalise", "--batch-size", str(batch)]
    held = subjects[count // 2]  # the first subject of a batch: the run stops there, no race
    async with db.system() as holder, holder.transaction():
        await holder.execute(
            "select 1 from subject_identifier where subject_id = $1 for update", held
        )
        with subprocess.Popen(
            [sys.executable, "-m", "consent", *args],
            env=env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        ) as run:
            loop = asyncio.get_running_loop()
            try:
                exited = loop.run_in_executor(None, run.wait)
                for _ in range(24):  # each look lasts ~5 s
                    if await waiting_for_a_lock(db, exited, locktype=None):
                        break
                    assert not exited.done(), "the run ended before the held subject"
                if stop == "ctrl-c":
                    run.send_signal(signal.SIGINT)
                else:
                    assert await _terminate_batch(db)
                out, err = await asyncio.wait_for(loop.run_in_executor(None, run.communicate), 60)
            finally:
                if run.poll() is None:  # a failed assertion: never leave it waiting on the lock
                    run.kill()
    assert run.returncode == status, (out, err)
    assert "Traceback" not in err
    assert says in err
    assert "run the command again" in err
    done = await respelt()
    assert set(done.values()) <= {0, 2}  # a subject is re-spelt whole or not at all
    finished = [s for s in subjects if done[s] == 2]
    assert finished == subjects[: len(finished)]  # batches in id order: a prefix
    assert len(finished) % batch == 0
    assert len(finished) == count // 2, "not stopped at the held subject"

    again = renormalise(database_dsn, keys_dir, tmp_path, "--batch-size", str(batch))
    assert again.returncode == 0, again.stderr
    left = 2 * (count - len(finished))
    assert (
        _summary(again) == f"checked {2 * count} identifiers: {left} re-spelt, 0 linked, 0 refused"
    )
    assert set((await respelt()).values()) == {2}


async def test_a_damaged_stored_value_is_reported_by_subject_id_and_the_run_goes_on(
    catalog: Catalog,
    db: Database,
    keyring: KeyRing,
    database_dsn: str,
    keys_dir: Path,
    tmp_path: Path,
) -> None:
    """One identifier's stored value does not decrypt (a damaged row): the run does not stop
    at it (a second run would stop there again, for ever); it leaves it, names its subject
    (never a value) and re-spells the others."""
    subjects = await _two_with_old_spellings(catalog, db, keyring)
    damaged = uuid.UUID(subjects[0])
    async with db.system() as conn:
        await conn.execute(
            "update subject_identifier set value_enc = "
            "overlay(value_enc placing '\\x00'::bytea from 20 for 1) where subject_id = $1",
            damaged,
        )

    done = renormalise(database_dsn, keys_dir, tmp_path)
    assert done.returncode == 0, done.stderr
    assert _summary(done) == (
        "checked 2 identifiers: 1 re-spelt, 0 linked, 0 refused, 1 unreadable"
    )
    line = (
        f"unreadable: tenant {catalog.tenant.id} subject {damaged} (email): the stored value "
        "does not decrypt under the subject's data key (damaged), left as it is"
    )
    assert [x for x in done.stdout.splitlines() if x.startswith("unreadable")] == [line]
    assert await lookup_subject(catalog, "email", "p1@xn--strae-oqa.de") == subjects[1]
    assert await lookup_subject(catalog, "email", "p0@strasse.de") == subjects[0]
