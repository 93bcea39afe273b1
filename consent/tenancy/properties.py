"""The property a consent or preference is recorded for: it must exist, and a browser
request (one with an `Origin` header) must come from one of its allowed origins."""

from __future__ import annotations

from uuid import UUID

from consent.db.database import Conn
from consent.errors import Forbidden, ValidationFailed
from consent.locales import Localized
from consent.tenancy.auth import origin_allowed
from consent.tenancy.repository import TenancyRepository

__all__ = ["check_write_property"]


async def check_write_property(conn: Conn, property_id: UUID | None, origin: str | None) -> None:
    """400 when `property_id` names no property of the tenant; 403 when the request came from
    a browser origin the property does not list (a property listing none accepts any)."""
    if property_id is None:
        return
    found = await TenancyRepository(conn).get_property(property_id)
    if found is None:
        raise ValidationFailed.field("property_id", Localized("no-such-property"))
    allowed = [o.lower() for o in found.allowed_origins]
    if origin is not None and not origin_allowed(origin, allowed):
        raise Forbidden(Localized("property-origin-not-allowed"))
