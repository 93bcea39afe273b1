"""GET /audit/verify: a page where anyone checks an audit proof in their own browser.

Nothing is sent to the server: the page runs the WebCrypto verifier on the leaf, the proof and
the public key. Texts come from one table per language (i18n-ready); the page is plain,
labelled HTML with a live region for the result.
"""

from __future__ import annotations

from html import escape
from pathlib import Path
from typing import Annotated, Any, Final

import msgspec
from litestar import MediaType, Request, Response, get
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
        "log.hint": "Optional: the name of the log the record must be in. If empty, the log "
        "the record names.",
        "leaf": "Record (base64)",
        "proof": "Proof",
        "vkey": "Public key",
        "submit": "Check",
        "checking": "Checking…",
        "verified": "Verified: record {index} is in {log}, a signed log of {size} records.",
        "failed": "Not verified: {reason}",
        # Why it failed, by the verifier's error code (consent/static/audit-verify.js).
        "reason.malformed": "the record, the proof or the key is not in the expected format.",
        "reason.key": "the public key is not valid.",
        "reason.signature": "the proof is not signed with this public key.",
        "reason.origin": "the proof belongs to another log.",
        "reason.inclusion": "the record is not in the signed log (the record or its proof was "
        "changed).",
        "reason.unsupported": "this browser cannot check Ed25519 signatures; please use a "
        "current browser.",
    },
    "de": {
        "title": "Einen Eintrag des Einwilligungsprotokolls prüfen",
        # A soft hyphen: on a narrow screen the long word breaks where a German reader expects.
        "heading": "Einen Eintrag des Einwilligungs\u00adprotokolls prüfen",
        "intro": "Fügen Sie einen Eintrag und seinen Nachweis ein. Ihr Browser prüft beides mit "
        "dem öffentlichen Schlüssel des Protokolls; nichts wird versendet.",
        "log": "Protokoll",
        "log.hint": "Optional: der Name des Protokolls, in dem der Eintrag stehen muss. Wenn leer, "
        "das Protokoll, das der Eintrag nennt.",
        "leaf": "Eintrag (Base64)",
        "proof": "Nachweis",
        "vkey": "Öffentlicher Schlüssel",
        "submit": "Prüfen",
        "checking": "Wird geprüft…",
        "verified": "Bestätigt: Eintrag {index} steht in {log}, einem signierten Protokoll mit "
        "{size} Einträgen.",
        "failed": "Nicht bestätigt: {reason}",
        "reason.malformed": "Eintrag, Nachweis oder Schlüssel haben nicht das erwartete Format.",
        "reason.key": "der öffentliche Schlüssel ist ungültig.",
        "reason.signature": "der Nachweis ist nicht mit diesem öffentlichen Schlüssel signiert.",
        "reason.origin": "der Nachweis gehört zu einem anderen Protokoll.",
        "reason.inclusion": "der Eintrag steht nicht im signierten Protokoll (der Eintrag oder "
        "sein Nachweis wurde verändert).",
        "reason.unsupported": "dieser Browser kann Ed25519-Signaturen nicht prüfen; bitte "
        "verwenden Sie einen aktuellen Browser.",
    },
}

static_files = create_static_files_router(
    path="/sdk", directories=[STATIC_DIR], include_in_schema=False, name="sdk"
)


def _preferred(accept_language: str | None) -> str:
    """The first language of TEXTS in an Accept-Language header, by weight; else English."""
    weighted: list[tuple[float, int, str]] = []
    for position, item in enumerate((accept_language or "").split(",")):
        tag, _, params = item.strip().partition(";")
        weight = 1.0
        if params.strip().startswith("q="):
            try:
                weight = float(params.strip()[2:])
            except ValueError:
                continue
        primary = tag.strip().split("-")[0].lower()
        if primary in TEXTS and weight > 0:
            weighted.append((-weight, position, primary))
    return min(weighted)[2] if weighted else "en"


@get("/audit/verify", media_type=MediaType.HTML, tags=["audit"], summary="Verify a proof")
async def verify_page(
    request: Request[Any, Any, Any],
    lang: Annotated[
        str | None,
        QueryParameter(
            description="Page language (en, de); default: the browser's (Accept-Language), else en."
        ),
    ] = None,
    log: Annotated[str, QueryParameter(description="Expected log origin.", max_length=300)] = "",
) -> Response[str]:
    """An accessible page that verifies an inclusion proof in the browser (WebCrypto)."""
    if lang not in TEXTS:
        lang = _preferred(request.headers.get("accept-language"))
    t = TEXTS[lang]
    texts_json = escape(msgspec.json.encode(t).decode(), quote=False)
    html = f"""<!doctype html>
<html lang="{lang}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(t["title"])}</title>
<style>
*, *::before, *::after {{ box-sizing: border-box; }}
body {{ font: 1rem/1.5 system-ui, sans-serif; max-width: 46rem; margin: 2rem auto;
  padding: 0 1rem; }}
h1 {{ font-size: 1.75rem; line-height: 1.25; overflow-wrap: break-word; hyphens: auto; }}
#result {{ overflow-wrap: anywhere; }}
.hint {{ margin: 0; font-size: 0.9rem; color: #454545; }}
label {{ display: block; margin-top: 1rem; font-weight: 600; }}
textarea, input {{ width: 100%; font: 0.9rem monospace; }}
button {{ margin-top: 1rem; padding: 0.5rem 1.5rem; font-size: 1rem; }}
.ok {{ color: #0a5d1e; }} .failed {{ color: #a4000f; }}
</style>
</head>
<body>
<main>
<h1>{escape(t.get("heading", t["title"]))}</h1>
<p>{escape(t["intro"])}</p>
<form id="verify-form">
<label for="log">{escape(t["log"])}</label>
<p id="log-hint" class="hint">{escape(t["log.hint"])}</p>
<input id="log" name="log" value="{escape(log)}" autocomplete="off" aria-describedby="log-hint">
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
    return Response(html, media_type=MediaType.HTML, headers={"Vary": "Accept-Language"})
