"""English texts of problems (RFC 9457) and their pages: the catalogue every other language
has the same keys as (tests/unit/foundation/test_problem_language.py)."""

from __future__ import annotations

from typing import Final

__all__ = ["DETAILS", "PROBLEMS"]

# problem slug -> (title, explanation for the problem page)
PROBLEMS: Final[dict[str, tuple[str, str]]] = {
    "validation-error": (
        "The request is not valid",
        "A field is missing, has the wrong type or an invalid value; `errors` names each field.",
    ),
    "unauthorized": (
        "Authentication required",
        "Send a valid, unrevoked API key as `Authorization: Bearer <key>`.",
    ),
    "forbidden": (
        "Not allowed",
        "The API key is valid but lacks the scope or origin this operation needs.",
    ),
    "not-found": ("Not found", "Nothing exists at this address for your tenant."),
    "method-not-allowed": ("Method not allowed", "This resource does not support that method."),
    "conflict": (
        "Conflict",
        "The request conflicts with the current state, e.g. a name already in use.",
    ),
    "idempotency-key-reused": (
        "Idempotency key reused with another request",
        "An Idempotency-Key may be retried only with the identical request body.",
    ),
    "audit-pending": (
        "Not yet in the audit log",
        "The event is recorded but not yet in a signed checkpoint (under a second): retry.",
    ),
    "payload-too-large": ("Request body too large", "Send a smaller body or split the request."),
    "unsupported-media-type": ("Unsupported media type", "Send `application/json`."),
    "service-unavailable": (
        "Service temporarily unavailable",
        "A dependency (database, policy engine) is down. Retry later; never read it as a no.",
    ),
    "policy-unavailable": (
        "No policy decision could be made",
        "The policy engine failed, timed out or gave no decision: not a denial, never an allow.",
    ),
    "internal-error": ("Internal error", "Something failed on our side; the request id helps."),
}

# detail key -> a problem's `detail` or a field message (`Localized`); a `{name}` is a value
# the service names (a purpose's key, a scope, a bound), never personal data
DETAILS: Final[dict[str, str]] = {
    "invalid-input": "The request body or parameters are invalid.",
    "empty-body": "The request body is empty.",
    "database-unavailable": "The database is unavailable.",
    "policy-no-decision": "The policy engine gave no decision; this is not a denial. Retry later.",
    "nul-character": "Text must not contain the NUL character (U+0000).",
    "records-locked": "Another operation (such as a bulk import) holds this subject's records; "
    "nothing was written. Retry in a few seconds.",
    "no-such-problem-type": "No such problem type.",
    "send-json": "Send the body as JSON (Content-Type: application/json).",
    "send-ndjson": "Send the body as NDJSON (Content-Type: application/x-ndjson).",
    # -- the service's own texts; `{name}`: a value the text names, the same in every language
    # authentication and tenancy
    "api-key-required": "A valid API key is required (Authorization: Bearer <key>).",
    "key-lacks-scope": "This API key lacks the '{scope}' scope.",
    "banner-key-writes-only": (
        "A banner key (with allowed_origins) may only write: its secret is public."
    ),
    "key-origin-not-allowed": "This API key may only be used from its allowed origins.",
    "banner-key-visitor-only": (
        "A banner key (with allowed_origins) records only a visitor's own choice on the device: "
        "method explicit or gpc, and a device identifier or a subject id. Record other events "
        "(agent, import, an e-mail or phone) from your server with a key without origins."
    ),
    "banner-key-no-link": (
        "A banner key (with allowed_origins) may not link subjects: its secret is public, and a "
        "link merges two people for good. Link from your server with a key without origins."
    ),
    "key-own-property-only": "This API key may only record for its own property.",
    "property-origin-not-allowed": (
        "This property accepts browser requests only from its allowed origins."
    ),
    "name-length": "must be 1-200 characters",
    "no-tenant": "No tenant {tenant_id}.",
    "tenant-not-found": "Tenant not found.",
    "property-exists": "A property with this name exists.",
    "banner-key-scopes": "a key with allowed_origins (a banner key) may only have 'write'",
    "no-such-property": "no such property",
    "key-secret-shown-once": "API key {key_id} was created under this Idempotency-Key; its "
    "secret was shown once only. Revoke that key and create another if the secret was lost.",
    "no-such-api-key": "No such API key.",
    # idempotency
    "idempotency-key-format": "must be 1-200 printable characters",
    "idempotency-key-erased": "This Idempotency-Key's write concerned a person whose data has "
    "since been erased: it is not run again. A new choice needs a new key.",
    "idempotency-key-other-request": "This Idempotency-Key was used for a different request.",
    # lists
    "limit-range": "must be between 1 and {max}",
    "cursor-not-ours": "not a cursor returned by this API",
    "cursor-not-this-list": "not a cursor of this subject's {kind} list (from its next_cursor)",
    # the catalogue
    "listed-twice": "'{key}' is listed twice",
    "necessary-not-consent": "a strictly necessary purpose does not rest on consent",
    "purpose-exists": "Purpose '{key}' exists.",
    "no-purpose": "No purpose '{key}'.",
    "unknown-purposes": "unknown purposes: {purposes}",
    "notice-exists": "Notice '{key}' exists.",
    "no-notice": "No notice '{key}'.",
    "version-draft-open": "Version {version} is an unpublished draft: publish it, or correct it "
    "(PUT) or delete it, first.",
    "version-already-published": "Version {version} is already published.",
    "version-immutable": "Version {version} is published, and a published version is "
    "immutable: draft a new version instead.",
    "notice-has-no-version": "Notice '{key}' has no version {version}.",
    "vendor-exists": "Vendor '{name}' exists.",
    "builtin-identifier-type": "'{key}' is a built-in identifier type.",
    "identifier-type-exists": "Identifier type '{key}' exists.",
    # consents and preferences
    "agent-required": "required when method is 'agent'",
    "time-zone-required": "must include a time zone",
    "in-the-future": "is in the future",
    "before-1970": "is before 1970-01-01T00:00:00Z",
    "purpose-repeated": "a purpose appears more than once in one event",
    "notice-version-required": "required: the notice version shown",
    "notice-hash-needs-version": "needs the notice_version_id it is the hash of",
    "gpc-cannot-grant": (
        "a GPC signal is an objection and grants nothing: record a grant with the method the "
        "person used and the notice version shown"
    ),
    "invalid-consent": "Invalid consent.",
    "unknown-purpose": "unknown purpose '{purpose}'",
    "no-such-notice-version": "no such notice version",
    "notice-version-unpublished": "this notice version is not published",
    "purpose-not-asked": "not asked by the notice shown",
    "notice-hash-mismatch": "does not match the notice version",
    "notice-language-missing": "the notice version has no text in it",
    "before-notice-shown": (
        "is before the notice version was first shown ({since}): a choice cannot have been made "
        "under it then (a version shown before its publication here says since when in its "
        "shown_since)"
    ),
    "invalid-preferences": "Invalid preferences.",
    "preference-twice": "this preference appears twice",
    "value-one-of": "must be one of: {allowed}",
    "channel-one-of": "channel must be one of: {channels}",
    "frequency-per-channel": "frequency is per channel or 'default'",
    # subjects and identifiers
    "no-such-subject": "No such subject.",
    "no-subject-with-identifier": "No subject with this identifier.",
    "subject-id-or-identifier": "give exactly one of subject_id or identifier",
    "unknown-identifier-type": "unknown identifier type '{type}'",
    "not-an-email": "not an e-mail address",
    "not-a-phone-number": "not a phone number in international format (+<country><number>)",
    "identifier-characters": "must be 1-200 visible ASCII characters",
    "identifier-too-long": "too long",
    # the audit log
    "no-audit-log": "This tenant has no audit log yet.",
    "no-checkpoint-yet": "The log has no signed checkpoint yet.",
    "no-checkpoint-of-size": "No signed checkpoint of that size.",
    "no-audit-event": "No audit event with this id.",
    "event-not-integrated": "The event is not yet integrated into the log; retry shortly.",
    "event-after-checkpoint": "the event was integrated after this checkpoint: give a later one",
    "event-newer-than-checkpoint": "The event is newer than that checkpoint; retry shortly.",
    "at-most-tree-size": "must be at most the tree size, {size}",
    "from-range": "must be between 1 and to",
    "subject-or-period-not-both": "give a subject_id, or since and until: not both",
    "until-after-since": "must be later than since",
    "subject-or-period": "give a subject_id or since and until",
    # decisions
    "invalid-subject-references": "Invalid subject references.",
    "ledger-unavailable-no-decision": (
        "The consent ledger is unavailable; no decision was made (not a denial)."
    ),
    "ledger-unavailable": "The consent ledger is unavailable.",
    "catalogue-unavailable": "The catalogue is unavailable.",
    "decision-log-unavailable": "The decision log is unavailable.",
    "no-such-decision": "No such decision.",
    "no-header-line": "the body has no header line",
    "invalid-header": "invalid header: {reason}",
    "header-not-json": "the header line is not JSON",
    "line-longer-than": "line longer than {max} bytes",
    # query parameters, the docs' files
    "unknown-query-parameter": "unknown query parameter; this operation takes {takes}",
    "unknown-query-parameter-none": (
        "unknown query parameter; this operation takes no query parameters"
    ),
    "no-such-file": "No such file.",
    # what Litestar refuses before an operation runs (consent.errors): the method, the path, a
    # body too large, a required parameter missing, a header it cannot read
    "methods-allowed": "This path takes only {methods}.",
    "no-such-path": (
        "No operation has this path; the API's operations are in /schema/openapi.json."
    ),
    "body-too-large": (
        "The request body is larger than this operation takes: at most {limit} bytes."
    ),
    "query-parameter-missing": "a required query parameter, not sent",
    "content-length-invalid": "not a number of bytes",
    "host-invalid": "not a valid host name",
}
