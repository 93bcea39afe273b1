"""Walking a cursor-paginated list endpoint the way a client does."""

from __future__ import annotations

from typing import Any

__all__ = ["pages"]


async def pages(client: Any, path: str, headers: dict[str, str], limit: int) -> list[list[Any]]:
    """The items of every page, following `next_cursor` until it is null. Every page holds at
    most `limit` items, and a cursor never leads to an empty page."""
    found: list[list[Any]] = []
    cursor = None
    for _ in range(100):
        params: dict[str, Any] = {"limit": limit} | ({"cursor": cursor} if cursor else {})
        response = await client.get(path, params=params, headers=headers)
        assert response.status_code == 200, response.text
        page = response.json()
        assert len(page["items"]) <= limit
        assert page["items"] or cursor is None
        found.append(page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            return found
    raise AssertionError("the cursor never ended")
