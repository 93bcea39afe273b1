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
    "NoticeVersionUpdate",
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

_CREATED_AT = "When the server created it: an ISO 8601 timestamp in UTC."
_SHOWN_SINCE = (
    "When this text was first shown to people, if before its publication here (ISO 8601 with a "
    "time zone, not in the future): set it on a notice re-created from before, to record or "
    "import consents given under it then. A consent under this version whose `occurred_at` is "
    "more than five minutes before this (unset: before the publication) is refused "
    "(400 `validation-error` on `occurred_at`)."
)
_NEXT_CURSOR = (
    "Opaque cursor of the next page: pass it as `cursor` to continue. Null on the last page: "
    "when it is set, at least one more item follows."
)

_PURPOSE_KEY = (
    "The purpose's identifier, chosen by the client and unique in the tenant: a lowercase "
    "letter, then up to 63 of a-z, 0-9, `_`, `.`, `-` (e.g. `email_marketing`). Notices, "
    "vendors, consent choices and the decision policy's actions refer to the purpose by it."
)
_PURPOSE_NAME = "Human-readable name of the purpose (1-200 characters)."
_PURPOSE_DESCRIPTION = "Longer explanation of the purpose, for people; empty when not given."
_LEGAL_BASIS = (
    "Ground for processing, as applied by decisions: `consent` needs a current granted choice "
    "(not withdrawn, stale or expired); `legitimate_interest` is allowed unless the subject "
    "objected (a denied or withdrawn choice, which never expires: the maximum age and "
    "staleness apply only to `consent`); `contract` and `legal_obligation` are allowed "
    "without a choice. Other policy rules (GPC, children) may still deny."
)
_MAX_AGE_DAYS = (
    "Maximum age of a choice, in days (1-3650, e.g. 395 = 13 months), counted from when it "
    "was made. It applies only to purposes with the legal basis `consent`: an older choice is "
    "reported `expired` and no longer counts as consent. On any other legal basis choices are "
    "never reported `expired`, and an objection to a `legitimate_interest` purpose never "
    "expires (only the opt-in a minor needs for sale or sharing must be this recent whatever "
    "the legal basis). Null (the default): choices never expire."
)
_STRICTLY_NECESSARY = (
    "True for processing needed to provide the service itself: decisions allow it without "
    "any choice. Such a purpose cannot have the legal basis `consent` (400)."
)
_SENSITIVE = (
    "Marks special-category / sensitive personal data (GDPR Art. 9, CPRA). Catalogue "
    "information only: decisions do not read this flag."
)
_NOTICE_KEY = (
    "The notice's identifier, chosen by the client and unique in the tenant (same format as "
    "a purpose key); used in the notice's URLs."
)
_NOTICE_PURPOSES = (
    "Keys of the purposes the notice asks about (1-100, each an existing purpose, no "
    "duplicates). A consent given under a version of this notice may only make choices "
    "about these purposes."
)
_TEXTS = (
    "The notice's text per language: keys are language tags (a BCP 47 subset: a 2-3 letter "
    "lowercase language, optionally `-` and a 2-letter uppercase region, e.g. `en`, `de-AT`), "
    "1-50 of them. A consent's `language` must be one of these keys."
)
_CHANGE_KIND = (
    "`material`: once published, consents given under earlier versions of this notice become "
    "stale and must be asked for again; `editorial` (wording, typos): they stay valid. "
    "Version 1 is always material, whatever is sent."
)
_VENDOR_NAME = "The vendor's name, unique in the tenant (1-200 characters)."
_VENDOR_PURPOSES = (
    "Keys of the existing purposes for which the vendor processes data (up to 100, each at "
    "most once: 400 otherwise; may be empty)."
)
_VENDOR_URL = "A link about the vendor (e.g. its privacy policy), `https://` only; null if none."
_TCF_VENDOR_ID = (
    "The vendor's id in the IAB TCF Global Vendor List (1-65535); null when it "
    "is not registered there."
)
_IDENTIFIER_TYPE_KEY = (
    "Name of the identifier type, used as `identifier.type` in requests: a lowercase letter, "
    "then up to 31 of a-z, 0-9, `_`. Built-in types: device, email, customer_id, "
    "loyalty_card, phone. Values of custom types are trimmed and must then be 1-200 visible "
    "ASCII characters."
)

_MaxAgeDays = Annotated[int, msgspec.Meta(ge=1, le=3650, description=_MAX_AGE_DAYS)]


class PurposeCreate(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A new purpose of processing for the tenant's catalogue (`POST /v1/purposes`)."""

    key: Annotated[Key, msgspec.Meta(description=_PURPOSE_KEY + " 409 if it exists.")]
    name: Annotated[Name, msgspec.Meta(description=_PURPOSE_NAME)]
    description: Annotated[
        str,
        msgspec.Meta(max_length=2000, description=_PURPOSE_DESCRIPTION + " Up to 2000 characters."),
    ] = ""
    legal_basis: Annotated[LegalBasis, msgspec.Meta(description=_LEGAL_BASIS)]
    max_age_days: _MaxAgeDays | None = None
    strictly_necessary: Annotated[
        bool, msgspec.Meta(description=_STRICTLY_NECESSARY + " Default false.")
    ] = False
    sensitive: Annotated[bool, msgspec.Meta(description=_SENSITIVE + " Default false.")] = False


class Purpose(msgspec.Struct, frozen=True, kw_only=True):
    """A purpose of processing in the tenant's catalogue: why data is used, and on what
    legal basis decisions allow it."""

    key: Annotated[str, msgspec.Meta(description=_PURPOSE_KEY)]
    name: Annotated[str, msgspec.Meta(description=_PURPOSE_NAME)]
    description: Annotated[str, msgspec.Meta(description=_PURPOSE_DESCRIPTION)]
    legal_basis: Annotated[str, msgspec.Meta(description=_LEGAL_BASIS)]
    max_age_days: Annotated[int | None, msgspec.Meta(description=_MAX_AGE_DAYS)]
    strictly_necessary: Annotated[bool, msgspec.Meta(description=_STRICTLY_NECESSARY)]
    sensitive: Annotated[bool, msgspec.Meta(description=_SENSITIVE)]
    created_at: Annotated[datetime, msgspec.Meta(description=_CREATED_AT)]


class NoticeText(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A notice's text in one language: its heading and the full text shown to the person."""

    title: Annotated[
        str,
        msgspec.Meta(
            min_length=1,
            max_length=300,
            description="The notice's heading in this language (1-300 characters).",
        ),
    ]
    body: Annotated[
        Text,
        msgspec.Meta(
            description="The notice's full text in this language, as shown to the person "
            "(up to 20,000 characters)."
        ),
    ]


class NoticeCreate(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A new notice (`POST /v1/notices`): the purposes it asks about. Its texts come
    in versions."""

    key: Annotated[Key, msgspec.Meta(description=_NOTICE_KEY + " 409 if it exists.")]
    purposes: Annotated[
        list[Key], msgspec.Meta(min_length=1, max_length=100, description=_NOTICE_PURPOSES)
    ]


class Notice(msgspec.Struct, frozen=True, kw_only=True):
    """A notice: what a person is shown when asked about some purposes. Its texts are in
    its versions."""

    id: Annotated[UUID, msgspec.Meta(description="The notice's id (UUID), set by the server.")]
    key: Annotated[str, msgspec.Meta(description=_NOTICE_KEY)]
    purposes: Annotated[list[str], msgspec.Meta(description=_NOTICE_PURPOSES)]
    created_at: Annotated[datetime, msgspec.Meta(description=_CREATED_AT)]


class NoticeVersionCreate(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A new draft version of a notice: its texts, and whether its change is
    material. Publish it to use it in consents."""

    texts: Annotated[
        dict[Language, NoticeText],
        msgspec.Meta(min_length=1, max_length=50, description=_TEXTS),
    ]
    # material: earlier consents become stale and must be asked again; editorial: they hold.
    change_kind: Annotated[
        Literal["material", "editorial"],
        msgspec.Meta(description=_CHANGE_KIND + " Default `material`."),
    ] = "material"
    shown_since: Annotated[
        datetime | None, msgspec.Meta(description=_SHOWN_SINCE + " Optional.")
    ] = None


class NoticeVersionUpdate(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The whole of a draft, replacing what it held (`PUT`): what is omitted takes its default."""

    texts: Annotated[
        dict[Language, NoticeText],
        msgspec.Meta(
            min_length=1,
            max_length=50,
            description=_TEXTS + " Replaces every text of the draft: a language left out is "
            "removed.",
        ),
    ]
    change_kind: Annotated[
        Literal["material", "editorial"],
        msgspec.Meta(description=_CHANGE_KIND + " Default `material`, as on creation."),
    ] = "material"
    shown_since: Annotated[
        datetime | None,
        msgspec.Meta(description=_SHOWN_SINCE + " Omitted: unset, as on creation."),
    ] = None


class NoticeVersion(msgspec.Struct, frozen=True, kw_only=True):
    """A version of a notice's texts: a draft until published, then immutable and
    usable as proof of what was shown in consents."""

    id: Annotated[
        UUID,
        msgspec.Meta(
            description="The version's id (UUID), set by the server; once published, send it "
            "as `notice_version_id` when recording a consent."
        ),
    ]
    notice_key: Annotated[str, msgspec.Meta(description="Key of the notice this version is of.")]
    version: Annotated[
        int,
        msgspec.Meta(
            description="Version number within the notice, assigned by the server: 1, 2, 3, … "
            "in order of creation."
        ),
    ]
    texts: Annotated[dict[str, NoticeText], msgspec.Meta(description=_TEXTS)]
    content_hash: Annotated[
        str,
        msgspec.Meta(
            description="SHA-256 of the canonical JSON of `texts` (UTF-8, object keys sorted "
            "at every level, no whitespace) as 64 lowercase hex characters, computed by the "
            "server: proof of what was shown. A consent may send it as `notice_hash`, which "
            "must then match."
        ),
    ]
    change_kind: Annotated[
        str,
        msgspec.Meta(
            description="`material` or `editorial` (see the create request); version 1 is "
            "always `material`."
        ),
    ]
    material_version: Annotated[
        int | None,
        msgspec.Meta(
            description="Set by the server at publication: how many material versions of the "
            "notice are published up to this one (an editorial version keeps the previous "
            "number). A consent given under a lower number than the notice's latest is stale. "
            "Null while a draft."
        ),
    ]
    shown_since: Annotated[
        datetime | None,
        msgspec.Meta(
            description="When this text was first shown, if before its publication here "
            "(ISO 8601, UTC; see the create request); null: since its publication. Consents "
            "under this version cannot have been given before."
        ),
    ]
    published_at: Annotated[
        datetime | None,
        msgspec.Meta(
            description="When the version was published (ISO 8601, UTC); null while it is a "
            "draft. A published version is immutable and usable as proof in consents."
        ),
    ]
    created_at: Annotated[
        datetime,
        msgspec.Meta(description="When the draft was created: an ISO 8601 timestamp in UTC."),
    ]


class VendorCreate(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A new vendor (`POST /v1/vendors`): a third party that processes data for
    some purposes."""

    name: Annotated[Name, msgspec.Meta(description=_VENDOR_NAME + " 409 if it exists.")]
    purposes: Annotated[
        list[Key], msgspec.Meta(max_length=100, description=_VENDOR_PURPOSES + " Default [].")
    ] = []
    url: (
        Annotated[
            str,
            msgspec.Meta(
                pattern=r"^https://",
                max_length=500,
                description="A link about the vendor (e.g. its privacy policy): an `https://` "
                "URL of at most 500 characters. Optional.",
            ),
        ]
        | None
    ) = None
    tcf_vendor_id: (
        Annotated[
            int,
            msgspec.Meta(
                ge=1,
                le=65_535,
                description="The vendor's id in the IAB TCF Global Vendor List (1-65535: TCF "
                "strings hold vendor ids in 16 bits). Optional: omit it when the vendor is not "
                "registered there.",
            ),
        ]
        | None
    ) = None


class Vendor(msgspec.Struct, frozen=True, kw_only=True):
    """A vendor in the tenant's catalogue: a third party that processes data for some
    purposes."""

    id: Annotated[UUID, msgspec.Meta(description="The vendor's id (UUID), set by the server.")]
    name: Annotated[str, msgspec.Meta(description=_VENDOR_NAME)]
    purposes: Annotated[list[str], msgspec.Meta(description=_VENDOR_PURPOSES)]
    url: Annotated[str | None, msgspec.Meta(description=_VENDOR_URL)]
    tcf_vendor_id: Annotated[int | None, msgspec.Meta(description=_TCF_VENDOR_ID)]
    created_at: Annotated[datetime, msgspec.Meta(description=_CREATED_AT)]


class IdentifierTypeCreate(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A new custom identifier type for the tenant (`POST
    /v1/identifier-types`)."""

    key: Annotated[
        str,
        msgspec.Meta(
            pattern=r"^[a-z][a-z0-9_]{0,31}$",
            description=_IDENTIFIER_TYPE_KEY + " 409 for a built-in or existing name.",
        ),
    ]
    description: Annotated[
        str,
        msgspec.Meta(
            max_length=500,
            description="What identifiers of this type are, for people (up to 500 "
            "characters); empty when not given.",
        ),
    ] = ""


class IdentifierType(msgspec.Struct, frozen=True, kw_only=True):
    """A kind of identifier (`email`, `device`, a custom one) by which a subject
    can be named as `identifier.type` in requests."""

    key: Annotated[str, msgspec.Meta(description=_IDENTIFIER_TYPE_KEY)]
    description: Annotated[
        str,
        msgspec.Meta(
            description="What identifiers of this type are, as given by the tenant; "
            "`built-in` for the built-in types."
        ),
    ]
    builtin: Annotated[
        bool,
        msgspec.Meta(
            description="True for a type the service defines for every tenant, false for one "
            "the tenant defined."
        ),
    ]


class PurposePage(msgspec.Struct, frozen=True, kw_only=True):
    """One page of the tenant's purposes, by key."""

    items: Annotated[
        list[Purpose], msgspec.Meta(description="The purposes of this page, by key ascending.")
    ]
    next_cursor: Annotated[str | None, msgspec.Meta(description=_NEXT_CURSOR)]


class NoticePage(msgspec.Struct, frozen=True, kw_only=True):
    """One page of the tenant's notices, by key."""

    items: Annotated[
        list[Notice], msgspec.Meta(description="The notices of this page, by key ascending.")
    ]
    next_cursor: Annotated[str | None, msgspec.Meta(description=_NEXT_CURSOR)]


class NoticeVersionPage(msgspec.Struct, frozen=True, kw_only=True):
    """One page of a notice's versions, newest first, drafts included."""

    items: Annotated[
        list[NoticeVersion],
        msgspec.Meta(
            description="The notice's versions on this page, newest (highest number) first, "
            "drafts included."
        ),
    ]
    next_cursor: Annotated[str | None, msgspec.Meta(description=_NEXT_CURSOR)]


class VendorPage(msgspec.Struct, frozen=True, kw_only=True):
    """One page of the tenant's vendors, by name."""

    items: Annotated[
        list[Vendor], msgspec.Meta(description="The vendors of this page, by name ascending.")
    ]
    next_cursor: Annotated[str | None, msgspec.Meta(description=_NEXT_CURSOR)]


class IdentifierTypePage(msgspec.Struct, frozen=True, kw_only=True):
    """One page of the identifier types a tenant can use, built-in and custom."""

    items: Annotated[
        list[IdentifierType],
        msgspec.Meta(
            description="Built-in and custom identifier types of this page, by key ascending."
        ),
    ]
    next_cursor: Annotated[str | None, msgspec.Meta(description=_NEXT_CURSOR)]
