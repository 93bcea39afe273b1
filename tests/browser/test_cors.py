"""A banner on the shop's own page records a visitor's choice with the service, which runs on
another origin. A real Chromium enforces CORS: this is what a website's script meets."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tests.conftest import Catalog

pytestmark = [pytest.mark.browser, pytest.mark.integration]

_PAGE = b'<!doctype html><html lang="en"><title>Shop</title><main><h1>Shop</h1></main></html>'

# Runs in the shop's page: what a banner script does with a visitor's click.
_RECORD = """async ([service, key, version]) => {
  try {
    const answer = await fetch(service + "/v1/consents", {
      method: "POST",
      headers: {"Authorization": "Bearer " + key, "Content-Type": "application/json",
                "Idempotency-Key": "visit-" + location.host},
      body: JSON.stringify({
        identifier: {type: "device", value: "browser-device-1"},
        choices: [{purpose: "analytics", choice: "granted"}],
        notice_version_id: version, language: "en", surface: "banner", channel: "web"}),
    });
    return {status: answer.status, body: await answer.json(),
            requestId: answer.headers.get("X-Request-ID")};
  } catch (error) {
    return {error: String(error)};
  }
}"""


class _Shop(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(_PAGE)))
        self.end_headers()
        self.wfile.write(_PAGE)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def shop_port() -> Iterator[int]:
    """The shop's web server: another port, hence another origin than the service."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Shop)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


async def test_a_banner_on_the_shops_page_records_the_choice(
    client: Any, catalog: Catalog, live_server: str, page: Any, shop_port: int
) -> None:
    shop = f"http://127.0.0.1:{shop_port}"
    created = await catalog.post(
        "/v1/api-keys", {"name": "banner", "scopes": ["write"], "allowed_origins": [shop]}
    )
    version = catalog.versions[max(catalog.versions)]
    await page.goto(shop + "/")
    result = await page.evaluate(_RECORD, [live_server, created["secret"], version])
    assert result.get("status") == 201, result
    assert result["requestId"], "the page can read the request id to quote it"

    state = await client.post(
        "/v1/subjects/lookup",
        json={"identifier": {"type": "device", "value": "browser-device-1"}},
        headers=catalog.h,
    )
    assert state.status_code == 200, state.text
    assert {p["purpose"]: p["choice"] for p in state.json()["consents"]} == {"analytics": "granted"}


async def test_a_page_on_an_origin_the_key_does_not_allow_reads_the_refusal(
    client: Any, catalog: Catalog, live_server: str, page: Any, shop_port: int
) -> None:
    """Same shop server, reached as `localhost`: another origin, not in the key's list. The
    service refuses, and the page can read why (not an opaque network error)."""
    created = await catalog.post(
        "/v1/api-keys",
        {
            "name": "banner",
            "scopes": ["write"],
            "allowed_origins": [f"http://127.0.0.1:{shop_port}"],
        },
    )
    version = catalog.versions[max(catalog.versions)]
    await page.goto(f"http://localhost:{shop_port}/")
    result = await page.evaluate(_RECORD, [live_server, created["secret"], version])
    assert result.get("status") == 403, result
    assert result["body"]["type"].endswith("/forbidden"), result
    lookup = await client.post(
        "/v1/subjects/lookup",
        json={"identifier": {"type": "device", "value": "browser-device-1"}},
        headers=catalog.h,
    )
    assert lookup.status_code == 404, lookup.text


# Runs in a back office page on another origin: a person's data, saved under the file name the
# service gives it.
_EXPORT = """async ([service, key, subject]) => {
  const answer = await fetch(service + "/v1/subjects/" + subject + "/export",
                             {headers: {"Authorization": "Bearer " + key}});
  await answer.arrayBuffer();
  return {status: answer.status, disposition: answer.headers.get("Content-Disposition"),
          requestId: answer.headers.get("X-Request-ID")};
}"""


async def test_a_page_on_another_origin_reads_the_export_s_file_name(
    catalog: Catalog, live_server: str, page: Any, shop_port: int
) -> None:
    """`Content-Disposition` is no CORS-safelisted header: the page sees it only if exposed."""
    made = await catalog.consent(
        identifier={"type": "device", "value": "browser-device-2"},
        choices=[{"purpose": "analytics", "choice": "granted"}],
    )
    await page.goto(f"http://127.0.0.1:{shop_port}/")
    result = await page.evaluate(_EXPORT, [live_server, catalog.tenant.key, made["subject_id"]])
    assert result.get("status") == 200, result
    assert result["disposition"] == f'attachment; filename="subject-{made["subject_id"]}.json"'
    assert result["requestId"], result
