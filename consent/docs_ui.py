"""The API docs page (Swagger UI 5) with every file it needs served by the service itself.

Litestar's Swagger page loads Swagger UI (and a favicon) from a public CDN: the docs would need
the internet, and each visitor's browser would tell the CDN it reads our docs. Swagger UI's
files come instead from the pinned `swagger-ui-py` package (its `swagger_ui/static/`), found
through the package's metadata without importing its Python code, and are served under the
docs path (`/schema/static/<package version>/<file>`, outside the OpenAPI document like the
rest of `/schema`). The version in the path lets browsers keep the files for a year; they
answer HEAD too (the headers of GET, no body).

Litestar answers a path under the docs that no page serves (`/schema/redoc`, `/schema/rapidoc`:
pages of Litestar's other render plugins, not enabled here) with an HTML page of its own;
`DocsRouter` makes it the 404 problem every other unknown path gets.
"""

from __future__ import annotations

from importlib.metadata import distribution
from pathlib import Path
from typing import Any, Final

from litestar import HttpMethod, Request, Router, get, route
from litestar.datastructures import CacheControlHeader
from litestar.exceptions import NotFoundException
from litestar.handlers import HTTPRouteHandler
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.params import FromPath
from litestar.response import File

from consent.errors import NotFound
from consent.locales import Localized

__all__ = ["SWAGGER_UI_VERSION", "DocsRouter", "SelfHostedSwaggerRenderPlugin"]

_DIST: Final = distribution("swagger-ui-py")
SWAGGER_UI_VERSION: Final = _DIST.version
_STATIC_DIR: Final = Path(str(_DIST.locate_file("swagger_ui/static")))
# Relative to the docs path (the OpenAPI router's path).
_STATIC_PATH: Final = f"/static/{SWAGGER_UI_VERSION}"

# The files the page uses (and Swagger UI's licence), not everything the package ships (it
# also ships Swagger Editor and source maps). Litestar adds `; charset=utf-8` to text types.
_FILES: Final = {
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui-standalone-preset.js": "text/javascript",
    "swagger-ui.css": "text/css",
    "favicon-32x32.png": "image/png",
    "LICENSE": "text/plain",
}
_A_YEAR: Final = 365 * 24 * 3600
# The name of Litestar's handler that answers the docs' unknown paths with an HTML page.
_LITESTAR_NOT_FOUND_PAGE: Final = "handle_schema_path_not_found"


@route(
    f"{_STATIC_PATH}/{{name:str}}",
    http_method=[HttpMethod.GET, HttpMethod.HEAD],
    sync_to_thread=False,
    include_in_schema=False,
    cache_control=CacheControlHeader(public=True, max_age=_A_YEAR, immutable=True),
)
def swagger_ui_file(name: FromPath[str]) -> File:
    """One of Swagger UI's files, by name; no other file of the package. To HEAD, the headers
    GET would send, without the body."""
    media_type = _FILES.get(name)
    if media_type is None:
        raise NotFound(Localized("no-such-file"))
    return File(
        _STATIC_DIR / name, filename=name, media_type=media_type, content_disposition_type="inline"
    )


def _not_a_docs_page() -> None:
    raise NotFoundException  # the problem any unknown path gets (consent.errors)


class DocsRouter(Router):
    """The router of the docs (`OpenAPIConfig.openapi_router`): Litestar's HTML 404 page for
    the paths under the docs that no page serves is registered as a 404 problem instead."""

    def register(self, value: Any) -> Any:
        if (
            isinstance(value, HTTPRouteHandler)
            and getattr(value.fn, "__name__", None) == _LITESTAR_NOT_FOUND_PAGE
        ):
            value = get(sorted(value.paths), sync_to_thread=False, name="docs_not_found")(
                _not_a_docs_page
            )
        return super().register(value)


class SelfHostedSwaggerRenderPlugin(SwaggerRenderPlugin):
    """Litestar's Swagger page, pointed at the service's own copy of Swagger UI, in English."""

    def __init__(self, docs_path: str) -> None:
        base = f"{docs_path.rstrip('/')}{_STATIC_PATH}"
        super().__init__(
            js_url=f"{base}/swagger-ui-bundle.js",
            css_url=f"{base}/swagger-ui.css",
            standalone_preset_js_url=f"{base}/swagger-ui-standalone-preset.js",
            favicon=f"<link rel='icon' type='image/png' href='{base}/favicon-32x32.png'>",
        )

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        # Litestar's page names no language (WCAG 3.1.1; its texts are Swagger UI's English),
        # and its container is an unclosed <div/>: a <main> puts Swagger UI in a landmark.
        page = super().render(request, openapi_schema)
        return page.replace(b"<html>", b'<html lang="en">', 1).replace(
            b"<div id='swagger-container'/>", b"<main id='swagger-container'></main>", 1
        )

    def receive_router(self, router: Router) -> None:
        super().receive_router(router)
        router.register(swagger_ui_file)
