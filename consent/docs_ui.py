"""The API docs page (Swagger UI 5) with every file it needs served by the service itself.

Litestar's Swagger page loads Swagger UI (and a favicon) from a public CDN: the docs would need
the internet, and each visitor's browser would tell the CDN it reads our docs. Swagger UI's
files come instead from the pinned `swagger-ui-py` package (its `swagger_ui/static/`), found
through the package's metadata without importing its Python code, and are served under the
docs path (`/schema/static/<package version>/<file>`, outside the OpenAPI document like the
rest of `/schema`). The version in the path lets browsers keep the files for a year.
"""

from __future__ import annotations

from importlib.metadata import distribution
from pathlib import Path
from typing import Any, Final

from litestar import Request, Router, get
from litestar.datastructures import CacheControlHeader
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.params import FromPath
from litestar.response import File

from consent.errors import NotFound

__all__ = ["SWAGGER_UI_VERSION", "SelfHostedSwaggerRenderPlugin"]

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


@get(
    f"{_STATIC_PATH}/{{name:str}}",
    sync_to_thread=False,
    include_in_schema=False,
    cache_control=CacheControlHeader(public=True, max_age=_A_YEAR, immutable=True),
)
def swagger_ui_file(name: FromPath[str]) -> File:
    """One of Swagger UI's files, by name; no other file of the package."""
    media_type = _FILES.get(name)
    if media_type is None:
        raise NotFound("No such file.")
    return File(
        _STATIC_DIR / name, filename=name, media_type=media_type, content_disposition_type="inline"
    )


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
