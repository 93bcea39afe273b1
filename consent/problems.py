"""GET /problems/{slug}: what each problem `type` means, for people reading an error, in the
language they ask for (English or German; consent.locales)."""

from __future__ import annotations

from html import escape
from typing import Annotated, Any

from litestar import MediaType, Request, Response, get
from litestar.params import Parameter, QueryParameter

from consent import locales
from consent.errors import PROBLEM_TYPES, NotFound, language_headers

__all__ = ["problem_page"]

_NO_SUCH_TYPE = locales.Localized("no-such-problem-type")
# Readable at 320 CSS pixels (400 % zoom) too: long German words in a title break instead of
# running off the screen (WCAG 1.4.10).
_STYLE = (
    "body{font:1rem/1.5 system-ui,sans-serif;max-width:46rem;margin:2rem auto;padding:0 1rem}"
    "h1{font-size:1.75rem;line-height:1.25;overflow-wrap:break-word;hyphens:auto}"
    "p{overflow-wrap:break-word}"
)


@get("/problems/{slug:str}", media_type=MediaType.HTML, tags=["meta"], summary="Problem type")
async def problem_page(
    request: Request[Any, Any, Any],
    slug: Annotated[
        str, Parameter(description="The last part of a problem's `type`, e.g. `not-found`.")
    ],
    lang: Annotated[
        str | None,
        QueryParameter(
            description="Page language (en, de); default: the best match of Accept-Language, "
            "else en.",
            max_length=35,
        ),
    ] = None,
) -> Response[str]:
    """A human-readable page for each RFC 9457 problem `type` this API returns."""
    if slug not in PROBLEM_TYPES:
        raise NotFound(_NO_SUCH_TYPE)
    language = (
        lang
        if lang in locales.PROBLEMS
        else locales.negotiate(request.headers.get("accept-language"))
    )
    title, text = locales.problem_texts(slug, language)
    html = (
        f'<!doctype html><html lang="{language}"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head>"
        f"<body><main><h1>{escape(title)}</h1>"
        f"<p>{escape(text)}</p><p><code>/problems/{escape(slug)}</code></p></main></body></html>"
    )
    return Response(html, media_type=MediaType.HTML, headers=language_headers(language))
