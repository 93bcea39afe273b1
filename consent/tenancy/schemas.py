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

_CREATED_AT = "When the server created it: an ISO 8601 timestamp in UTC."
_NEXT_CURSOR = (
    "Opaque cursor of the next page: pass it as `cursor` to continue. Null on the last page: "
    "when it is set, at least one more item follows."
)
_PROPERTY_NAME = "The property's name, unique in the tenant (1-200 characters)."
_PROPERTY_KIND = (
    "What the property is: `website`, `app`, or `channel` (another touchpoint, such as a "
    "store, call centre or e-mail)."
)
_PROPERTY_ORIGINS = (
    "Browser origins (`scheme://host[:port]`, no path or trailing slash) a banner on this "
    "property may call from: a consent or preference recorded for the property by a browser "
    "request (one with an `Origin` header) from any other origin is refused (403). Requests "
    "without `Origin` (servers) are not limited. Stored in lower case; empty: any origin."
)
_KEY_NAME = "A label for the key, for people (1-200 characters); need not be unique."
_SCOPES = (
    "What the key may do: `read` (read the tenant, catalogue, subjects' state and history, "
    "decisions, policy and audit proofs), `write` (record consents and preferences, link "
    "subjects), `decide` (decisions and audience filtering), `admin` (holds every scope; alone "
    "may manage the catalogue, settings, properties and API keys, erase subjects, and list or "
    "export audit entries)."
)
_KEY_PROPERTY = (
    "Id (UUID) of the tenant's property the key is for, or null. Consents and preferences "
    "written with a bound key are recorded for this property: a body naming another property "
    "is refused (403), one naming none gets this one. Reads are not limited by it."
)
_KEY_ORIGINS = (
    "Browser origins (`scheme://host[:port]`) a banner (publishable) key is restricted to: "
    "a request with this key is refused (403) unless its `Origin` header is exactly one of "
    "them. Stored in lower case, as browsers send them. Empty: no origin restriction. A key "
    "with origins cannot have the `admin` scope (400): it is public in web pages."
)


class TenantSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What a tenant decides for itself; every field has a privacy-protective default, and
    `PUT /v1/tenant/settings` replaces them all (an omitted field returns to its default)."""

    # Keep the truncated IP (/24, /48) and user agent of each consent and preference request,
    # as evidence, encrypted under the subject's key. Off unless the tenant enables it.
    store_network_evidence: Annotated[
        bool,
        msgspec.Meta(
            description="Keep, with each consent and preference recorded (shown as `network` "
            "in their histories), the request's IP address truncated "
            "to /24 (IPv4) or /48 (IPv6) and its User-Agent as evidence, encrypted under the "
            "subject's key. Default false (off); a change applies within 2 seconds."
        ),
    ] = False


class Tenant(msgspec.Struct, frozen=True, kw_only=True):
    """The tenant the API key belongs to: its name and settings."""

    id: Annotated[UUID, msgspec.Meta(description="The tenant's id (UUID), set by the server.")]
    name: Annotated[
        str, msgspec.Meta(description="The tenant's name, set by the operator who created it.")
    ]
    created_at: Annotated[datetime, msgspec.Meta(description=_CREATED_AT)]
    settings: Annotated[
        TenantSettings,
        msgspec.Meta(
            description="What the tenant decides for itself; every field has a "
            "privacy-protective default, and `PUT /v1/tenant/settings` replaces them all (an "
            "omitted field returns to its default)."
        ),
    ] = TenantSettings()


class PropertyCreate(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A new property (`POST /v1/properties`): a website, app or channel of the
    tenant."""

    name: Annotated[Name, msgspec.Meta(description=_PROPERTY_NAME + " 409 if it exists.")]
    kind: Annotated[Literal["website", "app", "channel"], msgspec.Meta(description=_PROPERTY_KIND)]
    allowed_origins: Annotated[
        list[Origin],
        msgspec.Meta(max_length=50, description=_PROPERTY_ORIGINS + " Up to 50; default []."),
    ] = []


class Property(msgspec.Struct, frozen=True, kw_only=True):
    """A property of the tenant: a website, app or channel where choices are made."""

    id: Annotated[
        UUID,
        msgspec.Meta(
            description="The property's id (UUID), set by the server; consents and "
            "preferences may name it as `property_id`."
        ),
    ]
    name: Annotated[str, msgspec.Meta(description=_PROPERTY_NAME)]
    kind: Annotated[str, msgspec.Meta(description=_PROPERTY_KIND)]
    allowed_origins: Annotated[list[str], msgspec.Meta(description=_PROPERTY_ORIGINS)]
    created_at: Annotated[datetime, msgspec.Meta(description=_CREATED_AT)]


class PropertyPage(msgspec.Struct, frozen=True, kw_only=True):
    """One page of the tenant's properties, newest first."""

    items: Annotated[
        list[Property],
        msgspec.Meta(description="The properties of this page, newest first."),
    ]
    next_cursor: Annotated[str | None, msgspec.Meta(description=_NEXT_CURSOR)]


class ApiKeyCreate(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A new API key (`POST /v1/api-keys`): its name, scopes, and optionally the
    property and browser origins it is restricted to."""

    name: Annotated[Name, msgspec.Meta(description=_KEY_NAME)]
    scopes: Annotated[
        list[Scope],
        msgspec.Meta(
            min_length=1,
            max_length=4,
            description=_SCOPES + " 1-4 of them; duplicates are dropped.",
        ),
    ]
    property_id: Annotated[
        UUID | None,
        msgspec.Meta(
            description=_KEY_PROPERTY + " Must name an existing property (400 otherwise)."
        ),
    ] = None
    # Non-empty makes a banner (publishable) key usable only from these browser origins.
    allowed_origins: Annotated[
        list[Origin],
        msgspec.Meta(max_length=50, description=_KEY_ORIGINS + " Up to 50; default []."),
    ] = []


class ApiKey(msgspec.Struct, frozen=True, kw_only=True):
    """An API key's record, without its secret."""

    id: Annotated[
        UUID,
        msgspec.Meta(
            description="The key's id (UUID), set by the server; revoke the key with "
            "`DELETE /v1/api-keys/{api_key_id}`."
        ),
    ]
    key_id: Annotated[
        str,
        msgspec.Meta(
            description="The public part of the key: 16 lowercase hex characters, the `<id>` "
            "in `csk_<id>_<secret>`. Not secret: audited changes name their actor "
            "`api-key:<key_id>`."
        ),
    ]
    property_id: Annotated[UUID | None, msgspec.Meta(description=_KEY_PROPERTY)]
    name: Annotated[str, msgspec.Meta(description=_KEY_NAME)]
    scopes: Annotated[list[str], msgspec.Meta(description=_SCOPES + " Sorted, without duplicates.")]
    allowed_origins: Annotated[list[str], msgspec.Meta(description=_KEY_ORIGINS)]
    created_at: Annotated[datetime, msgspec.Meta(description=_CREATED_AT)]
    revoked_at: Annotated[
        datetime | None,
        msgspec.Meta(
            description="When the key was first revoked (ISO 8601, UTC); null while it is "
            "active. Other server replicas may accept it for up to 5 seconds after."
        ),
    ]


class ApiKeyCreated(msgspec.Struct, frozen=True, kw_only=True):
    """Returned once, at creation: `secret` is not stored and cannot be shown again."""

    # The same words as ApiKey's own: Litestar gives the component the description of the
    # first reference it meets, which depends on its plugins (pydantic's, in development).
    key: Annotated[ApiKey, msgspec.Meta(description="An API key's record, without its secret.")]
    secret: Annotated[
        str,
        msgspec.Meta(
            description="The complete API key `csk_<key_id>_<secret>` (the secret is 43 "
            "base64url characters), to send as `Authorization: Bearer <it>`. Only its "
            "SHA-256 is stored: this is the only time it is shown."
        ),
    ]


class ApiKeyPage(msgspec.Struct, frozen=True, kw_only=True):
    """One page of the tenant's API keys, newest first; never their secrets."""

    items: Annotated[
        list[ApiKey],
        msgspec.Meta(
            description="The tenant's API keys on this page, newest first, revoked ones "
            "included; never their secrets."
        ),
    ]
    next_cursor: Annotated[str | None, msgspec.Meta(description=_NEXT_CURSOR)]
