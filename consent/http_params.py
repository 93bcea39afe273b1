"""Request parameters shared by the HTTP handlers: pagination and idempotency keys."""

from __future__ import annotations

from typing import Annotated

from litestar.params import HeaderParameter, QueryParameter

__all__ = ["ApiKeyIdemKey", "CursorParam", "IdemKey", "Limit"]

Limit = Annotated[int, QueryParameter(ge=1, le=200, description="Page size (1-200).")]
CursorParam = Annotated[
    str | None,
    # A key cursor carries the page's last key: a 200-character name of 4-byte characters is
    # 1,068 characters of base64.
    QueryParameter(description="`next_cursor` of the previous page.", max_length=2048),
]
IdemKey = Annotated[
    str | None,
    HeaderParameter(
        name="Idempotency-Key",
        description=(
            "Retry-safe key: a retry with the same key and the same body gets the first "
            "answer and changes nothing; the same key with another body is refused (422)."
        ),
        max_length=200,
        required=False,
    ),
]
ApiKeyIdemKey = Annotated[
    str | None,
    HeaderParameter(
        name="Idempotency-Key",
        description=(
            "Retry-safe key: a retry with the same key and the same body creates no second API "
            "key and is refused (409, naming the key created: its secret is shown only once); "
            "the same key with another body is refused (422)."
        ),
        max_length=200,
        required=False,
    ),
]
