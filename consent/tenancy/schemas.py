"""API shapes of tenants, properties and API keys."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

import msgspec

__all__ = [
    "ApiKey",
    "ApiKeyCreate",
    "ApiKeyCreated",
    "ApiKeyPage",
    "Property",
    "PropertyCreate",
    "PropertyPage",
    "Scope",
    "Tenant",
    "TenantSettings",
]

Scope = Literal["admin", "write", "decide", "read"]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
Origin = Annotated[
    str, msgspec.Meta(pattern=r"^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?$", max_length=300)
]


class TenantSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What a tenant decides for itself; every field has a privacy-protective default, and
    `PUT /v1/tenant/settings` replaces them all (an omitted field returns to its default)."""

    # Keep the truncated IP (/24, /48) and user agent of each consent request as evidence,
    # encrypted under the subject's key. Off unless the tenant enables it.
    store_network_evidence: bool = False


class Tenant(msgspec.Struct, frozen=True, kw_only=True):
    id: UUID
    name: str
    created_at: datetime
    settings: TenantSettings = TenantSettings()


class PropertyCreate(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    name: Name
    kind: Literal["website", "app", "channel"]
    allowed_origins: Annotated[list[Origin], msgspec.Meta(max_length=50)] = []


class Property(msgspec.Struct, frozen=True, kw_only=True):
    id: UUID
    name: str
    kind: str
    allowed_origins: list[str]
    created_at: datetime


class PropertyPage(msgspec.Struct, frozen=True, kw_only=True):
    items: list[Property]
    next_cursor: str | None


class ApiKeyCreate(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    name: Name
    scopes: Annotated[list[Scope], msgspec.Meta(min_length=1, max_length=4)]
    property_id: UUID | None = None
    # Non-empty makes a banner (publishable) key usable only from these browser origins.
    allowed_origins: Annotated[list[Origin], msgspec.Meta(max_length=50)] = []


class ApiKey(msgspec.Struct, frozen=True, kw_only=True):
    id: UUID
    key_id: str
    property_id: UUID | None
    name: str
    scopes: list[str]
    allowed_origins: list[str]
    created_at: datetime
    revoked_at: datetime | None


class ApiKeyCreated(msgspec.Struct, frozen=True, kw_only=True):
    """Returned once, at creation: `secret` is not stored and cannot be shown again."""

    key: ApiKey
    secret: str


class ApiKeyPage(msgspec.Struct, frozen=True, kw_only=True):
    items: list[ApiKey]
    next_cursor: str | None
