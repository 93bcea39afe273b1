"""API shapes of subjects and identifiers."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

import msgspec

__all__ = [
    "ErasureRequest",
    "ErasureResult",
    "ExportRequest",
    "ExportedIdentifier",
    "IdentifierIn",
    "LinkRequest",
    "LinkResult",
    "SubjectRef",
]

IdType = Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9_]{0,31}$")]

_ID_TYPE = (
    "The identifier's type: a built-in `device` (cookie or device id), `email`, "
    "`customer_id`, `loyalty_card` or `phone`, or a custom type the tenant defined "
    "(`POST /v1/identifier-types`). A lowercase letter, then up to 31 of a-z, 0-9, `_`."
)
_ID_VALUE = (
    "The identifier as the client knows it (1-320 characters, e.g. `ann@example.com`), "
    "normalised by type before lookup: `email` trimmed and lower-cased, its domain in ASCII "
    "as IDNA 2008 spells it (UTS 46 non-transitional: `straße.de` is `xn--strae-oqa.de`, "
    "not `strasse.de`), invisible characters such as a zero-width space refused, a `+tag` "
    "or a dot in the local part kept (another address); `phone` to E.164 (`+4930123456`; "
    "full-width digits read as digits, a trunk prefix `(0)` dropped, spaces, dots, dashes "
    "(typographic ones too), slashes and parentheses dropped, a leading `00` read as `+`; a "
    "national number without its country code or a number with letters is refused); "
    "`loyalty_card` without spaces and dashes, "
    "upper-cased; other types trimmed, 1-200 visible ASCII characters. The ledger keeps it "
    "only as a keyed hash (HMAC) and encrypted."
)
_REF_SUBJECT_ID = (
    "The subject's id (UUID), as returned in an earlier `subject_id`. Give exactly one of "
    "`subject_id` and `identifier`. A subject merged into another by a link stands for its "
    "surviving subject."
)
_REF_IDENTIFIER = (
    "The subject named by one of its identifiers, instead of `subject_id`; give exactly one "
    "of the two. An identifier no subject has yet is added to the survivor by a link, and "
    "denied as `denied.unknown_subject` by a decision."
)
_ERASE_SUBJECT_ID = (
    "The id (UUID) of the subject to erase, instead of `identifier`; give exactly one of the "
    "two. A subject merged by a link stands for its surviving subject. Unknown: 404."
)
_ERASE_IDENTIFIER = (
    "An identifier of the person to erase (the e-mail address, phone number or customer id "
    "they wrote from), instead of `subject_id`. Its subject is erased with every subject "
    "linked into it; an identifier the ledger does not (or no longer) know answers 404."
)


class IdentifierIn(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """An identifier as a client knows it; normalised, then stored only HMAC'd and encrypted."""

    type: Annotated[IdType, msgspec.Meta(description=_ID_TYPE)]
    value: Annotated[str, msgspec.Meta(min_length=1, max_length=320, description=_ID_VALUE)]


class SubjectRef(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Who a write or lookup is about: a subject id, or an identifier."""

    subject_id: Annotated[UUID | None, msgspec.Meta(description=_REF_SUBJECT_ID)] = None
    identifier: Annotated[IdentifierIn | None, msgspec.Meta(description=_REF_IDENTIFIER)] = None


class LinkRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Two or more references to the same person (e.g. a device id and the e-mail at login)."""

    subjects: Annotated[
        list[SubjectRef],
        msgspec.Meta(
            min_length=2,
            max_length=10,
            description="2-10 references to the same person. Their subjects are merged into "
            "the oldest; an identifier no subject has yet is added to it (a new subject is "
            "created when no reference names an existing one). Malformed references answer "
            "400, every one of them named (`subjects[1].identifier.value`), before any is "
            "looked up; then an unknown `subject_id` (or one of another tenant, or erased) "
            "answers 404.",
        ),
    ]


class LinkResult(msgspec.Struct, frozen=True, kw_only=True):
    """The outcome of a link: the surviving subject, and the subjects merged into it."""

    subject_id: Annotated[
        UUID,
        msgspec.Meta(
            description="The surviving subject (UUID): the oldest of the subjects named, or "
            "a new one when none existed. Per purpose and preference, its state now holds the "
            "latest choice of all of them."
        ),
    ]
    merged: Annotated[
        list[UUID],
        msgspec.Meta(
            description="The subjects this call merged into `subject_id` (UUIDs); empty when "
            "every reference already belonged to it. Their ids stay valid and stand for it."
        ),
    ]
    linked_at: Annotated[
        datetime,
        msgspec.Meta(description="When the server linked them: an ISO 8601 timestamp in UTC."),
    ]


class ErasureRequest(SubjectRef, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Whom to erase: a subject id, or an identifier (in the body, so that an e-mail address
    in an erasure request never lands in a URL or an access log)."""

    subject_id: Annotated[UUID | None, msgspec.Meta(description=_ERASE_SUBJECT_ID)] = None
    identifier: Annotated[IdentifierIn | None, msgspec.Meta(description=_ERASE_IDENTIFIER)] = None


class ErasureResult(msgspec.Struct, frozen=True, kw_only=True):
    """What an erasure destroyed, and the audit leaves that record it."""

    subject_id: Annotated[
        UUID,
        msgspec.Meta(
            description="The surviving subject that was erased (UUID): the one named, or "
            "the subject it had been merged into by a link."
        ),
    ]
    # The subject and every subject that had been linked into it.
    erased_subjects: Annotated[
        list[UUID],
        msgspec.Meta(
            description="Every subject erased (UUIDs): `subject_id` and every subject that "
            "had been linked into it. Each now answers 404."
        ),
    ]
    erased_at: Annotated[
        datetime,
        msgspec.Meta(
            description="When the server erased them: an ISO 8601 timestamp in UTC (a retry "
            "with the same Idempotency-Key answers the first erasure's time)."
        ),
    ]
    # One `subject.erased` leaf per erased subject (`GET /v1/audit/events/{id}/proof`).
    audit_events: Annotated[
        list[UUID],
        msgspec.Meta(
            description="The ids (UUIDs) of the `subject.erased` audit leaves, one per erased "
            "subject that had been written to (`GET /v1/audit/events/{id}/proof`)."
        ),
    ]


_EXPORT_SUBJECT_ID = (
    "The id (UUID) of the subject whose data to export, instead of `identifier`; give exactly "
    "one of the two. A subject merged by a link stands for its surviving subject. Unknown or "
    "erased: 404."
)
_EXPORT_IDENTIFIER = (
    "An identifier of the person asking for their data (the e-mail address, phone number or "
    "customer id they wrote from), instead of `subject_id`. The document is that of the "
    "subject it belongs to, with every subject linked into it; an identifier the ledger does "
    "not (or no longer) know answers 404."
)


class ExportRequest(SubjectRef, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Whose data to export: a subject id, or an identifier (in the body, so that an e-mail
    address in an access request never lands in a URL or an access log)."""

    subject_id: Annotated[UUID | None, msgspec.Meta(description=_EXPORT_SUBJECT_ID)] = None
    identifier: Annotated[IdentifierIn | None, msgspec.Meta(description=_EXPORT_IDENTIFIER)] = None


class ExportedIdentifier(msgspec.Struct, frozen=True, kw_only=True):
    """One of the person's identifiers, decrypted: what the service holds, only encrypted
    under the subject's data key, and shows nowhere else."""

    type: Annotated[
        str,
        msgspec.Meta(
            description="The identifier's type: `device`, `email`, `customer_id`, "
            "`loyalty_card`, `phone` or a type the tenant defined."
        ),
    ]
    value: Annotated[
        str,
        msgspec.Meta(
            description="The identifier as the service keeps it: normalised by its type when "
            "first seen (an e-mail address in lower case, a phone number in E.164)."
        ),
    ]
    first_seen_at: Annotated[
        datetime,
        msgspec.Meta(
            description="When the service first saw the identifier (it then belonged to this "
            "subject or to one since linked into it): an ISO 8601 timestamp in UTC."
        ),
    ]
