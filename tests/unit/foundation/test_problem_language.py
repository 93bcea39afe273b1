"""Problem texts come from one catalogue per language (consent.locales): every problem type has
a German title and page text (a new type cannot be added without one), every catalogue has the
same keys, and Accept-Language picks the language (English when the service lacks the asked
one)."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import consent
from consent import locales
from consent.errors import PROBLEM_TYPES, ProblemError

pytestmark = pytest.mark.unit


def _raised_slugs() -> set[str]:
    for module in pkgutil.walk_packages(consent.__path__, "consent."):
        if module.name != "consent.__main__":
            importlib.import_module(module.name)
    found: set[str] = set()
    pending = [ProblemError]
    while pending:
        cls = pending.pop()
        found.add(cls.slug)
        pending += cls.__subclasses__()
    return found


def test_every_problem_type_has_a_german_title_and_page_text() -> None:
    slugs = set(PROBLEM_TYPES) | _raised_slugs()
    assert "audit-pending" in slugs  # the walk found problems defined outside errors.py
    missing = sorted(
        slug
        for slug in slugs
        if not all(text.strip() for text in locales.PROBLEMS["de"].get(slug, ("", "")))
    )
    assert missing == []
    # Translated, not copied: a German title that is the English one is a forgotten text.
    untranslated = sorted(
        slug for slug in slugs if locales.PROBLEMS["de"][slug][0] == locales.PROBLEMS["en"][slug][0]
    )
    assert untranslated == []


def test_every_catalogue_has_exactly_the_keys_of_the_english_one() -> None:
    assert set(locales.LANGUAGES) == {"en", "de"}
    assert set(locales.PROBLEMS) == set(locales.DETAILS)
    for language in locales.LANGUAGES:
        assert set(locales.PROBLEMS[language]) == set(locales.PROBLEMS["en"]), language
        assert set(locales.DETAILS[language]) == set(locales.DETAILS["en"]), language
        assert all(text.strip() for text in locales.DETAILS[language].values()), language


@pytest.mark.parametrize(
    ("header", "language"),
    [
        (None, "en"),
        ("", "en"),
        ("de", "de"),
        ("de-DE,de;q=0.9,en-US;q=0.8,en;q=0.7", "de"),  # a German browser
        ("DE-at", "de"),
        ("fr-FR, fr;q=0.9, de;q=0.5", "de"),  # the best language the service has
        ("en;q=0.5, de;q=0.9", "de"),  # by weight, not by order
        ("en, de", "en"),  # equal weights: the first
        ("de;q=0, en", "en"),  # q=0 means "not this one"
        ("de;q=0", "en"),
        ("fr, es", "en"),  # none the service has: English
        ("de;q=abc, en;q=0.1", "en"),  # a malformed weight counts as none
        ("de;q=2", "en"),
        ("fr, *;q=0.5, de;q=0.1", "en"),  # `*` is the service's default
        ("de ; q = 0.8 , en ; q = 0.3", "de"),
        ("dex, deutsch", "en"),  # only the primary subtag `de` matches
        (",;,;=,", "en"),
    ],
)
def test_accept_language_chooses_the_language(header: str | None, language: str) -> None:
    assert locales.negotiate(header) == language


def test_static_details_are_given_in_the_asked_language() -> None:
    detail = locales.Localized("empty-body")
    assert detail == "The request body is empty."  # logs and str(exc) stay English
    assert detail.in_language("de") == "Der Anfrageinhalt ist leer."
    assert detail.in_language("en") == "The request body is empty."
    assert detail.in_language("xx") == "The request body is empty."
    with pytest.raises(KeyError):
        locales.Localized("no-such-detail")
