"""A test client whose requests come from a given IP address, as a visitor's browser or a load
balancer reaches the service (the test client's own peer, "testclient", is no IP address)."""

from __future__ import annotations

from typing import Any

from litestar.enums import ScopeType
from litestar.testing import AsyncTestClient
from litestar.types import Receive, Scope, Send

__all__ = ["client_from"]


def client_from(app: Any, peer: str) -> AsyncTestClient[Any]:
    """`app` as reached from `peer` (use as `async with client_from(app, "203.0.113.7")`)."""

    async def from_peer(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == ScopeType.HTTP:
            scope["client"] = (peer, 50000)
        await app(scope, receive, send)

    return AsyncTestClient(app=from_peer)
