"""GET /problems/{slug}: what each problem `type` means, for people reading an error."""

from __future__ import annotations

from html import escape
from typing import Annotated

from litestar import MediaType, get
from litestar.params import Parameter

from consent.errors import PROBLEM_TYPES, NotFound

__all__ = ["problem_page"]


@get("/problems/{slug:str}", media_type=MediaType.HTML, tags=["meta"], summary="Problem type")
async def problem_page(
    slug: Annotated[
        str, Parameter(description="The last part of a problem's `type`, e.g. `not-found`.")
    ],
) -> str:
    """A human-readable page for each RFC 9457 problem `type` this API returns."""
    if slug not in PROBLEM_TYPES:
        raise NotFound("No such problem type.")
    title, text = PROBLEM_TYPES[slug]
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title></head><body><main><h1>{escape(title)}</h1>"
        f"<p>{escape(text)}</p></main></body></html>"
    )
