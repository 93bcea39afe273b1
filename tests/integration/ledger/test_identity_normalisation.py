"""Identifier normalisation as a customer meets it: the same address or number in another
spelling finds the same person, another address never does."""

from __future__ import annotations

from typing import Any

import idna
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consent.subjects.identifiers import InvalidIdentifier, normalize
from tests.conftest import Catalog

pytestmark = pytest.mark.integration


async def _grant(catalog: Catalog, id_type: str, value: str) -> str:
    written = await catalog.consent(
        identifier={"type": id_type, "value": value},
        choices=[{"purpose": "newsletter", "choice": "granted"}],
    )
    return str(written["subject_id"])


async def _lookup(catalog: Catalog, id_type: str, value: str) -> Any:
    return await catalog.client.post(
        "/v1/subjects/lookup",
        json={"identifier": {"type": id_type, "value": value}},
        headers=catalog.h,
    )


async def test_an_internationalised_domain_is_one_address_in_unicode_and_in_punycode(
    catalog: Catalog,
) -> None:
    """`straße.de` is `xn--strae-oqa.de` (IDNA 2008, what registries and mail systems use):
    a grant given under one spelling is found by the other. `strasse.de` is another domain,
    so another person: never her grant (IDNA 2003 mapped both to `strasse.de`)."""
    subject = await _grant(catalog, "email", "Anna@Straße.de")
    for spelling in ("anna@xn--strae-oqa.de", "ANNA@XN--STRAE-OQA.DE", "anna@STRAẞE.de"):
        found = await _lookup(catalog, "email", spelling)
        assert found.status_code == 200, (spelling, found.text)
        assert found.json()["subject_id"] == subject
    other = await _lookup(catalog, "email", "anna@strasse.de")
    assert other.status_code == 404, other.text
    assert await _grant(catalog, "email", "anna@strasse.de") != subject


async def test_an_invisible_character_in_an_e_mail_address_is_refused(catalog: Catalog) -> None:
    """A zero-width space pasted along with an address would make it another person, whose
    withdrawal the real address never sees: refused (400, naming the field), nothing written."""
    for value in ("ann\u200b@example.com", "ann@exa\u200dmple.com", "ann@exam\u00adple.com"):
        response = await catalog.client.post(
            "/v1/consents",
            json={
                "identifier": {"type": "email", "value": value},
                "choices": [{"purpose": "newsletter", "choice": "granted"}],
                "notice_version_id": catalog.versions[1],
                "surface": "banner",
                "channel": "web",
            },
            headers=catalog.h,
        )
        assert response.status_code == 400, (value, response.text)
        assert [e["field"] for e in response.json()["errors"]] == ["identifier.value"]
    assert (await _lookup(catalog, "email", "ann@example.com")).status_code == 404


async def test_a_phone_number_with_its_trunk_prefix_is_the_same_number(catalog: Catalog) -> None:
    """Germans write +49 30 123456 as "+49 (0)30 123456" (the 0 is dialled only at home),
    and Japanese input methods type a number in full-width digits: each is the E.164 number
    it stands for, not another subject or a refusal."""
    berlin = await _grant(catalog, "phone", "+49 (0)30 123456")
    # ... also with the dashes word processors and phone apps put in (en dash, minus sign).
    for spelling in (
        "+4930123456",
        "0049 30 123456",
        "0049 (0) 30-123456",
        "+49 30\u2013123\u2212456",
    ):
        found = await _lookup(catalog, "phone", spelling)
        assert found.status_code == 200, (spelling, found.text)
        assert found.json()["subject_id"] == berlin
    full_width = str.maketrans({c: chr(ord(c) + 0xFEE0) for c in "+0123456789"})
    tokyo = await _grant(catalog, "phone", "+81 90-1234-5678".translate(full_width))
    found = await _lookup(catalog, "phone", "+81 90 1234 5678")
    assert found.status_code == 200, found.text
    assert found.json()["subject_id"] == tokyo


async def test_what_stays_another_identifier_or_is_refused(catalog: Catalog) -> None:
    """No provider's private rules are guessed: a `+tag` or a dot in the local part is another
    address. A national number without its country code, or one with letters, is refused
    (400): the ledger cannot know which country's number it is."""
    ann = await _grant(catalog, "email", "ann@example.com")
    for other in ("ann+shop@example.com", "a.nn@example.com"):
        assert await _grant(catalog, "email", other) != ann
    for number in ("030 123456", "+1-800-FLOWERS", "(0)30 123456"):
        response = await _lookup(catalog, "phone", number)
        assert response.status_code == 400, (number, response.text)


# Latin with umlauts and sharp s (both cases), Greek sigma (medial, final, capital) and a capital
# alpha, a combining acute accent, Japanese.
_LABEL_CHARS = "abzAZ09-äöüÄÖÜßẞ\u03c3\u03c2\u03a3\u0391éE\u0301例え"


def _normalised(value: str) -> str | None:
    try:
        return normalize("email", value)
    except InvalidIdentifier:
        return None


@pytest.mark.unit
@settings(max_examples=2000, deadline=None)
@given(labels=st.lists(st.text(alphabet=_LABEL_CHARS, min_size=1, max_size=12), min_size=2))
def test_the_domain_is_spelt_as_uts46_non_transitional_spells_it(labels: list[str]) -> None:
    """Wherever the reference IDNA 2008 implementation (UTS 46, non-transitional, as browsers
    and mail systems use it) accepts a domain, the ledger spells it the same way."""
    domain = ".".join(labels)
    try:
        expected = idna.encode(domain, uts46=True, transitional=False).decode("ascii")
    except idna.IDNAError:
        return
    assert _normalised("ann@" + domain) == "ann@" + expected


_ADDRESS_CHARS = st.characters(exclude_categories=["Cs"], exclude_characters="@\n\r\t ")


@settings(max_examples=400)
@given(
    local=st.text(alphabet=_ADDRESS_CHARS, min_size=1, max_size=12),
    domain=st.lists(st.text(alphabet=_LABEL_CHARS, min_size=1, max_size=8), min_size=2, max_size=3),
)
def test_a_normalised_address_normalises_to_itself(local: str, domain: list[str]) -> None:
    """What is stored is found again: normalising a normalised value changes nothing (a
    lower-cased dotted capital I before a mark below was left out of canonical order, so the
    stored spelling and a lookup of it differed)."""
    try:
        once = normalize("email", f"{local}@{'.'.join(domain)}")
    except InvalidIdentifier:
        return
    assert normalize("email", once) == once


def test_a_lower_cased_address_is_in_canonical_order() -> None:
    once = normalize("email", "x\u0130\u0316@example.com")
    assert normalize("email", once) == once
