"""API shapes of the audit log (leaves are served as their exact canonical bytes, base64)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

import msgspec

__all__ = [
    "ActivityItem",
    "ActivityPage",
    "AuditEntry",
    "AuditEventInfo",
    "EntriesPage",
    "ExportEntry",
    "ExportFile",
]

_LEAF = (
    "Base64 (standard alphabet) of the leaf's exact canonical bytes (sorted-key JSON); its "
    "RFC 6962 leaf hash is SHA-256(0x00 || these bytes). Hash these, never a re-serialisation."
)
_LEAF_INDEX = "Zero-based position of the leaf in the tenant's Merkle tree (RFC 6962)."
_KIND = (
    "The leaf's kind: `consent.recorded`, `preference.recorded`, `decision.made`, "
    "`audience.used`, `subject.linked`, `subject.erased`, `subject.exported` (an access "
    "export of the subject's data: `GET /v1/subjects/{subject_id}/export`) or `admin.changed`."
)
_EVENT_UUID = (
    "The event's id, also `event_uuid` in the leaf: for a consent or preference change its "
    "`event_id`, for a decision its `decision_id`."
)
_PENDING_INDEX = (
    "Zero-based position of the leaf in the tenant's Merkle tree; null while the integrator "
    "has not yet placed it (usually under a second)."
)


class AuditEventInfo(msgspec.Struct, frozen=True, kw_only=True):
    """Where an event is in the tenant's audit log: its leaf, and the leaf's index
    once integrated (then its inclusion proof can be asked for)."""

    event_uuid: Annotated[UUID, msgspec.Meta(description=_EVENT_UUID)]
    kind: Annotated[str, msgspec.Meta(description=_KIND)]
    # Null while the integrator has not yet placed the leaf in the tree (usually < 1 s).
    leaf_index: Annotated[
        int | None,
        msgspec.Meta(
            description=_PENDING_INDEX + " Its inclusion proof answers 409 `audit-pending` "
            "until then."
        ),
    ]
    log: Annotated[
        str,
        msgspec.Meta(
            description="Origin of the tenant's log (`<CONSENT_AUDIT_ORIGIN>/<tenant id>`): the "
            "first line of its checkpoints and the `log` of its leaves."
        ),
    ]
    # base64 of the canonical leaf bytes: hash these, never a re-serialisation
    leaf: Annotated[str, msgspec.Meta(description=_LEAF)]


class AuditEntry(msgspec.Struct, frozen=True, kw_only=True):
    """One leaf of the tenant's audit log with its index in the Merkle tree."""

    leaf_index: Annotated[int, msgspec.Meta(description=_LEAF_INDEX)]
    leaf: Annotated[str, msgspec.Meta(description=_LEAF)]


class EntriesPage(msgspec.Struct, frozen=True, kw_only=True):
    """A run of consecutive leaves of the tenant's audit log, in index order."""

    items: Annotated[
        list[AuditEntry],
        msgspec.Meta(
            description="Integrated leaves from index `start` on, in index order, at most "
            "`limit`; up to the current tree size, which can be ahead of the latest signed "
            "checkpoint."
        ),
    ]
    next_start: Annotated[
        int | None,
        msgspec.Meta(
            description="The `start` of the next page; null when this page reaches the current "
            "end of the tree (or is empty)."
        ),
    ]


class ActivityItem(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One use of, or change to, the subject's data, with its place in the audit log."""

    event_uuid: Annotated[UUID, msgspec.Meta(description=_EVENT_UUID)]
    kind: Annotated[str, msgspec.Meta(description=_KIND)]
    leaf_index: Annotated[int | None, msgspec.Meta(description=_PENDING_INDEX)]
    occurred_at: Annotated[
        datetime,
        msgspec.Meta(
            description="When it happened, from the leaf (ISO 8601, UTC): for a consent or "
            "preference, when the choice was made (client-supplied for imports); for a decision "
            "or an audience run, the decision time; for an export, its `exported_at`."
        ),
    ]
    recorded_at: Annotated[
        datetime,
        msgspec.Meta(
            description="When the service recorded the event in the audit log (ISO 8601, UTC)."
        ),
    ]
    leaf: Annotated[str, msgspec.Meta(description=_LEAF)]
    # consent.recorded / preference.recorded
    choices: Annotated[
        list[dict[str, Any]] | None,
        msgspec.Meta(
            description="`consent.recorded`: the choices, `{purpose, choice}` (`granted`, "
            "`denied`, `withdrawn`); `preference.recorded`: the preferences, `{kind, key, value}` "
            "(kind `channel`, `topic` or `frequency`). Absent for other kinds."
        ),
    ] = None
    surface: Annotated[
        str | None,
        msgspec.Meta(
            description="`consent.recorded`, `preference.recorded`: where the choice was made "
            "(the event's `surface`, e.g. `banner`); absent for other kinds."
        ),
    ] = None
    channel: Annotated[
        str | None,
        msgspec.Meta(
            description="`consent.recorded`, `preference.recorded`: the event's `channel` "
            "(e.g. `web`); absent for other kinds."
        ),
    ] = None
    method: Annotated[
        str | None,
        msgspec.Meta(
            description="`consent.recorded`, `preference.recorded`: how the choice was "
            "collected (the event's `method`); absent for other kinds."
        ),
    ] = None
    # decision.made / audience.used (the subject was a member of an audience filter run):
    # which system asked to do what, and the answer with its reasons; subject.exported: who
    # asked for the export
    requester: Annotated[
        str | None,
        msgspec.Meta(
            description="`decision.made`, `audience.used`: the system that asked "
            "(`context.requester`); `subject.exported`: the API key that asked for the export "
            "(`api-key:<key id>`, never a secret); absent for other kinds."
        ),
    ] = None
    action: Annotated[
        str | None,
        msgspec.Meta(
            description="`decision.made`, `audience.used`: the action asked about (e.g. "
            "`email.marketing`); absent for other kinds."
        ),
    ] = None
    allow: Annotated[
        bool | None,
        msgspec.Meta(
            description="`decision.made`, `audience.used`: whether it was allowed; absent for "
            "other kinds."
        ),
    ] = None
    reasons: Annotated[
        list[str] | None,
        msgspec.Meta(
            description="`decision.made`, `audience.used`: the reason codes of the answer "
            "(GET /v1/policy/reasons says what each means); absent for other kinds."
        ),
    ] = None
    policy_revision: Annotated[
        str | None,
        msgspec.Meta(
            description="`decision.made`, `audience.used`: revision of the policy that decided "
            "(`sha256:` ...); absent for other kinds."
        ),
    ] = None


class ActivityPage(msgspec.Struct, frozen=True, kw_only=True):
    """One page of a subject's activity: how its data was used and changed, newest
    first."""

    items: Annotated[
        list[ActivityItem],
        msgspec.Meta(
            description="The subject's leaves (and those of every subject linked into it) and "
            "the audience runs that listed it, newest first."
        ),
    ]
    next_cursor: Annotated[
        str | None,
        msgspec.Meta(
            description="Opaque cursor: pass it as `cursor` for the next (older) page; null on "
            "the last page: when it is set, at least one more item follows."
        ),
    ]


class ExportEntry(msgspec.Struct, frozen=True, kw_only=True):
    """One exported leaf with its inclusion proof in the export's signed checkpoint."""

    leaf_index: Annotated[int, msgspec.Meta(description=_LEAF_INDEX)]
    leaf: Annotated[str, msgspec.Meta(description=_LEAF)]
    inclusion_proof: Annotated[
        list[str],
        msgspec.Meta(
            description="RFC 6962 inclusion proof (audit path) of the leaf in the tree of size "
            "`tree_size` signed by `checkpoint`: base64 SHA-256 hashes, the leaf's sibling "
            "first, the root's child last."
        ),
    ]


class ExportFile(msgspec.Struct, frozen=True, kw_only=True):
    """Everything a regulator needs to check these leaves offline with the public key."""

    format: Annotated[
        str, msgspec.Meta(description="Format of this file: `consent-audit-export/v1`.")
    ] = "consent-audit-export/v1"
    vkey: Annotated[
        str,
        msgspec.Meta(
            description="The C2SP note verifier key that signs the checkpoints "
            "(`<name>+<hex key ID>+base64(0x01 || Ed25519 public key)`), as served at "
            "/.well-known/consent-audit-keys."
        ),
    ]
    checkpoint: Annotated[
        str,
        msgspec.Meta(
            description="The log's latest signed checkpoint at export time, verbatim (C2SP "
            "tlog-checkpoint signed note: origin, tree size, base64 root hash, signatures)."
        ),
    ]
    tree_size: Annotated[
        int,
        msgspec.Meta(
            description="Size of the tree `checkpoint` signs: every entry's index is below it "
            "and every proof is against it (later leaves are not exported)."
        ),
    ]
    entries: Annotated[
        list[ExportEntry],
        msgspec.Meta(
            description="The leaves, by index: the subject's (with those of subjects linked "
            "into it and the audience runs that listed it), or those of the period from `since` "
            "to before `until`, to the millisecond, by the time in each event id (a UUID v7 the "
            "leaf commits to, so the leaves themselves show their period); from index `start` "
            "on, at most `limit` (10,000)."
        ),
    ]
    truncated: Annotated[
        bool,
        msgspec.Meta(
            description="True when more leaves matched than `limit`: only those with the "
            "lowest indexes are included, and `next_start` gets the rest."
        ),
    ]
    next_start: Annotated[
        int | None,
        msgspec.Meta(
            description="When `truncated`: the `start` of the next file (same selection); "
            "null when this file holds the last matching leaf."
        ),
    ] = None
