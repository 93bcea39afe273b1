"""Every HTML page of our own passes axe-core's WCAG 2.0/2.1 A and AA rules in Chromium, and the
verify page works with the keyboard alone. The API docs page is Swagger UI's: only the page we
wrap it in (language, title, landmark) is held to the rules there; Swagger UI's own markup has
violations we do not control (method badges' contrast, nested buttons, an unlabelled select)."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from axe_playwright_python.async_playwright import Axe

from consent import locales
from consent.audit.integrator import Integrator
from tests.browser.test_audit_verify_page import _check, _proof
from tests.integration.conftest import Catalog

pytestmark = [pytest.mark.browser, pytest.mark.integration]

# The WCAG 2.0 and 2.1 success criteria of levels A and AA, plus axe's best practices (one main
# landmark, all content in landmarks, one level-one heading, …).
AXE_OPTIONS = {
    "runOnly": {
        "type": "tag",
        "values": ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"],
    },
    "resultTypes": ["violations"],
}
_axe = Axe()


async def assert_accessible(page: Any, what: str) -> None:
    """axe-core in the page as it is now; a violation fails with its rule, impact and target."""
    results = await _axe.run(page, options=AXE_OPTIONS)
    violations: list[dict[str, Any]] = results.response["violations"]
    lines = [
        f"{v['id']} ({v['impact']}): {' '.join(map(str, node['target']))}: {v['help']}"
        for v in violations
        for node in v["nodes"]
    ]
    assert not lines, f"{what}: {len(lines)} accessibility violation(s):\n" + "\n".join(lines)


@pytest.mark.parametrize("lang", ["en", "de"])
async def test_verify_page_initial_state_is_accessible(
    live_server: str, page: Any, lang: str
) -> None:
    await page.goto(f"{live_server}/audit/verify?lang={lang}")
    await page.wait_for_function("document.getElementById('vkey').value.length > 0")
    await assert_accessible(page, f"/audit/verify ({lang}, empty)")


@pytest.mark.parametrize("lang", ["en", "de"])
async def test_verify_page_after_a_check_is_accessible(
    client: Any,
    catalog: Catalog,
    integrator: Integrator,
    live_server: str,
    page: Any,
    lang: str,
) -> None:
    leaf, proof, log = await _proof(client, catalog, integrator)
    verified = await _check(page, live_server, leaf, proof, log, lang=lang)
    assert verified.startswith(("Verified:", "Bestätigt:")), verified
    await assert_accessible(page, f"/audit/verify ({lang}, verified)")

    forged = base64.b64encode(base64.b64decode(leaf).replace(b"granted", b"denied ")).decode()
    failed = await _check(page, live_server, forged, proof, log, lang=lang)
    assert failed.startswith(("Not verified:", "Nicht bestätigt:")), failed
    await assert_accessible(page, f"/audit/verify ({lang}, tampered)")


@pytest.mark.parametrize("lang", ["en", "de"])
async def test_every_problem_page_is_accessible(live_server: str, page: Any, lang: str) -> None:
    for slug in locales.PROBLEMS[lang]:
        await page.goto(f"{live_server}/problems/{slug}?lang={lang}")
        assert await page.get_attribute("html", "lang") == lang
        await assert_accessible(page, f"/problems/{slug} ({lang})")


async def assert_reflows(page: Any, what: str) -> None:
    """WCAG 1.4.10: at 320 CSS pixels (1280 pixels zoomed to 400 %) nothing needs sideways
    scrolling."""
    widths: list[int] = await page.evaluate(
        "[document.documentElement.scrollWidth, document.documentElement.clientWidth]"
    )
    wide: list[str] = await page.evaluate(
        """[...document.body.querySelectorAll('*')]
        .filter(e => e.getBoundingClientRect().right > document.documentElement.clientWidth
          || (e.scrollWidth > e.clientWidth && !['INPUT', 'TEXTAREA'].includes(e.tagName)))
        .map(e => e.id ? e.tagName + '#' + e.id : e.tagName)"""
    )
    assert widths[0] <= widths[1], f"{what}: {widths[0]} px wide at {widths[1]} px: {wide}"


@pytest.mark.parametrize("lang", ["en", "de"])
async def test_pages_reflow_at_320_css_pixels(
    client: Any,
    catalog: Catalog,
    integrator: Integrator,
    live_server: str,
    page: Any,
    lang: str,
) -> None:
    await page.set_viewport_size({"width": 320, "height": 256})
    leaf, proof, log = await _proof(client, catalog, integrator)
    await page.goto(f"{live_server}/audit/verify?lang={lang}&log={log}")
    await assert_reflows(page, f"/audit/verify ({lang}, empty)")
    # A long German word in the heading breaks with a (soft) hyphen, which a screen reader
    # does not read: the heading's name is the page's title.
    title = await page.title()
    assert await page.get_by_role("heading", name=title, exact=True).count() == 1
    verified = await _check(page, live_server, leaf, proof, log, lang=lang)
    assert log in verified
    await assert_reflows(page, f"/audit/verify ({lang}, verified)")
    # A log's name has no spaces to break a line at, and may be long.
    long_name = "consent.example/audit/" + "0123456789abcdef" * 8
    await page.evaluate(f"document.getElementById('result').textContent += ' {long_name}'")
    await assert_reflows(page, f"/audit/verify ({lang}, result with a long log name)")
    for slug in locales.PROBLEMS[lang]:
        await page.goto(f"{live_server}/problems/{slug}?lang={lang}")
        await assert_reflows(page, f"/problems/{slug} ({lang})")


async def _focused(page: Any) -> str:
    """The focused element's id, else its tag name."""
    focused: str = await page.evaluate(
        "document.activeElement.id || document.activeElement.tagName.toLowerCase()"
    )
    return focused


async def test_verify_form_works_with_the_keyboard_alone(
    client: Any, catalog: Catalog, integrator: Integrator, live_server: str, page: Any
) -> None:
    leaf, proof, log = await _proof(client, catalog, integrator)
    await page.goto(f"{live_server}/audit/verify?lang=en")
    await page.wait_for_function("document.getElementById('vkey').value.length > 0")

    # Tab reaches the fields in reading order, then the button.
    order = []
    for _ in range(5):
        await page.keyboard.press("Tab")
        order.append(await _focused(page))
    assert order == ["log", "leaf", "proof", "vkey", "button"], order

    # Filled by typing (the public key is filled in already), submitted with Enter.
    for _ in range(4):
        await page.keyboard.press("Shift+Tab")
    assert await _focused(page) == "log"
    await page.keyboard.type(log)
    await page.keyboard.press("Tab")
    await page.keyboard.insert_text(leaf)
    await page.keyboard.press("Tab")
    await page.keyboard.insert_text(proof)
    await page.keyboard.press("Tab")
    await page.keyboard.press("Tab")
    assert await _focused(page) == "button"
    await page.keyboard.press("Enter")

    # The result is in a live region: a screen reader announces it without a focus change.
    status = page.get_by_role("status")
    await page.wait_for_function(
        "document.getElementById('result').textContent.startsWith('Verified')"
    )
    assert await status.get_attribute("aria-live") == "polite"
    text = await status.text_content() or ""
    assert text.startswith("Verified: record"), text
    assert await _focused(page) == "button"

    # Enter in a single-line field submits too; a failure is announced the same way.
    for _ in range(4):
        await page.keyboard.press("Shift+Tab")
    assert await _focused(page) == "log"
    await page.keyboard.press("Control+A")
    await page.keyboard.type("consent.local/audit/someone-else")
    await page.keyboard.press("Enter")
    await page.wait_for_function(
        "document.getElementById('result').textContent.startsWith('Not verified')"
    )
    assert await status.text_content() == "Not verified: the proof belongs to another log."


# Rules about the page around Swagger UI, which is ours: its language, title, viewport and
# one main landmark holding all content. Swagger UI's own markup (third-party) has violations
# of other rules (contrast of its method badges, buttons inside buttons, an unlabelled servers
# list, no level-one heading) that are not asserted here.
DOCS_PAGE_RULES = {
    "html-has-lang",
    "html-lang-valid",
    "document-title",
    "meta-viewport",
    "landmark-one-main",
    "region",
}


async def test_api_docs_page_wrapper_is_accessible(live_server: str, page: Any) -> None:
    await page.goto(f"{live_server}/schema/swagger")
    await page.wait_for_selector(".opblock-summary-path[data-path='/v1/consents']")
    results = await _axe.run(page, options=AXE_OPTIONS)
    violations: list[dict[str, Any]] = results.response["violations"]
    ours = [
        f"{v['id']} ({v['impact']}): {' '.join(map(str, node['target']))}: {v['help']}"
        for v in violations
        if v["id"] in DOCS_PAGE_RULES
        for node in v["nodes"]
    ]
    assert not ours, f"/schema/swagger: {len(ours)} violation(s):\n" + "\n".join(ours[:20])
