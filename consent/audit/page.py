"""GET /audit/verify: a page where anyone checks an audit proof in their own browser.

Nothing is sent to the server: the page runs the WebCrypto verifier on the leaf, the proof and
the public key. Texts come from one table per language (i18n-ready); the page is plain,
labelled HTML with a live region for the result.
"""

from __future__ import annotations

from html import escape
from pathlib import Path
from typing import Annotated, Final

import msgspec
from litestar import MediaType, get
from litestar.params import QueryParameter
from litestar.static_files import create_static_files_router

__all__ = ["TEXTS", "static_files", "verify_page"]

STATIC_DIR: Final = Path(__file__).resolve().parent.parent / "static"

TEXTS: Final[dict[str, dict[str, str]]] = {
    "en": {
        "title": "Check a record of the consent log",
        "intro": "Paste a record and its proof. Your browser checks them with the log's public "
        "key; nothing is sent anywhere.",
        "log": "Log",
        "leaf": "Record (base64)",
        "proof": "Proof",
        "vkey": "Public key",
        "submit": "Check",
        "checking": "Checking…",
        "verified": "Verified: record {index} is in {log}, a signed log of {size} records.",
        "failed": "Not verified: {reason}",
    },
    "de": {
        "title": "Einen Eintrag des Einwilligungsprotokolls prüfen",
        "intro": "Fügen Sie einen Eintrag und seinen Nachweis ein. Ihr Browser prüft beides mit "
        "dem öffentlichen Schlüssel des Protokolls; nichts wird versendet.",
        "log": "Protokoll",
        "leaf": "Eintrag (Base64)",
        "proof": "Nachweis",
        "vkey": "Öffentlicher Schlüssel",
        "submit": "Prüfen",
        "checking": "Wird geprüft…",
        "verified": "Bestätigt: Eintrag {index} steht in {log}, einem signierten Protokoll mit "
        "{size} Einträgen.",
        "failed": "Nicht bestätigt: {reason}",
    },
}

static_files = create_static_files_router(
    path="/sdk", directories=[STATIC_DIR], include_in_schema=False, name="sdk"
)


@get("/audit/verify", media_type=MediaType.HTML, tags=["audit"], summary="Verify a proof")
async def verify_page(
    lang: Annotated[str, QueryParameter(description="Page language (en, de).")] = "en",
    log: Annotated[str, QueryParameter(description="Expected log origin.", max_length=300)] = "",
) -> str:
    """An accessible page that verifies an inclusion proof in the browser (WebCrypto)."""
    t = TEXTS.get(lang, TEXTS["en"])
    lang = lang if lang in TEXTS else "en"
    texts_json = escape(msgspec.json.encode(t).decode(), quote=False)
    return f"""<!doctype html>
<html lang="{lang}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(t["title"])}</title>
<style>
body {{ font: 1rem/1.5 system-ui, sans-serif; max-width: 46rem; margin: 2rem auto; }}
label {{ display: block; margin-top: 1rem; font-weight: 600; }}
textarea, input {{ width: 100%; font: 0.9rem monospace; }}
button {{ margin-top: 1rem; padding: 0.5rem 1.5rem; font-size: 1rem; }}
.ok {{ color: #0a5d1e; }} .failed {{ color: #a4000f; }}
</style>
</head>
<body>
<main>
<h1>{escape(t["title"])}</h1>
<p>{escape(t["intro"])}</p>
<form id="verify-form">
<label for="log">{escape(t["log"])}</label>
<input id="log" name="log" value="{escape(log)}" autocomplete="off">
<label for="leaf">{escape(t["leaf"])}</label>
<textarea id="leaf" name="leaf" rows="3" required></textarea>
<label for="proof">{escape(t["proof"])}</label>
<textarea id="proof" name="proof" rows="10" required></textarea>
<label for="vkey">{escape(t["vkey"])}</label>
<input id="vkey" name="vkey" required autocomplete="off">
<button type="submit">{escape(t["submit"])}</button>
</form>
<p id="result" role="status" aria-live="polite"></p>
</main>
<script type="application/json" id="texts">{texts_json}</script>
<script src="/sdk/audit-verify.js"></script>
<script src="/sdk/audit-verify-page.js"></script>
</body>
</html>"""
