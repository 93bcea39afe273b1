"""A customer checks a record of the log in their own browser: WebCrypto, nothing sent."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest

from consent.audit.integrator import Integrator
from tests.integration.conftest import Catalog

pytestmark = [pytest.mark.browser, pytest.mark.integration]


async def _proof(client: Any, catalog: Catalog, integrator: Integrator) -> tuple[str, str, str]:
    written = await catalog.consent(
        identifier={"type": "device", "value": "browser-1"},
        choices=[{"purpose": "analytics", "choice": "granted"}],
    )
    await integrator.integrate_all()
    info = (await client.get(f"/v1/audit/events/{written['event_id']}", headers=catalog.h)).json()
    proof = await client.get(f"/v1/audit/events/{written['event_id']}/proof", headers=catalog.h)
    return info["leaf"], proof.text, info["log"]


async def _check(page: Any, base: str, leaf: str, proof: str, log: str, lang: str = "en") -> str:
    await page.goto(f"{base}/audit/verify?lang={lang}&log={log}")
    await page.wait_for_function("document.getElementById('vkey').value.length > 0")
    await page.get_by_label("Record (base64)" if lang == "en" else "Eintrag (Base64)").fill(leaf)
    await page.get_by_label("Proof" if lang == "en" else "Nachweis").fill(proof)
    await page.get_by_role("button").click()
    status = page.get_by_role("status")
    pending = "['', 'Checking…', 'Wird geprüft…']"
    await page.wait_for_function(
        f"!{pending}.includes(document.getElementById('result').textContent)"
    )
    text: str = await status.text_content() or ""
    return text


async def test_valid_proof_verifies_in_chromium(
    client: Any,
    catalog: Catalog,
    integrator: Integrator,
    live_server: str,
    page: Any,
    tmp_path: Path,
) -> None:
    leaf, proof, log = await _proof(client, catalog, integrator)
    text = await _check(page, live_server, leaf, proof, log)
    assert text.startswith("Verified: record"), text
    assert log in text
    await page.screenshot(path=str(tmp_path / "verified.png"))


async def test_tampered_record_fails_in_chromium(
    client: Any, catalog: Catalog, integrator: Integrator, live_server: str, page: Any
) -> None:
    leaf, proof, log = await _proof(client, catalog, integrator)
    forged = base64.b64encode(base64.b64decode(leaf).replace(b"granted", b"denied ")).decode()
    assert forged != leaf
    text = await _check(page, live_server, forged, proof, log, lang="de")
    # The reason in the page's language, not the verifier's English detail.
    assert text == (
        "Nicht bestätigt: der Eintrag steht nicht im signierten Protokoll (der Eintrag oder "
        "sein Nachweis wurde verändert)."
    ), text
    other_log = await _check(page, live_server, leaf, proof, "consent.local/audit/someone-else")
    assert other_log == "Not verified: the proof belongs to another log.", other_log


async def test_a_proof_verifies_with_the_log_field_left_empty(
    client: Any, catalog: Catalog, integrator: Integrator, live_server: str, page: Any
) -> None:
    """The log field is optional: left empty, the record must be in the log it names itself
    (each tenant's log is `<key name>/<tenant id>`, never the key's bare name)."""
    leaf, proof, log = await _proof(client, catalog, integrator)
    text = await _check(page, live_server, leaf, proof, "")
    assert text.startswith("Verified: record"), text
    assert log in text
    # A record that names another log than the proof's checkpoint is refused as such.
    elsewhere = base64.b64encode(
        base64.b64decode(leaf).replace(log.encode(), b"consent.local/audit/someone-else")
    ).decode()
    assert elsewhere != leaf
    other_log = await _check(page, live_server, elsewhere, proof, "")
    assert other_log == "Not verified: the proof belongs to another log.", other_log


async def test_page_is_labelled_for_assistive_technology(live_server: str, page: Any) -> None:
    await page.goto(f"{live_server}/audit/verify")
    assert await page.get_attribute("html", "lang") == "en"
    for label in ("Log", "Record (base64)", "Proof", "Public key"):
        assert await page.get_by_label(label).count() == 1
    assert await page.get_by_role("status").count() == 1
    assert await page.get_by_role("heading", level=1).count() == 1


@pytest.mark.parametrize(
    ("lang", "label", "hint"),
    [("en", "Log", "Optional: the name of the log"), ("de", "Protokoll", "Optional: der Name")],
)
async def test_page_says_which_field_is_optional_and_what_it_means(
    live_server: str, page: Any, lang: str, label: str, hint: str
) -> None:
    """The log field may stay empty; the others must be filled. Both a sighted user (a visible
    hint) and a screen reader user (the field's description) learn which is which."""
    await page.goto(f"{live_server}/audit/verify?lang={lang}")
    log_field = page.get_by_label(label, exact=True)
    description = await log_field.evaluate(
        "e => (e.getAttribute('aria-describedby') || '').split(' ').filter(Boolean)"
        ".map(id => document.getElementById(id).textContent).join(' ')"
    )
    assert description.startswith(hint), description
    assert await page.get_by_text(description).is_visible()
    assert await log_field.get_attribute("required") is None
    for field in ("leaf", "proof", "vkey"):
        assert await page.locator(f"#{field}").get_attribute("required") == ""
