"""The `detail` and field-message catalogue (`consent.locales`, `DETAILS`): every language has
every key, each text names exactly the placeholders of the English one (a value such as a
purpose's key is the same in every language), and `Localized` is the English text wherever it
is used as a `str`, and the asker's language in a problem."""

from __future__ import annotations

import copy
import pickle
import string

import pytest

from consent import locales
from consent.locales import Localized, localized, plain

pytestmark = pytest.mark.unit


def _placeholders(text: str) -> list[str]:
    return sorted(name for _, name, _, _ in string.Formatter().parse(text) if name is not None)


@pytest.mark.parametrize("key", sorted(locales.DETAILS["en"]))
def test_every_language_has_the_key_with_the_same_placeholders(key: str) -> None:
    english = locales.DETAILS["en"][key]
    names = _placeholders(english)
    assert all(name.isidentifier() for name in names), key  # named, never positional
    values = {name: f"<{name}>" for name in names}
    for language in locales.LANGUAGES:
        text = locales.DETAILS[language].get(key)
        assert text is not None, (language, key)
        assert text.strip(), (language, key)
        assert _placeholders(text) == names, (language, key)
        rendered = Localized(key, **values).in_language(language)  # no stray brace either
        assert all(value in rendered for value in values.values()), (language, key)
        if language != "en":  # translated, not copied
            assert text != english, (language, key)


def test_a_localized_text_is_its_english_text_with_its_values() -> None:
    exists = Localized("purpose-exists", key="analytics")
    assert exists == "Purpose 'analytics' exists."
    assert str(exists) == "Purpose 'analytics' exists."
    assert f"{exists}" == "Purpose 'analytics' exists."
    assert exists.in_language("de") == "Der Zweck 'analytics' existiert bereits."
    assert exists.in_language("fr") == "Purpose 'analytics' exists."  # no catalogue: English
    # A value is copied, never read as a template.
    braces = Localized("unknown-purpose", purpose="{key}")
    assert braces.in_language("de") == "unbekannter Zweck '{key}'"
    assert Localized("cursor-not-ours") == "not a cursor returned by this API"


def test_a_text_without_its_value_or_with_an_unknown_key_fails_where_it_is_made() -> None:
    with pytest.raises(KeyError):
        Localized("purpose-exists")
    with pytest.raises(KeyError):
        Localized("no-such-detail-key")


def test_a_localized_text_survives_copy_and_pickle() -> None:
    scope = Localized("key-lacks-scope", scope="read")
    for again in (copy.deepcopy(scope), pickle.loads(pickle.dumps(scope))):  # noqa: S301
        assert isinstance(again, Localized)
        assert again == scope
        assert again.in_language("de") == "Diesem API-Schlüssel fehlt der Scope 'read'."


def test_an_english_text_from_another_module_finds_its_key() -> None:
    found = localized("not an e-mail address")  # consent.subjects.identifiers' words
    assert isinstance(found, Localized)
    assert found.in_language("de") == "keine E-Mail-Adresse"
    assert localized("no such text") == "no such text"
    assert not isinstance(localized("no such text"), Localized)


def test_plain_is_a_str_that_msgspec_can_encode() -> None:
    text = plain(Localized("key-lacks-scope", scope="read"))
    assert type(text) is str
    assert text == "This API key lacks the 'read' scope."
