"""RFC 9457 problem details: the only error format the API speaks.

Every problem type has a stable slug; its `type` URI is `/problems/<slug>`, which the service
also serves as a human-readable page. `detail` never carries SQL, stack traces or personal data.
"""

from __future__ import annotations

import re
from typing import Any, Final

import asyncpg
import msgspec
import structlog
from litestar import Request, Response
from litestar.exceptions import (
    HTTPException,
    NotAuthorizedException,
    NotFoundException,
    PermissionDeniedException,
    ValidationException,
)
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR

from consent.db.database import DatabaseUnavailable
from consent.decisions.engine import PolicyUnavailable

__all__ = [
    "PROBLEM_TYPES",
    "Conflict",
    "FieldError",
    "Forbidden",
    "NotFound",
    "Problem",
    "ProblemError",
    "ServiceUnavailable",
    "Unauthorized",
    "ValidationFailed",
    "exception_handlers",
]

PROBLEM_MEDIA_TYPE: Final = "application/problem+json"
_log = structlog.get_logger(__name__)

# slug -> (title, explanation for the problem page)
PROBLEM_TYPES: Final[dict[str, tuple[str, str]]] = {
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


class FieldError(msgspec.Struct, frozen=True):
    field: str
    message: str


class Problem(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """An RFC 9457 problem details object."""

    type: str
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    request_id: str | None = None
    errors: list[FieldError] | None = None


class ProblemError(Exception):
    """Base of every error that becomes a problem response."""

    status: int = 400
    slug: str = "validation-error"

    def __init__(
        self,
        detail: str | None = None,
        *,
        errors: list[FieldError] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail or self.slug)
        self.detail = detail
        self.errors = errors
        self.headers = headers or {}


class ValidationFailed(ProblemError):
    status, slug = 400, "validation-error"

    @classmethod
    def field(cls, field: str, message: str) -> ValidationFailed:
        return cls(message, errors=[FieldError(field, message)])


class Unauthorized(ProblemError):
    status, slug = 401, "unauthorized"


class Forbidden(ProblemError):
    status, slug = 403, "forbidden"


class NotFound(ProblemError):
    status, slug = 404, "not-found"


class Conflict(ProblemError):
    status, slug = 409, "conflict"


class IdempotencyKeyReused(ProblemError):
    status, slug = 422, "idempotency-key-reused"


class ServiceUnavailable(ProblemError):
    status, slug = 503, "service-unavailable"


_STATUS_SLUGS: Final = {
    400: "validation-error",
    401: "unauthorized",
    403: "forbidden",
    404: "not-found",
    405: "method-not-allowed",
    409: "conflict",
    413: "payload-too-large",
    415: "unsupported-media-type",
    503: "service-unavailable",
}


def problem_response(
    request: Request[Any, Any, Any],
    status: int,
    slug: str,
    detail: str | None = None,
    errors: list[FieldError] | None = None,
    headers: dict[str, str] | None = None,
) -> Response[Problem]:
    title = PROBLEM_TYPES.get(slug, PROBLEM_TYPES["internal-error"])[0]
    problem = Problem(
        type=f"/problems/{slug}",
        title=title,
        status=status,
        detail=detail,
        instance=request.url.path,
        request_id=request.scope.get("state", {}).get("request_id"),
        errors=errors,
    )
    return Response(problem, status_code=status, media_type=PROBLEM_MEDIA_TYPE, headers=headers)


_UNKNOWN_FIELD: Final = re.compile(r"unknown field `([^`]{1,100})`")
_MISSING_FIELD: Final = re.compile(r"missing required field `([^`]{1,100})`")
_BODY: Final = frozenset({"data", "body"})
_AT_PATH: Final = re.compile(r" - at `\$\.?([^`]{0,200})`$")
_ENUM_VALUE: Final = re.compile(r"^Invalid enum value .*$", re.DOTALL)  # msgspec quotes the value
# Parameters named as clients send them, not as the handlers' Python arguments.
_PARAMETER_NAMES: Final = {"idempotency_key": "Idempotency-Key"}
_EMPTY_BODY: Final = "The request body is empty."


def _validation_errors(extra: Any) -> list[FieldError]:
    """Litestar/msgspec validation details -> [{field, message}] (never echoing values)."""
    errors: list[FieldError] = []
    items = extra if isinstance(extra, list) else [extra] if extra else []
    for item in items:
        if isinstance(item, dict):
            key = str(item.get("key") or item.get("source") or "body")
            message = str(item.get("message", "invalid value"))
            if key in _BODY and message == f"'{key}'":  # Litestar's KeyError: no body at all
                errors.append(FieldError("body", _EMPTY_BODY))
                continue
            key = _PARAMETER_NAMES.get(key, key)
            at: str | None = None
            path = _AT_PATH.search(message)
            if path:
                message = message[: path.start()]
                at = path.group(1)
            elif item.get("source") == "body" or key in _BODY:
                at = "" if key in _BODY else key  # Litestar took the path out of the message
            message = _ENUM_VALUE.sub("Invalid enum value", message)
            named = _UNKNOWN_FIELD.search(message) or _MISSING_FIELD.search(message)
            if named and at is not None:
                key = f"{at}.{named.group(1)}" if at else named.group(1)
            elif at:
                key = at
            errors.append(FieldError(key, message))
    return errors


def _on_problem(request: Request[Any, Any, Any], exc: ProblemError) -> Response[Problem]:
    return problem_response(request, exc.status, exc.slug, exc.detail, exc.errors, exc.headers)


def _on_validation(request: Request[Any, Any, Any], exc: ValidationException) -> Response[Problem]:
    errors = _validation_errors(exc.extra)
    detail = (
        errors[0].message if len(errors) == 1 else "The request body or parameters are invalid."
    )
    return problem_response(request, 400, "validation-error", detail, errors or None)


def _on_http(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Problem]:
    slug = _STATUS_SLUGS.get(exc.status_code, "internal-error")
    if exc.status_code >= HTTP_500_INTERNAL_SERVER_ERROR:
        return problem_response(request, exc.status_code, slug)
    detail = exc.detail if isinstance(exc.detail, str) and exc.detail else None
    if isinstance(exc, NotAuthorizedException | PermissionDeniedException | NotFoundException):
        detail = None if detail in {"Unauthorized", "Forbidden", "Not Found"} else detail
    return problem_response(request, exc.status_code, slug, detail, headers=exc.headers)


def _on_unavailable(request: Request[Any, Any, Any], exc: Exception) -> Response[Problem]:
    _log.warning("dependency.unavailable", error=type(exc).__name__)
    return problem_response(
        request,
        503,
        "service-unavailable",
        "The database is unavailable.",
        headers={"Retry-After": "1"},
    )


def _on_policy_unavailable(
    request: Request[Any, Any, Any], exc: PolicyUnavailable
) -> Response[Problem]:
    _log.warning("policy.unavailable", error=str(exc)[:500])
    return problem_response(
        request,
        503,
        "policy-unavailable",
        "The policy engine gave no decision; this is not a denial. Retry later.",
        headers={"Retry-After": "1", **exc.headers},
    )


def _on_unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[Problem]:
    _log.error("request.failed", error=type(exc).__name__, exc_info=exc)
    return problem_response(request, 500, "internal-error")


def _on_postgres(request: Request[Any, Any, Any], exc: Exception) -> Response[Problem]:
    if isinstance(exc, _UNSTORABLE_TEXT):
        # A text PostgreSQL cannot hold: the client's input, not our failure (the write's
        # transaction is rolled back). Which field is not known here.
        return problem_response(
            request, 400, "validation-error", "Text must not contain the NUL character (U+0000)."
        )
    if isinstance(exc, asyncpg.exceptions.LockNotAvailableError):
        # lock_timeout (Database.tenant_hot): a long transaction holds what this write needs.
        _log.warning("write.lock_wait_gave_up", error=type(exc).__name__)
        return problem_response(
            request,
            503,
            "service-unavailable",
            "Another operation (such as a bulk import) holds this subject's records; nothing "
            "was written. Retry in a few seconds.",
            headers={"Retry-After": "5"},
        )
    if isinstance(
        exc,
        asyncpg.CannotConnectNowError
        | asyncpg.PostgresConnectionError
        | asyncpg.exceptions.OperatorInterventionError
        | asyncpg.exceptions.InsufficientResourcesError,
    ):
        return _on_unavailable(request, exc)
    return _on_unexpected(request, exc)


_UNSTORABLE_TEXT: Final = (
    asyncpg.exceptions.CharacterNotInRepertoireError,
    asyncpg.exceptions.UntranslatableCharacterError,
)


def exception_handlers() -> dict[type[Exception] | int, Any]:
    return {
        ProblemError: _on_problem,
        PolicyUnavailable: _on_policy_unavailable,
        ValidationException: _on_validation,
        HTTPException: _on_http,
        DatabaseUnavailable: _on_unavailable,
        OSError: _on_unavailable,
        TimeoutError: _on_unavailable,
        asyncpg.InterfaceError: _on_unavailable,
        asyncpg.PostgresError: _on_postgres,
        Exception: _on_unexpected,
    }
