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

# detail key -> a problem's `detail` (static texts only: never a value from a request)
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
}
