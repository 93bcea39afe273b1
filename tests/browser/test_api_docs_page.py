"""The API docs page (Swagger UI) works offline: it loads nothing from any other origin.

Self-hosted, sometimes air-gapped services cannot reach a CDN, and a privacy-first service must
not hand each docs visitor's address to one: Swagger UI's files are served by the service.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.integration]

# Swagger UI renders the whole document at once; its bundle is ~1.5 MB of JavaScript.
RENDER_TIMEOUT_MS = 30_000


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


async def _open_offline(page: Any, url: str) -> tuple[list[str], list[str]]:
    """Open `url` with every request to another origin aborted; return those requests and the
    console errors and uncaught exceptions of the page."""
    origin = _origin(url)
    elsewhere: list[str] = []
    errors: list[str] = []

    async def route(r: Any) -> None:
        request_url: str = r.request.url
        if request_url.startswith(("data:", "blob:")) or _origin(request_url) == origin:
            await r.continue_()
        else:
            elsewhere.append(request_url)
            await r.abort("internetdisconnected")

    await page.route("**/*", route)
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    await page.goto(url)
    return elsewhere, errors


async def _wait_rendered(page: Any) -> None:
    await page.wait_for_selector(
        ".opblock-post [data-path='/v1/consents']", timeout=RENDER_TIMEOUT_MS
    )


@pytest.mark.parametrize("path", ["/schema/swagger", "/schema"])
async def test_docs_page_renders_with_nothing_from_another_origin(
    live_server: str, page: Any, path: str, tmp_path: Path
) -> None:
    elsewhere, errors = await _open_offline(page, live_server + path)
    await page.wait_for_load_state("networkidle")
    assert elsewhere == [], f"requests that left the service's origin: {elsewhere}"
    await _wait_rendered(page)
    assert errors == [], f"console errors: {errors}"
    # The operations, the document's title and Swagger UI's own styles (from our CSS file).
    for operation in ("/v1/consents", "/v1/decisions"):
        path = page.locator(f".opblock-summary-path[data-path='{operation}']")
        block = page.locator(".opblock", has=path)
        assert await block.count() >= 1, operation
        methods = await block.locator(".opblock-summary-method").all_text_contents()
        assert "POST" in methods, (operation, methods)
    info_title = await page.locator(".information-container .title").first.text_content()
    assert (info_title or "").startswith("consent"), info_title
    display = await page.locator(".swagger-ui .opblock-tag-section").first.evaluate(
        "e => getComputedStyle(e).display"
    )
    assert display == "flex", "Swagger UI's stylesheet did not apply"
    # An operation opened: its parameters, bodies and answers render, still from here alone.
    await page.locator("#operations-decisions-decide .opblock-summary-control").click()
    await page.wait_for_selector("#operations-decisions-decide .opblock-body .responses-table")
    await page.wait_for_load_state("networkidle")
    await page.screenshot(path=str(tmp_path / "api-docs.png"))
    assert elsewhere == [], f"requests that left the service's origin: {elsewhere}"
    assert errors == [], f"console errors: {errors}"


async def test_docs_page_has_a_language_and_a_title(live_server: str, page: Any) -> None:
    await _open_offline(page, f"{live_server}/schema/swagger")
    assert await page.get_attribute("html", "lang") == "en"
    assert await page.title() == "consent"


async def test_docs_page_refers_only_to_the_service_itself(client: Any) -> None:
    """Every file the page names is a path on the service, answered without authentication,
    with its content type and a long-lived cache lifetime."""
    html = (await client.get("/schema/swagger")).text
    refs = re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)["']""", html)
    assert refs, html[:500]
    assert all(ref.startswith("/") and not ref.startswith("//") for ref in refs), refs
    expected = {
        ".js": "text/javascript; charset=utf-8",
        ".css": "text/css; charset=utf-8",
        ".png": "image/png",
    }
    seen = set()
    for ref in refs:
        answer = await client.get(ref)
        assert answer.status_code == 200, ref
        suffix = ref[ref.rindex(".") :]
        seen.add(suffix)
        assert answer.headers["content-type"] == expected[suffix], ref
        cache = answer.headers["cache-control"]
        assert "max-age=31536000" in cache, (ref, cache)
        assert "immutable" in cache, (ref, cache)
        assert answer.content, ref
    assert seen == set(expected), refs


async def test_docs_files_are_no_api_operations(client: Any) -> None:
    html = (await client.get("/schema/swagger")).text
    (bundle,) = re.findall(r"""src=["']([^"']*swagger-ui-bundle\.js)["']""", html)
    static_root = bundle.rsplit("/", 1)[0]
    assert static_root.startswith("/"), bundle
    doc = (await client.get("/schema/openapi.json")).json()
    assert not [p for p in doc["paths"] if p.startswith("/schema")]
    # Only Swagger UI's files are served there, not everything its package ships.
    for name in ("swagger-editor-bundle.js", "index.css", "oauth2-redirect.html", "nope.js"):
        answer = await client.get(f"{static_root}/{name}")
        assert answer.status_code == 404, name
    # Its licence is there to read.
    licence = await client.get(f"{static_root}/LICENSE")
    assert licence.status_code == 200
    assert "Apache License" in licence.text
