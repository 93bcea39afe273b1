"""API shapes of the catalog."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

import msgspec

__all__ = [
    "IdentifierType",
    "IdentifierTypeCreate",
    "IdentifierTypePage",
    "Key",
    "Language",
    "LegalBasis",
    "Notice",
    "NoticeCreate",
    "NoticePage",
    "NoticeText",
    "NoticeVersion",
    "NoticeVersionCreate",
    "NoticeVersionPage",
    "Purpose",
    "PurposeCreate",
    "PurposePage",
    "Vendor",
    "VendorCreate",
    "VendorPage",
]

Key = Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9_.-]{0,63}$")]
Language = Annotated[str, msgspec.Meta(pattern=r"^[a-z]{2,3}(-[A-Z]{2})?$")]
LegalBasis = Literal["consent", "legitimate_interest", "contract", "legal_obligation"]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
Text = Annotated[str, msgspec.Meta(max_length=20_000)]


class PurposeCreate(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    key: Key
    name: Name
    description: Annotated[str, msgspec.Meta(max_length=2000)] = ""
    legal_basis: LegalBasis
    max_age_days: Annotated[int, msgspec.Meta(ge=1, le=3650)] | None = None
    strictly_necessary: bool = False
    sensitive: bool = False


class Purpose(msgspec.Struct, frozen=True, kw_only=True):
    key: str
    name: str
    description: str
    legal_basis: str
    max_age_days: int | None
    strictly_necessary: bool
    sensitive: bool
    created_at: datetime


class NoticeText(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    title: Annotated[str, msgspec.Meta(min_length=1, max_length=300)]
    body: Text


class NoticeCreate(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    key: Key
    purposes: Annotated[list[Key], msgspec.Meta(min_length=1, max_length=100)]


class Notice(msgspec.Struct, frozen=True, kw_only=True):
    id: UUID
    key: str
    purposes: list[str]
    created_at: datetime


class NoticeVersionCreate(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    texts: Annotated[dict[Language, NoticeText], msgspec.Meta(min_length=1, max_length=50)]
    # material: earlier consents become stale and must be asked again; editorial: they hold.
    change_kind: Literal["material", "editorial"] = "material"


class NoticeVersion(msgspec.Struct, frozen=True, kw_only=True):
    id: UUID
    notice_key: str
    version: int
    texts: dict[str, NoticeText]
    content_hash: str
    change_kind: str
    material_version: int | None
    published_at: datetime | None
    created_at: datetime


class VendorCreate(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    name: Name
    purposes: Annotated[list[Key], msgspec.Meta(max_length=100)] = []
    url: Annotated[str, msgspec.Meta(pattern=r"^https://", max_length=500)] | None = None
    tcf_vendor_id: Annotated[int, msgspec.Meta(ge=1)] | None = None


class Vendor(msgspec.Struct, frozen=True, kw_only=True):
    id: UUID
    name: str
    purposes: list[str]
    url: str | None
    tcf_vendor_id: int | None
    created_at: datetime


class IdentifierTypeCreate(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    key: Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9_]{0,31}$")]
    description: Annotated[str, msgspec.Meta(max_length=500)] = ""


class IdentifierType(msgspec.Struct, frozen=True, kw_only=True):
    key: str
    description: str
    builtin: bool


class PurposePage(msgspec.Struct, frozen=True, kw_only=True):
    items: list[Purpose]
    next_cursor: str | None


class NoticePage(msgspec.Struct, frozen=True, kw_only=True):
    items: list[Notice]
    next_cursor: str | None


class NoticeVersionPage(msgspec.Struct, frozen=True, kw_only=True):
    items: list[NoticeVersion]
    next_cursor: str | None


class VendorPage(msgspec.Struct, frozen=True, kw_only=True):
    items: list[Vendor]
    next_cursor: str | None


class IdentifierTypePage(msgspec.Struct, frozen=True, kw_only=True):
    items: list[IdentifierType]
    next_cursor: str | None
