# Copyright 2026 The consent authors
# SPDX-License-Identifier: Apache-2.0
"""Canonical audit leaf encoding: one frozen msgspec Struct per event kind, sorted-key JSON.

Every leaf is a member of the tagged union ``Leaf`` (tag field ``kind``) and carries ``v``, the
schema version of its kind, plus the common envelope ``event_uuid``, ``occurred_at`` (UTC) and
``log`` (the tenant log origin). Fields are limited to ``str``, ``int`` (``|x| < 2**53``),
``bool``, ``None``, ``UUID``, UTC ``datetime``, tuples (JSON arrays) and nested Structs: no
floats and no dicts. Inside these limits msgspec's ``order="sorted"`` output equals RFC 8785
(JCS), so any JCS library can rebuild the bytes (property-tested).

The bytes from ``encode_leaf`` are stored verbatim in ``audit.event.leaf_bytes`` and hashed once;
never re-serialize a leaf from ``jsonb`` or a dict. ``decode_leaf`` rejects non-canonical bytes.

Adding a kind: subclass ``_LeafBase`` with ``tag="<kind>"``, add it to ``Leaf`` and freeze its
golden bytes under ``tests/vectors/audit/``. Changing a kind's fields (adding, renaming, changing
a default) changes its bytes: bump ``v`` and keep decoding the old version.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Final, Literal

import msgspec

__all__ = [
    "KINDS",
    "MAX_SAFE_INT",
    "AdminChanged",
    "AudienceUsed",
    "ConsentRecorded",
    "DecisionMade",
    "Leaf",
    "LeafError",
    "PreferenceChoice",
    "PreferenceRecorded",
    "PurposeChoice",
    "SubjectErased",
    "SubjectExported",
    "SubjectLinked",
    "decode_leaf",
    "encode_leaf",
]

MAX_SAFE_INT: Final = 2**53 - 1

Digest = Annotated[str, msgspec.Meta(pattern=r"^[0-9a-f]{64}$")]
"""Lowercase hex SHA-256."""
SubjectToken = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_-]{43}$")]
"""Unpadded base64url of 32 random bytes."""
Key = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
Version = Annotated[int, msgspec.Meta(ge=1, le=MAX_SAFE_INT)]
UtcDatetime = Annotated[dt.datetime, msgspec.Meta(tz=True)]


class LeafError(ValueError):
    """A leaf cannot be encoded canonically, or bytes are not a canonical leaf."""


class _Struct(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Base for every Struct that appears inside a leaf."""


class _LeafBase(_Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, tag_field="kind"):
    v: Version = 1
    event_uuid: uuid.UUID
    occurred_at: UtcDatetime
    log: Key


class PurposeChoice(_Struct, frozen=True):
    purpose: Key
    choice: Literal["granted", "denied", "withdrawn"]


class PreferenceChoice(_Struct, frozen=True):
    kind: Literal["channel", "topic", "frequency"]
    key: Key
    value: str


class ConsentRecorded(_LeafBase, frozen=True, tag="consent.recorded"):
    """The audit leaf of a consent event: pseudonymous subject, choices, notice
    proof and a digest of the evidence."""

    subject_token: SubjectToken
    choices: tuple[PurposeChoice, ...]
    # None for signals and imports recorded without a notice (e.g. Global Privacy Control).
    notice_version_id: Key | None
    notice_hash: Digest | None
    evidence_digest: Digest


class PreferenceRecorded(_LeafBase, frozen=True, tag="preference.recorded"):
    """The audit leaf of a preference event: pseudonymous subject, preferences and
    a digest of the evidence."""

    subject_token: SubjectToken
    preferences: tuple[PreferenceChoice, ...]
    evidence_digest: Digest


class DecisionMade(_LeafBase, frozen=True, tag="decision.made"):
    decision_id: uuid.UUID
    subject_token: SubjectToken
    requester: Key
    action: Key
    allow: bool
    reasons: tuple[str, ...]
    policy_revision: Key
    state_digest: Digest


class AudienceUsed(_LeafBase, frozen=True, tag="audience.used"):
    """One audience filter run used the data of `members` subjects that shared one decision
    (one chunk of the run, one shape). `members_digest` is the SHA-256 of the canonical list of
    those subjects' random ids and the per-subject values of their exact inputs as stored in
    `audience_member`; `state_digest` that of the shape's policy input."""

    run_id: uuid.UUID
    requester: Key
    action: Key
    allow: bool
    reasons: tuple[str, ...]
    policy_revision: Key
    state_digest: Digest
    members: Annotated[int, msgspec.Meta(ge=1, le=MAX_SAFE_INT)]
    members_digest: Digest


class SubjectLinked(_LeafBase, frozen=True, tag="subject.linked"):
    subject_token: SubjectToken
    linked_subject_token: SubjectToken


class SubjectErased(_LeafBase, frozen=True, tag="subject.erased"):
    subject_token: SubjectToken


class SubjectExported(_LeafBase, frozen=True, tag="subject.exported"):
    """A subject access export (GDPR Art 15 and 20; CCPA right to know) disclosed everything
    held about the subject (and the subjects linked into it), identifiers decrypted: whose data
    (the survivor's pseudonymous token; `subject.linked` leaves name the others), who asked
    (`actor_ref`, e.g. `api-key:<key id>`, never a secret) and when (`occurred_at`: the
    document's `exported_at`). Nothing personal: no identifier, no subject id."""

    subject_token: SubjectToken
    actor_ref: Key


class AdminChanged(_LeafBase, frozen=True, tag="admin.changed"):
    actor_ref: Key
    entity: Key
    entity_id: Key
    operation: Literal["create", "update", "delete"]
    change_digest: Digest


Leaf = (
    ConsentRecorded
    | PreferenceRecorded
    | DecisionMade
    | AudienceUsed
    | SubjectLinked
    | SubjectErased
    | SubjectExported
    | AdminChanged
)
KINDS: Final[dict[str, type[_LeafBase]]] = {
    str(cls.__struct_config__.tag): cls
    for cls in (
        ConsentRecorded,
        PreferenceRecorded,
        DecisionMade,
        AudienceUsed,
        SubjectLinked,
        SubjectErased,
        SubjectExported,
        AdminChanged,
    )
}

_ENCODER: Final = msgspec.json.Encoder(order="sorted")
_DECODER: Final[msgspec.json.Decoder[Leaf]] = msgspec.json.Decoder(Leaf)


# Exact types that are always allowed (subclasses take the isinstance checks below).
_PLAIN: Final = frozenset({str, bool, uuid.UUID, type(None)})
_UTC_OFFSET: Final = dt.timedelta(0)


def _scalar_problem(value: object) -> str | None:
    if isinstance(value, bool | str | uuid.UUID) or value is None:
        return None
    if isinstance(value, int):
        return "integer outside the I-JSON range" if abs(value) > MAX_SAFE_INT else None
    if isinstance(value, dt.datetime):
        ok = value.utcoffset() == _UTC_OFFSET
        return None if ok else "datetimes must be timezone-aware UTC"
    return f"{type(value).__name__} is not allowed in a leaf"


def _problem(value: object) -> tuple[str, str] | None:
    """(path below `value`, message) of the first value a leaf may not hold, else None.

    The path is built only on failure: this runs on every write.
    """
    if type(value) in _PLAIN:
        return None
    if isinstance(value, msgspec.Struct):
        for field in value.__struct_fields__:
            found = _problem(getattr(value, field))
            if found is not None:
                return f".{field}{found[0]}", found[1]
        return None
    if isinstance(value, list | tuple):
        for position, item in enumerate(value):
            found = _problem(item)
            if found is not None:
                return f"[{position}]{found[0]}", found[1]
        return None
    message = _scalar_problem(value)
    return None if message is None else ("", message)


def _check_value(value: object, path: str) -> None:
    """Reject what would make the bytes differ from RFC 8785 or depend on the local zone."""
    found = _problem(value)
    if found is not None:
        raise LeafError(f"{path}{found[0]}: {found[1]}")


def encode_leaf(leaf: Leaf) -> bytes:
    """Canonical bytes of a leaf; validates types and constraints by decoding them back."""
    _check_value(leaf, "leaf")
    data = _ENCODER.encode(leaf)
    try:
        decoded = _DECODER.decode(data)
    except msgspec.ValidationError as exc:
        raise LeafError(f"leaf does not match its schema: {exc}") from exc
    if decoded != leaf:
        raise LeafError("leaf field types do not match its schema")
    return data


def decode_leaf(data: bytes) -> Leaf:
    """Decode and validate canonical leaf bytes (re-encoding must give the same bytes)."""
    try:
        leaf = _DECODER.decode(data)
    except msgspec.DecodeError as exc:
        raise LeafError(f"not a valid leaf: {exc}") from exc
    _check_value(leaf, "leaf")
    if _ENCODER.encode(leaf) != data:
        raise LeafError("leaf bytes are not canonical")
    return leaf
