"""The reason codes of decisions, in words a person can read (pure; no I/O).

The policies give codes (`denied.gpc`); `policies/data/reasons.json` (data path
`consent.reasons`) gives each code its text per language. A bundle in which the serving Rego
can give a code without an English text is refused at start and on reload, so every reason a
caller or a customer sees can be explained.
"""

from __future__ import annotations

import re
from typing import Any, Final

import msgspec

from consent.decisions.engine import PolicyBundle, PolicyLoadError
from consent.decisions.schemas import ReasonText

__all__ = [
    "DEFAULT_LANGUAGE",
    "REASONS_PATH",
    "check_reason_texts",
    "choose_language",
    "reason_codes",
    "reason_texts",
    "reasons_in",
]

REASONS_PATH: Final = "consent.reasons"
DEFAULT_LANGUAGE: Final = "en"
# A reason code as a string literal of a serving module.
_CODE: Final = re.compile(r'"((?:allowed|denied)\.[a-z][a-z0-9_]*)"')
_LANGUAGE: Final = re.compile(r"[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*")
_KEEP_REVISIONS: Final = 8
_by_revision: dict[str, dict[str, dict[str, str]]] = {}


def reason_codes(bundle: PolicyBundle) -> set[str]:
    """Every reason code the serving modules can give (string literals; tests excluded)."""
    return {code for source in bundle.modules.values() for code in _CODE.findall(source)}


def reason_texts(bundle: PolicyBundle) -> dict[str, dict[str, str]]:
    """code -> {language: text}; raises PolicyLoadError when the document is malformed.
    Converted once per revision (the revision is a hash of the bundle's content)."""
    cached = _by_revision.get(bundle.revision)
    if cached is not None:
        return cached
    doc: Any = bundle.data.get(REASONS_PATH, {})
    try:
        texts = msgspec.convert(doc, dict[str, dict[str, str]])
    except msgspec.ValidationError as exc:
        raise PolicyLoadError(f"data {REASONS_PATH}: {exc}") from None
    if len(_by_revision) >= _KEEP_REVISIONS:
        _by_revision.clear()
    _by_revision[bundle.revision] = texts
    return texts


def check_reason_texts(bundle: PolicyBundle) -> None:
    """Raise PolicyLoadError unless every code the policies can give has an English text."""
    texts = reason_texts(bundle)
    missing = sorted(c for c in reason_codes(bundle) if not texts.get(c, {}).get(DEFAULT_LANGUAGE))
    if missing:
        raise PolicyLoadError(
            f"reason codes without an '{DEFAULT_LANGUAGE}' text in data {REASONS_PATH}: "
            + ", ".join(missing)
        )


def choose_language(bundle: PolicyBundle, asked: str | None, accept_language: str | None) -> str:
    """The language to answer in: `asked` if the catalogue has it, else the best of the
    Accept-Language header the catalogue has (a tag or its primary subtag), else English."""
    have = {lang.lower(): lang for texts in reason_texts(bundle).values() for lang in texts}
    wanted: list[str] = []
    if asked:
        wanted.append(asked)
    if accept_language:
        ranked: list[tuple[float, int, str]] = []
        for i, part in enumerate(accept_language.split(",")):
            tag, _, params = part.strip().partition(";")
            q = 1.0
            if params.strip().startswith("q="):
                try:
                    q = float(params.strip()[2:])
                except ValueError:
                    q = 0.0
            if q > 0 and _LANGUAGE.fullmatch(tag.strip()):
                ranked.append((-q, i, tag.strip()))
        wanted += [tag for _, _, tag in sorted(ranked)]
    for tag in wanted:
        for candidate in (tag.lower(), tag.lower().split("-")[0]):
            if candidate in have:
                return have[candidate]
    return DEFAULT_LANGUAGE


def reasons_in(bundle: PolicyBundle, language: str) -> list[ReasonText]:
    """Every code's text in `language` (English where it has none), sorted by code."""
    return [
        ReasonText(
            code=code,
            allow=code.startswith("allowed."),
            text=texts.get(language) or texts[DEFAULT_LANGUAGE],
        )
        for code, texts in sorted(reason_texts(bundle).items())
        if texts.get(DEFAULT_LANGUAGE)
    ]
