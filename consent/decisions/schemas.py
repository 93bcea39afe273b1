"""API shapes of decisions, batches, audience filtering, replay and the policy status."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Final, Literal
from uuid import UUID

import msgspec

from consent.decisions.engine import DecisionInput
from consent.decisions.jurisdictions import check_jurisdiction
from consent.subjects.schemas import SubjectRef

__all__ = [
    "MAX_BATCH",
    "ActionCatalogue",
    "ActionInfo",
    "AudienceHeader",
    "AudienceMember",
    "AudienceSummary",
    "AudienceSummaryLine",
    "BatchRequest",
    "BatchResponse",
    "DecisionContext",
    "DecisionOut",
    "DecisionRequest",
    "PolicyStatus",
    "ReasonCatalogue",
    "ReasonText",
    "Replay",
    "StoredDecision",
    "checked_field",
]

MAX_BATCH: Final = 10_000

Action = Annotated[
    str,
    msgspec.Meta(
        pattern=r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$",
        max_length=100,
        description="An action of the policy's closed list, e.g. `email.marketing`; "
        "an action the policy does not know is denied (`denied.unknown_action`).",
    ),
]
_JURISDICTION_PATTERN: Final = r"^[A-Z]{2}(-[A-Z0-9]{1,3})?$"
Jurisdiction = Annotated[
    str,
    msgspec.Meta(
        pattern=_JURISDICTION_PATTERN,
        description="ISO 3166-1 alpha-2 country (DE) or ISO 3166-2 subdivision (US-CA); a code "
        "that does not exist (UK for GB, a misspelt state) is a 400, never the policy's default.",
    ),
]
# On an audience member's line a bad code is no 400: the line is invalid (consent.decisions
# .audience counts and skips it, and the stream goes on).
MemberJurisdiction = Annotated[
    str,
    msgspec.Meta(
        pattern=_JURISDICTION_PATTERN,
        description="ISO 3166-1 alpha-2 country (DE) or ISO 3166-2 subdivision (US-CA). A code "
        "that does not exist (UK for GB, a misspelt state) makes this member's line invalid: "
        "skipped, not decided, counted in the summary's `invalid` and `invalid_lines`; never "
        "the policy's default.",
    ),
]
Age = Annotated[int, msgspec.Meta(ge=0, le=150, description="Age in years, if known.")]
Requester = Annotated[
    str,
    msgspec.Meta(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/@-]{0,99}$",
        description="Id of the system asking (e.g. `esp`, `ads/retargeting`); logged.",
    ),
]


class DecisionContext(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Who asks and the circumstances; the consent state comes from the ledger."""

    requester: Requester
    jurisdiction: Jurisdiction | None = None
    gpc: Annotated[
        bool,
        msgspec.Meta(
            description="A Global Privacy Control signal (`Sec-GPC: 1`) applies to this request. "
            "Where GPC has legal effect (US states listed in the policy's jurisdictions data, "
            "each from the day its requirement began, e.g. `US-CO` from 2024-07-01; `US` alone, "
            "the state not known, as the earliest state) it denies sale, sharing and targeted "
            "advertising (`denied.gpc`); elsewhere it changes nothing."
        ),
    ] = False
    age: Age | None = None
    parental_consent: Annotated[
        bool,
        msgspec.Meta(
            description="Verified parental consent is on record. Without it, a subject whose "
            "`age` is below the digital consent age of `jurisdiction` is denied every purpose "
            "that relies on consent, personalisation, targeted advertising, sale and sharing "
            "(`denied.child`). It does not cover disclosure to third parties of a US child under "
            "13: sale and sharing of such a child also need `parental_consent_third_parties`."
        ),
    ] = False
    parental_consent_third_parties: Annotated[
        bool,
        msgspec.Meta(
            description="A separate verified parental consent to disclosure of the child's data "
            "to third parties is on record (COPPA, 16 CFR 312.5(a)(2)). A US subject whose `age` "
            "is below 13 is sold or shared (`sale_or_share` actions, GET /v1/policy/actions) "
            "only with both this and `parental_consent`; otherwise `denied.child`. It changes "
            "nothing else: not a consent to any purpose, and no effect outside the US or from "
            "13 on."
        ),
    ] = False
    limit_sensitive: Annotated[
        bool,
        msgspec.Meta(
            description="The subject asked to limit the use of their sensitive personal "
            "information; actions that use it are then denied (`denied.sensitive_limited`)."
        ),
    ] = False

    def __post_init__(self) -> None:
        check_jurisdiction(self.jurisdiction)  # its message names the field: see checked_field


# msgspec reports a failed `__post_init__` check at the path of the struct that runs it
# (`context`), not of the field it checks; each such check's message starts with the field's name.
_CHECKED_FIELDS: Final = re.compile(r"^(jurisdiction) is not ")


def checked_field(path: str, message: str) -> str:
    """The path of the field that a validation error at `path` is about: `path` itself, or for a
    `__post_init__` check of one field (`jurisdiction`, in `context`) that field's path
    (`context.jurisdiction`, `decisions[1].context.jurisdiction`)."""
    checked = _CHECKED_FIELDS.match(message)
    if checked is None:
        return path
    return f"{path}.{checked.group(1)}" if path else checked.group(1)


class DecisionRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """May `context.requester` do `action` for `subject`, now?"""

    subject: Annotated[
        SubjectRef,
        msgspec.Meta(
            description="Who the decision is about: exactly one of `subject_id` (a subject "
            "linked into another resolves to the survivor) or `identifier`. A subject the ledger "
            "does not know is denied (`denied.unknown_subject`), not an error; an identifier type "
            "the tenant never defined is a 400."
        ),
    ]
    action: Action
    context: Annotated[
        DecisionContext,
        msgspec.Meta(
            description="Who asks and the circumstances of this request (jurisdiction, GPC, "
            "age, ...); the subject's consents come from the ledger, never from the request."
        ),
    ]


class DecisionOut(msgspec.Struct, frozen=True, kw_only=True):
    """A decision. `allow` is true only when no rule denies; `reasons` are the codes that denied
    it, or the codes that allowed it; `purposes` has the code of every purpose the action needs."""

    decision_id: Annotated[
        UUID,
        msgspec.Meta(
            description="Id of the decision in the decision log (UUIDv7, time-ordered); read it "
            "back with GET /v1/decisions/{decision_id}. For a known subject it is also the "
            "`event_uuid` of its `decision.made` audit leaf."
        ),
    ]
    allow: Annotated[
        bool,
        msgspec.Meta(
            description="True only when no rule denies; an unknown subject, action or purpose "
            "is denied."
        ),
    ]
    reasons: Annotated[
        list[str],
        msgspec.Meta(
            description="Reason codes, sorted: every `denied.*` code when denied, else the "
            "`allowed.*` codes that allowed it (e.g. `allowed.consent`). GET /v1/policy/reasons "
            "says what each means."
        ),
    ]
    purposes: Annotated[
        dict[str, str],
        msgspec.Meta(
            description="The reason code of each purpose the action needs, by purpose key (e.g. "
            "`email_marketing`: `allowed.consent`); empty for an unknown action."
        ),
    ]
    policy_revision: Annotated[
        str,
        msgspec.Meta(
            description="Revision of the policy that decided: `sha256:` and the hex SHA-256 of "
            "its Rego policies and data files, as in GET /v1/policy."
        ),
    ]
    decided_at: Annotated[
        datetime,
        msgspec.Meta(
            description="Decision time (ISO 8601, UTC): the policy input's `now_ns`, truncated "
            "to microseconds; the same for every decision of a batch."
        ),
    ]
    subject_id: Annotated[
        UUID | None,
        msgspec.Meta(
            description="The subject decided about (the survivor, if the one named was linked "
            "into another); null when the ledger knows no such subject (`denied.unknown_subject`)."
        ),
    ]


class BatchRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Up to 10,000 decision requests decided at once: each answer is the one the
    single request would get."""

    decisions: Annotated[
        list[DecisionRequest],
        msgspec.Meta(
            min_length=1,
            max_length=MAX_BATCH,
            description="1 to 10,000 requests, each as the body of POST /v1/decisions. All are "
            "decided as of the same instant and logged in one commit; one invalid request fails "
            "the whole batch.",
        ),
    ]


class BatchResponse(msgspec.Struct, frozen=True, kw_only=True):
    """One decision per request, in the order of the request."""

    batch_id: Annotated[
        UUID,
        msgspec.Meta(
            description="Id of this batch (UUIDv7), logged with each of its decisions "
            "(`batch_id` of GET /v1/decisions/{decision_id})."
        ),
    ]
    decisions: Annotated[
        list[DecisionOut],
        msgspec.Meta(description="One decision per request, in the order of the request."),
    ]


class Replay(msgspec.Struct, frozen=True, kw_only=True):
    """The stored input evaluated under the policy in force now."""

    policy_revision: Annotated[
        str,
        msgspec.Meta(
            description="Revision of the policy in force now, which evaluated the stored input "
            "(`sha256:` and the hex SHA-256 of its Rego policies and data files)."
        ),
    ]
    allow: Annotated[
        bool, msgspec.Meta(description="Today's answer for the stored input (see `allow`).")
    ]
    reasons: Annotated[
        list[str],
        msgspec.Meta(description="Today's reason codes for the stored input, sorted."),
    ]
    purposes: Annotated[
        dict[str, str],
        msgspec.Meta(description="Today's reason code of each purpose the action needs, by key."),
    ]
    differs: Annotated[
        bool,
        msgspec.Meta(
            description="True when today's `allow`, `reasons` or `purposes` differ from the "
            "logged decision's."
        ),
    ]
    # Purposes the current policy needs for the action that the stored input does not cover
    # (the input holds only what the policy of the time needed).
    missing_purposes: Annotated[
        list[str],
        msgspec.Meta(
            description="Purposes the current policy needs for the action that the stored input "
            "has no catalogue entry for (it holds only what the policy of the time needed); the "
            "replay denies them as `denied.unknown_purpose`."
        ),
    ]


class StoredDecision(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """A logged decision: what was asked, the answer, and the exact policy input
    it was made from; optionally replayed under the policy in force now."""

    decision_id: Annotated[
        UUID, msgspec.Meta(description="The decision's id (UUIDv7), as answered when it was made.")
    ]
    decided_at: Annotated[
        datetime,
        msgspec.Meta(
            description="Decision time (ISO 8601, UTC): the input's `now_ns`, truncated to "
            "microseconds."
        ),
    ]
    subject_id: Annotated[
        UUID | None,
        msgspec.Meta(
            description="The subject decided about, as resolved then (the survivor of a link); "
            "null when the ledger knew no such subject (an unknown or erased id or identifier)."
        ),
    ]
    requester: Annotated[
        str, msgspec.Meta(description="The system that asked: `context.requester` of the request.")
    ]
    kind: Annotated[
        str,
        msgspec.Meta(
            description="How it was asked: `single` (POST /v1/decisions) or `batch` "
            "(POST /v1/decisions/batch)."
        ),
    ]
    batch_id: Annotated[
        UUID | None,
        msgspec.Meta(
            description="The `batch_id` of the batch call it was part of; absent for a single "
            "decision."
        ),
    ] = None
    action: Annotated[str, msgspec.Meta(description="The action asked about.")]
    allow: Annotated[
        bool, msgspec.Meta(description="The answer given: true only when no rule denied.")
    ]
    reasons: Annotated[
        list[str],
        msgspec.Meta(
            description="The reason codes answered, sorted: the `denied.*` codes, or the "
            "`allowed.*` codes when allowed."
        ),
    ]
    purposes: Annotated[
        dict[str, str],
        msgspec.Meta(
            description="The reason code answered for each purpose the action needed, by key."
        ),
    ]
    policy_revision: Annotated[
        str,
        msgspec.Meta(
            description="Revision of the policy that decided (`sha256:` and the hex SHA-256 of "
            "its Rego policies and data files)."
        ),
    ]
    input: Annotated[
        DecisionInput,
        msgspec.Meta(
            description="The exact policy input the decision was made from (consent state, "
            "catalogue entries, context and `now_ns`), logged before the answer: evaluated under "
            "`policy_revision` it gives the same decision."
        ),
    ]
    replay: Annotated[
        Replay | None,
        msgspec.Meta(
            description="Only with `replay=true`: the stored input evaluated under the policy in "
            "force now (not logged)."
        ),
    ] = None


# -- audience filter ----------------------------------------------------------------------------


class AudienceHeader(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """First NDJSON line of an audience filter request."""

    action: Action
    context: Annotated[
        DecisionContext,
        msgspec.Meta(
            description="Who asks and the circumstances, for every member (a member line may "
            "override `jurisdiction`, `gpc`, `age`, `parental_consent`, "
            "`parental_consent_third_parties` and `limit_sensitive` for itself)."
        ),
    ]
    # "allowed": echo the lines of allowed members; "all": one result line per member.
    output: Annotated[
        Literal["allowed", "all"],
        msgspec.Meta(
            description="`allowed`: the answer echoes the lines of the allowed members, "
            'verbatim; `all`: one `{"line": n, "allow": bool, "reasons": [...]}` per valid '
            "member, in order."
        ),
    ] = "allowed"


class AudienceMember(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One NDJSON member line: `{"subject_id": ...}` or `{"type": ..., "value": ...}`, with
    optional overrides of the header's context for this member."""

    subject_id: Annotated[
        UUID | None,
        msgspec.Meta(description="The member by subject id; or give `type` and `value`."),
    ] = None
    type: Annotated[
        str | None,
        msgspec.Meta(description="The member's identifier type (e.g. `email`), with `value`."),
    ] = None
    value: Annotated[
        str | None,
        msgspec.Meta(description="The member's identifier value, with `type`."),
    ] = None
    jurisdiction: Annotated[
        MemberJurisdiction | msgspec.UnsetType | None,
        msgspec.Meta(
            description="This member's jurisdiction, instead of the header's (`null`: none)."
        ),
    ] = msgspec.UNSET
    gpc: Annotated[
        bool | msgspec.UnsetType,
        msgspec.Meta(description="This member's Global Privacy Control signal."),
    ] = msgspec.UNSET
    age: Annotated[
        Age | msgspec.UnsetType | None,
        msgspec.Meta(description="This member's age in years."),
    ] = msgspec.UNSET
    parental_consent: Annotated[
        bool | msgspec.UnsetType,
        msgspec.Meta(description="This member's verified parental consent (see the header)."),
    ] = msgspec.UNSET
    parental_consent_third_parties: Annotated[
        bool | msgspec.UnsetType,
        msgspec.Meta(
            description="This member's verified parental consent to disclosure to third "
            "parties (see the header)."
        ),
    ] = msgspec.UNSET
    limit_sensitive: Annotated[
        bool | msgspec.UnsetType,
        msgspec.Meta(description="This member asked to limit the use of sensitive data."),
    ] = msgspec.UNSET

    def __post_init__(self) -> None:
        if isinstance(self.jurisdiction, str):
            check_jurisdiction(self.jurisdiction)


class AudienceSummary(msgspec.Struct, frozen=True, kw_only=True):
    """Last NDJSON line of the answer (`{"summary": ...}`); a stream without it is incomplete."""

    audience_id: Annotated[
        UUID,
        msgspec.Meta(
            description="Id of this run (UUIDv7), under which it is logged with its decisions "
            "(`audience_run`); a run that decides no member (no member lines, or only invalid "
            "ones) used no one's data and is not logged."
        ),
    ]
    action: Annotated[str, msgspec.Meta(description="The header's action.")]
    now_ns: Annotated[
        int,
        msgspec.Meta(
            description="The instant every member was decided as of (ns since the Unix epoch)."
        ),
    ]
    policy_revisions: Annotated[
        list[str],
        msgspec.Meta(
            description="Revisions of the policy that decided (more than one when the policy "
            "was reloaded during the run)."
        ),
    ]
    total: Annotated[int, msgspec.Meta(description="Members decided (valid member lines).")]
    allowed: Annotated[int, msgspec.Meta(description="Members allowed.")]
    denied: Annotated[int, msgspec.Meta(description="Members denied (`total - allowed`).")]
    denied_by_reason: Annotated[
        dict[str, int],
        msgspec.Meta(
            description="Denied members per reason code (`denied.no_consent`, ...); a member "
            "denied for several reasons counts under each, so the counts can add up to more "
            "than `denied`. GET /v1/policy/reasons says what each code means."
        ),
    ]
    invalid: Annotated[
        int,
        msgspec.Meta(
            description="Member lines skipped as invalid (not JSON, not UTF-8, an unknown field "
            "or identifier type, an identifier that does not normalise, a `jurisdiction` that "
            "does not exist): not decided, not logged."
        ),
    ]
    invalid_lines: Annotated[
        list[int],
        msgspec.Meta(description="Line numbers (1-based) of the first 20 invalid lines."),
    ]
    distinct_inputs: Annotated[
        int, msgspec.Meta(description="Distinct policy inputs (consent-state shapes) evaluated.")
    ]


class AudienceSummaryLine(msgspec.Struct, frozen=True, kw_only=True):
    """The last line of an audience filter's answer."""

    summary: Annotated[
        AudienceSummary,
        msgspec.Meta(description="The run's counts; a stream that ends without it is incomplete."),
    ]


class ReasonText(msgspec.Struct, frozen=True, kw_only=True):
    """A reason code and what it means, in a sentence a person can read."""

    code: Annotated[
        str,
        msgspec.Meta(
            description="A reason code, as in `reasons` of a decision (e.g. `denied.gpc`, "
            "`allowed.consent`)."
        ),
    ]
    allow: Annotated[
        bool,
        msgspec.Meta(
            description="True for an `allowed.*` code (why an action was allowed), false for a "
            "`denied.*` code."
        ),
    ]
    text: Annotated[
        str,
        msgspec.Meta(
            description="What the code means, in a sentence a person can read, in `language` "
            "(in English where the catalogue has no translation)."
        ),
    ]


class ActionInfo(msgspec.Struct, frozen=True, kw_only=True):
    """One action of the policy's closed list, what it needs, and what the tenant lacks."""

    action: Annotated[str, msgspec.Meta(description="The action, as named in a decision request.")]
    purposes: Annotated[
        list[str],
        msgspec.Meta(
            description="Keys of the purposes the action needs, all of them (granted, or "
            "allowed by their legal basis) for an allow."
        ),
    ]
    missing_purposes: Annotated[
        list[str],
        msgspec.Meta(
            description="Those of `purposes` the tenant's catalogue does not have: until they are "
            "created (`POST /v1/purposes`), every decision on the action is "
            "`denied.unknown_purpose`."
        ),
    ]
    sale_or_share: Annotated[
        bool,
        msgspec.Meta(
            description="A sale or sharing of personal information (CCPA): denied under a "
            "Global Privacy Control signal where the jurisdiction gives it legal effect, and for "
            "a US child under 13 without both `parental_consent` and "
            "`parental_consent_third_parties`."
        ),
    ]
    targeted_advertising: Annotated[
        bool,
        msgspec.Meta(description="Profile-based advertising (also denied under such a GPC)."),
    ]
    sensitive: Annotated[
        bool,
        msgspec.Meta(
            description="Uses sensitive personal information: denied when the customer limited "
            "its use (`limit_sensitive`)."
        ),
    ]
    personalization: Annotated[
        bool,
        msgspec.Meta(
            description="Profiles the customer to personalise content: denied for a child "
            "below the jurisdiction's digital consent age without parental consent."
        ),
    ]
    direct_marketing: Annotated[
        bool,
        msgspec.Meta(
            description="Markets to the customer directly (e-mail, SMS, targeted ads): a "
            "refusal of any of its purposes denies it whatever the purpose's legal basis "
            "(`denied.objected`; GDPR Art 21(3))."
        ),
    ]


class ActionCatalogue(msgspec.Struct, frozen=True, kw_only=True):
    """Every action the policy being served decides on, against the caller's catalogue."""

    revision: Annotated[
        str,
        msgspec.Meta(
            description="Revision of the policy being served (`sha256:` ...); the actions are "
            "its data (`policies/data/actions.json`)."
        ),
    ]
    actions: Annotated[list[ActionInfo], msgspec.Meta(description="Every action, by name.")]


class ReasonCatalogue(msgspec.Struct, frozen=True, kw_only=True):
    """What every reason code of the policy being served means, in one language."""

    revision: Annotated[
        str,
        msgspec.Meta(
            description="Revision of the policy being served (`sha256:` ...); the texts are part "
            "of it (`policies/data/reasons.json`)."
        ),
    ]
    language: Annotated[
        str,
        msgspec.Meta(
            description="Language of the texts, as tagged in the catalogue (e.g. `en`, `de`): "
            "`lang` if the catalogue has it, else the best Accept-Language match, else `en`."
        ),
    ]
    reasons: Annotated[
        list[ReasonText],
        msgspec.Meta(description="Every reason code of the catalogue with its text, by code."),
    ]


class PolicyStatus(msgspec.Struct, frozen=True, kw_only=True):
    """The decision policy this process serves: its revision, the engine that
    evaluates it, and its decision cache."""

    revision: Annotated[
        str,
        msgspec.Meta(
            description="Revision of the policy bundle this process serves: `sha256:` and the "
            "hex SHA-256 over the paths and contents of its Rego policies and data files. Every "
            "decision names the revision that made it."
        ),
    ]
    engine: Annotated[
        Literal["in-process", "opa-server"],
        msgspec.Meta(
            description="`in-process`: OPA embedded in this process (a pool of engines); "
            "`opa-server`: the OPA server at `CONSENT_OPA_URL`."
        ),
    ]
    loaded_at: Annotated[
        datetime,
        msgspec.Meta(
            description="When this process started serving this revision (ISO 8601, UTC): at "
            "its start or at the last reload that changed the policy."
        ),
    ]
    cache_entries: Annotated[
        int,
        msgspec.Meta(
            description="Results in this process's decision cache (at most "
            "`CONSENT_DECISION_CACHE_SIZE`); 0 when the cache is off. Emptied when a reload "
            "changes the policy."
        ),
    ]
    cache_hits: Annotated[
        int,
        msgspec.Meta(
            description="Evaluations this process answered from its cache since it started "
            "(each worker process counts its own)."
        ),
    ]
    cache_misses: Annotated[
        int,
        msgspec.Meta(
            description="Evaluations this process sent to the engine because its cache did not "
            "have them, since it started."
        ),
    ]
