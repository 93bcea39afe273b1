"""The texts a person reads in a problem (RFC 9457) and on its page, per language.

One module per language (`en`, `de`), each with the same keys: `PROBLEMS` (slug -> title, page
text) and `DETAILS` (detail key -> a `detail` or field message, which may name values as
`{placeholders}`: `Localized`). English is the fallback. Which language
a request gets is `negotiate(Accept-Language)`, cached by header value: answering an error
costs no parsing for a header seen before, and none at all without the header. msgspec's and
Litestar's field messages are translated by their shape (`consent.locales.fields`, with the
templates in the language's module, e.g. `de.FIELD_MESSAGES`).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Final, Self

from consent.locales import de, en

__all__ = [
    "DEFAULT_LANGUAGE",
    "DETAILS",
    "LANGUAGES",
    "PROBLEMS",
    "Localized",
    "localized",
    "negotiate",
    "plain",
    "problem_texts",
]

DEFAULT_LANGUAGE: Final = "en"
# language -> slug -> (title, page text); language -> detail key -> detail
PROBLEMS: Final[dict[str, dict[str, tuple[str, str]]]] = {"en": en.PROBLEMS, "de": de.PROBLEMS}
DETAILS: Final[dict[str, dict[str, str]]] = {"en": en.DETAILS, "de": de.DETAILS}
LANGUAGES: Final = tuple(PROBLEMS)
# Longer Accept-Language values are read only this far (browsers send a few dozen bytes).
_MAX_HEADER: Final = 500
_FALLBACK_SLUG: Final = "internal-error"
# English text -> detail key, for the texts that name no value (`localized`)
_KEYS_BY_TEXT: Final = {text: key for key, text in en.DETAILS.items() if "{" not in text}


class Localized(str):  # noqa: SLOT000 - a str cannot have slotted attributes
    """A `detail` or field message in English that knows its catalogue key (and the values its
    text names), so a problem can give it in the asker's language; everywhere else (logs,
    `str(exc)`, tests) it is the English text. `Localized("purpose-exists", key="analytics")`
    is "Purpose 'analytics' exists.": each catalogue's text names the same `{placeholders}`
    (tests/unit/foundation/test_localized_catalogue.py), filled with the same values."""

    key: str
    params: dict[str, object]

    def __new__(cls, key: str, /, **params: object) -> Self:
        # An unknown key, or a placeholder without its value, fails where the text is made.
        text = super().__new__(cls, en.DETAILS[key].format_map(params))
        text.key = key
        text.params = params
        return text

    def __getnewargs_ex__(self) -> tuple[tuple[str], dict[str, object]]:
        return (self.key,), self.params  # copy and pickle make it again from its key

    def in_language(self, language: str) -> str:
        template = DETAILS.get(language, en.DETAILS).get(self.key) or en.DETAILS[self.key]
        return template.format_map(self.params)


def localized(text: str) -> str:
    """The `Localized` whose English text is `text` (a catalogue text naming no value, e.g. a
    message another module words in English), else `text` itself."""
    key = _KEYS_BY_TEXT.get(text)
    return text if key is None else Localized(key)


def plain(text: str) -> str:
    """`text` as a plain `str` (a `Localized` gives its English text): for what is encoded
    with msgspec outside a problem response, which takes no subclass of `str`."""
    return text if type(text) is str else str.__str__(text)


def problem_texts(slug: str, language: str) -> tuple[str, str]:
    """(title, page text) of a problem type in `language`, English where it has none; an
    unknown slug gets the texts of `internal-error`."""
    english = en.PROBLEMS.get(slug) or en.PROBLEMS[_FALLBACK_SLUG]
    return PROBLEMS.get(language, en.PROBLEMS).get(slug) or english


def negotiate(accept_language: str | None) -> str:
    """The language of the catalogue an Accept-Language header prefers (by weight, then by
    order; a regional tag such as `de-AT` matches `de`, `*` matches English), else English."""
    if not accept_language:
        return DEFAULT_LANGUAGE
    return _negotiate(accept_language[:_MAX_HEADER])


@lru_cache(maxsize=256)
def _negotiate(header: str) -> str:
    chosen, best = DEFAULT_LANGUAGE, 0.0
    for item in header.split(","):
        tag, _, params = item.partition(";")
        primary = tag.strip().split("-", 1)[0].lower()
        language = DEFAULT_LANGUAGE if primary == "*" else primary
        if language not in PROBLEMS:
            continue
        weight = _weight(params)
        if weight > best:  # the first of equal weights wins
            chosen, best = language, weight
    return chosen


def _weight(params: str) -> float:
    """The `q` of a language range's parameters (1 when absent, 0 when malformed)."""
    for param in params.split(";"):
        name, _, value = param.partition("=")
        if name.strip().lower() == "q":
            try:
                weight = float(value.strip())
            except ValueError:
                return 0.0
            return weight if 0.0 <= weight <= 1.0 else 0.0
    return 1.0
