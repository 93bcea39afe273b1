"""Every reason code a decision can carry has words a person can read, in English and German;
a policy that gives a code without an English text is refused."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from consent.config import Settings
from consent.decisions.engine import PolicyBundle, PolicyLoadError, default_policy_root
from consent.decisions.policy import PolicyRuntime, check_policy
from consent.decisions.reasons import (
    choose_language,
    reason_codes,
    reason_texts,
    reasons_in,
)

SHIPPED = PolicyBundle.load(default_policy_root())
NEW_RULE = """
# METADATA
# title: Quiet hours
# custom:
#   error_id: denied.quiet_hours
denials contains "denied.quiet_hours" if {
\tinput.subject.gpc == "quiet hours"
}
"""


@pytest.fixture
def root(tmp_path: Path) -> Path:
    copy = tmp_path / "policies"
    shutil.copytree(default_policy_root(), copy)
    return copy


def _add_rule(root: Path) -> None:
    rego = root / "consent" / "decision.rego"
    rego.write_text(rego.read_text() + NEW_RULE)


def _add_text(root: Path, code: str, texts: dict[str, str]) -> None:
    path = root / "data" / "reasons.json"
    doc = json.loads(path.read_text())
    doc["value"][code] = texts
    path.write_text(json.dumps(doc))


@pytest.mark.unit
def test_every_code_the_policy_gives_has_english_and_german_words_and_no_text_is_stale() -> None:
    codes, texts = reason_codes(SHIPPED), reason_texts(SHIPPED)
    assert len(codes) == 16
    assert set(texts) == codes
    for code in codes:
        assert texts[code]["en"].strip(), code
        assert texts[code]["de"].strip(), code
        assert texts[code]["en"] != texts[code]["de"], code


@pytest.mark.unit
def test_the_child_reason_explains_every_rule_that_gives_it() -> None:
    """`denied.child` is given below the digital consent age without a parent, to a Californian
    minor under 16 without their own opt-in to a sale (a parent cannot give it for a teen), and
    to a US child under 13 whose parent did not consent separately to disclosure to third
    parties. Told only "a parent has not consented", a business asks the wrong person."""
    texts = reason_texts(SHIPPED)["denied.child"]
    assert "parent" in texts["en"]
    assert "own opt-in" in texts["en"]
    assert "third parties" in texts["en"]
    assert "Eltern" in texts["de"]
    assert "eigene" in texts["de"]
    assert "Dritte" in texts["de"]


@pytest.mark.unit
def test_allowed_consent_does_not_claim_consent_to_purposes_on_other_bases() -> None:
    """An action whose purposes rely on consent and on a contract is allowed with both codes;
    "consented to every purpose this needs" would then say more than the ledger holds."""
    texts = reason_texts(SHIPPED)["allowed.consent"]
    assert "relies on consent" in texts["en"]
    assert "Einwilligung erfordern" in texts["de"]


@pytest.mark.unit
def test_a_policy_giving_a_code_without_words_is_refused(root: Path) -> None:
    _add_rule(root)
    with pytest.raises(PolicyLoadError, match=r"denied\.quiet_hours"):
        check_policy(root)
    _add_text(root, "denied.quiet_hours", {"de": "Ruhezeit."})  # no English: still refused
    with pytest.raises(PolicyLoadError, match=r"denied\.quiet_hours"):
        check_policy(root)
    _add_text(root, "denied.quiet_hours", {"en": "It is the customer's quiet hours."})
    assert "denied.quiet_hours" in reason_codes(check_policy(root))


async def test_a_running_service_refuses_such_a_reload_and_keeps_its_words(root: Path) -> None:
    runtime = await PolicyRuntime.open(Settings(policy_dir=root))
    try:
        before = runtime.revision
        _add_rule(root)
        with pytest.raises(PolicyLoadError, match=r"denied\.quiet_hours"):
            await runtime.reload()
        assert runtime.revision == before
        _add_text(root, "denied.quiet_hours", {"en": "It is the customer's quiet hours."})
        assert await runtime.reload() != before
        served = {r.code: r.text for r in reasons_in(runtime.engine.bundle, "de")}
        # No German text yet: English stands in, so no code is ever left unexplained.
        assert served["denied.quiet_hours"] == "It is the customer's quiet hours."
    finally:
        await runtime.aclose()


@pytest.mark.unit
@pytest.mark.parametrize(
    ("lang", "accept", "expected"),
    [
        (None, None, "en"),
        ("de", None, "de"),
        ("DE", "en", "de"),
        ("de-AT", None, "de"),
        ("fr", None, "en"),
        (None, "fr-CH, fr;q=0.9, de;q=0.8, en;q=0.5", "de"),
        (None, "en;q=0.4, de-CH;q=0.7", "de"),
        (None, "de;q=0, en", "en"),
        (None, "*;q=0.5, de;q=bad", "en"),
        ("fr", "de", "de"),
    ],
)
def test_the_language_is_the_asked_one_else_the_best_accepted_else_english(
    lang: str | None, accept: str | None, expected: str
) -> None:
    assert choose_language(SHIPPED, lang, accept) == expected


@pytest.mark.unit
@given(st.one_of(st.none(), st.text(max_size=40)), st.one_of(st.none(), st.text(max_size=80)))
def test_any_header_gives_a_language_the_catalogue_has(
    lang: str | None, accept: str | None
) -> None:
    chosen = choose_language(SHIPPED, lang, accept)
    assert chosen in {"en", "de"}
    assert all(r.text for r in reasons_in(SHIPPED, chosen))
