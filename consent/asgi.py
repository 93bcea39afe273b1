"""ASGI entry point for servers: `consent.asgi:app` (settings from the environment)."""

from __future__ import annotations

import os

import msgspec

from consent.app import create_app
from consent.config import load_settings
from consent.logging import configure_logging
from consent.middleware import index_query_parameters
from consent.serving import INTEGRATOR_ELSEWHERE_ENV, follow_main_process, freeze_startup_heap

__all__ = ["app"]

_watch = follow_main_process()
_settings = load_settings()
if os.environ.get(INTEGRATOR_ELSEWHERE_ENV):  # `consent serve` runs it in its own process
    _settings = msgspec.structs.replace(_settings, audit_integrator=False)
configure_logging(_settings.log_level, json=_settings.log_json)
app = create_app(_settings)
index_query_parameters(app)  # not in the first request with a query string
app.on_startup.append(freeze_startup_heap)
if _watch is not None:
    app.on_startup.append(_watch.started)
