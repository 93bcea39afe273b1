"""ASGI entry point for servers: `consent.asgi:app` (settings from the environment)."""

from __future__ import annotations

from consent.app import create_app
from consent.config import load_settings
from consent.logging import configure_logging
from consent.serving import follow_main_process

__all__ = ["app"]

_watch = follow_main_process()
_settings = load_settings()
configure_logging(_settings.log_level, json=_settings.log_json)
app = create_app(_settings)
if _watch is not None:
    app.on_startup.append(_watch.started)
