"""RFC 9457 problem details: the only error format the API speaks.

Every problem type has a stable slug; its `type` URI is `/problems/<slug>`, which the service
also serves as a human-readable page. `detail` never carries SQL, stack traces or personal data.
"""

from __future__ import annotations

import re
import traceback
from http import HTTPStatus
from typing import Any, Final

import asyncpg
import msgspec
import structlog
from litestar import Request, Response
from litestar.exceptions import (
    HTTPException,
    MethodNotAllowedException,
    NotFoundException,
    SerializationException,
    ValidationException,
)
from litestar.exceptions.http_exceptions import RequestEntityTooLarge
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR

from consent import locales
from consent.db.database import DatabaseUnavailable
from consent.decisions.engine import PolicyUnavailable
from consent.locales import Localized, fields

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
    "language_headers",
    "msgspec_field",
]

PROBLEM_MEDIA_TYPE: Final = "application/problem+json"
_log = structlog.get_logger(__name__)

# slug -> (title, explanation for the problem page), in English; every language's texts are in
# consent.locales, and a problem is answered in the language Accept-Language prefers.
PROBLEM_TYPES: Final[dict[str, tuple[str, str]]] = locales.PROBLEMS[locales.DEFAULT_LANGUAGE]


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

    @classmethod
    def of(cls, errors: list[FieldError], summary: str) -> ValidationFailed:
        """One problem listing every error: its detail the only error's message, else
        `summary` (what kind of thing was refused)."""
        return cls(errors[0].message if len(errors) == 1 else summary, errors=errors)


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
    language: str | None = None,
) -> Response[Problem]:
    """The problem's texts in the language the request's Accept-Language prefers (English
    otherwise; `language` when the caller has negotiated it): `title`, and `detail` and `errors`
    messages given as `Localized` texts. `type`, `status` and the field names are the same in
    every language."""
    if language is None:
        language = locales.negotiate(request.headers.get("accept-language"))
    title = locales.problem_texts(slug, language)[0]
    if isinstance(detail, Localized):
        detail = detail.in_language(language)
    if errors and any(isinstance(e.message, Localized) for e in errors):
        errors = [_in_language(e, language) for e in errors]
    problem = Problem(
        type=f"/problems/{slug}",
        title=title,
        status=status,
        detail=detail,
        instance=request.url.path,
        request_id=request.scope.get("state", {}).get("request_id"),
        errors=errors,
    )
    return Response(
        problem,
        status_code=status,
        media_type=PROBLEM_MEDIA_TYPE,
        headers=language_headers(language, headers),
    )


def language_headers(language: str, headers: dict[str, str] | None = None) -> dict[str, str]:
    """`headers` plus `Content-Language` and `Vary: Accept-Language` (added to a `Vary` there
    is): for an answer whose body depends on the request's Accept-Language."""
    out = {**(headers or {}), "Content-Language": language}
    vary = next((name for name in out if name.lower() == "vary"), None)
    if vary is None:
        out["Vary"] = "Accept-Language"
    elif "accept-language" not in out[vary].lower():
        out[vary] = f"{out[vary]}, Accept-Language"
    return out


def _in_language(error: FieldError, language: str) -> FieldError:
    if isinstance(error.message, Localized):
        return FieldError(error.field, error.message.in_language(language))
    return error


def _decoded_in_language(error: FieldError, language: str) -> FieldError:
    """A field error worded by msgspec/Litestar in `language` (a known shape; else as it is)."""
    if isinstance(error.message, Localized):
        return error  # problem_response gives it in the language
    message = fields.in_language(error.message, language)
    return error if message is error.message else FieldError(error.field, message)


_UNKNOWN_FIELD: Final = re.compile(r"unknown field `([^`]{1,100})`")
_MISSING_FIELD: Final = re.compile(r"missing required field `([^`]{1,100})`")
_BODY: Final = frozenset({"data", "body"})
_AT_PATH: Final = re.compile(r" - at `\$\.?([^`]{0,200})`$")
# Litestar's detail of a required query parameter not sent (it gives no `extra`).
_MISSING_PARAMETER: Final = re.compile(r"Missing required query parameter '([^']{1,100})' ")
_QUERY_PARAMETER_MISSING: Final = Localized("query-parameter-missing")
_ENUM_VALUE: Final = re.compile(r"^Invalid enum value .*$", re.DOTALL)  # msgspec quotes the value
# Parameters named as clients send them, not as the handlers' Python arguments.
_PARAMETER_NAMES: Final = {
    "idempotency_key": "Idempotency-Key",
    # GET /v1/audit/consistency's `from` and `to` (`from` cannot be a Python argument's name)
    "first": "from",
    "second": "to",
}
_EMPTY_BODY: Final = Localized("empty-body")
_INVALID_INPUT: Final = Localized("invalid-input")
_DATABASE_UNAVAILABLE: Final = Localized("database-unavailable")
_NO_DECISION: Final = Localized("policy-no-decision")
_NUL_CHARACTER: Final = Localized("nul-character")
_RECORDS_LOCKED: Final = Localized("records-locked")


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
            if item.get("source") == "body" or key in _BODY:
                at = "" if key in _BODY else key  # Litestar took the path out of the message
            path, message = msgspec_field(message, at)
            message = _ENUM_VALUE.sub("Invalid enum value", message)
            if path:
                key = path
            elif key in _BODY:  # the whole body (a JSON array where an object belongs)
                key = "body"
            errors.append(FieldError(key, message))
    return errors


def msgspec_field(message: str, at: str | None = "") -> tuple[str | None, str]:
    """The field msgspec's `message` about a decoded document is about, and the message
    without the ` - at `$.a.b`` it appends: that path (else `at`: None when the message is not
    about a document), with the field an "unknown field" or "missing required field" message
    names appended (`context.jurisdiction`, `choices[1].purpose`)."""
    found = _AT_PATH.search(message)
    if found is not None:
        message, at = message[: found.start()], found.group(1)
    named = _UNKNOWN_FIELD.search(message) or _MISSING_FIELD.search(message)
    if named is not None and at is not None:
        return (f"{at}.{named.group(1)}" if at else named.group(1)), message
    return at, message


def _on_problem(request: Request[Any, Any, Any], exc: ProblemError) -> Response[Problem]:
    return problem_response(request, exc.status, exc.slug, exc.detail, exc.errors, exc.headers)


def _on_validation(request: Request[Any, Any, Any], exc: ValidationException) -> Response[Problem]:
    language = locales.negotiate(request.headers.get("accept-language"))
    errors = _validation_errors(exc.extra)
    missing = _MISSING_PARAMETER.match(exc.detail) if not errors else None
    if missing is not None:  # Litestar's words, with no `extra`: name the parameter
        errors = [FieldError(missing.group(1), _QUERY_PARAMETER_MISSING)]
    if language != locales.DEFAULT_LANGUAGE:  # msgspec's words are English already
        errors = [_decoded_in_language(e, language) for e in errors]
    detail = errors[0].message if len(errors) == 1 else _INVALID_INPUT
    return problem_response(
        request, 400, "validation-error", detail, errors or None, language=language
    )


def _on_http(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Problem]:
    """What Litestar refuses itself (a method, a path, a body it cannot read or that is too
    large, a header): the service's own words for it, never Litestar's stock English."""
    status = exc.status_code
    slug = _STATUS_SLUGS.get(status, "internal-error")
    if status >= HTTP_500_INTERNAL_SERVER_ERROR:
        return problem_response(request, status, slug)
    language = locales.negotiate(request.headers.get("accept-language"))
    headers = dict(exc.headers or {})
    detail = exc.detail if isinstance(exc.detail, str) and exc.detail else None
    errors: list[FieldError] | None = None
    if isinstance(exc, MethodNotAllowedException):
        detail = _methods_allowed(headers)
    elif isinstance(exc, RequestEntityTooLarge):
        detail = _body_too_large(request)
    elif isinstance(exc, NotFoundException) and detail is not None:
        # The router's (no route has the path) or a static file's ("no file or directory
        # match the path <path> was found").
        detail = _NO_SUCH_FILE if detail.startswith(_STATIC_MISSING) else _NO_SUCH_PATH
    elif isinstance(exc.__cause__, SerializationException) and detail is not None:
        # A body msgspec could not read: its words (the reason, the byte), in the language.
        detail = fields.in_language(detail, language)
        errors = [FieldError("body", detail)]
    elif detail is not None and (header := _BAD_HEADERS.get(detail.split(":", 1)[0])):
        detail = header[1]
        errors = [FieldError(*header)]
    elif detail == HTTPStatus(status).phrase:  # Litestar's stock words: the title says it
        detail = None
    return problem_response(request, status, slug, detail, errors, headers, language)


# The methods in the order they are listed in `Allow` and in a 405's detail; others after them.
_METHOD_ORDER: Final = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
# The start of Litestar's detail of a file its static files router does not have.
_STATIC_MISSING: Final = "no file or directory match the path"
_NO_SUCH_FILE: Final = Localized("no-such-file")
_NO_SUCH_PATH: Final = Localized("no-such-path")
# Litestar's detail (up to a colon) of a request header it cannot read -> (header, message).
_BAD_HEADERS: Final = {
    "Invalid content-length": ("Content-Length", Localized("content-length-invalid")),
    "Invalid host header": ("Host", Localized("host-invalid")),
}


def _methods_allowed(headers: dict[str, str]) -> str | None:
    """A 405's detail naming the methods its path takes (Litestar's router puts them in an
    `allow` header, in no particular order): and that header as `Allow`, in the same order."""
    name = next((name for name in headers if name.lower() == "allow"), None)
    if name is None:
        return None
    given = {method.strip().upper() for method in headers.pop(name).split(",") if method.strip()}
    methods = [m for m in _METHOD_ORDER if m in given] + sorted(given - set(_METHOD_ORDER))
    headers["Allow"] = ", ".join(methods)
    return Localized("methods-allowed", methods=headers["Allow"])


def _body_too_large(request: Request[Any, Any, Any]) -> str | None:
    """A 413's detail naming the limit of the operation (`request_max_body_size` of its route,
    or of the app: 1 MiB; `POST /v1/decisions/batch`: 16 MiB) in bytes."""
    handler = request.scope.get("route_handler")
    resolve = getattr(handler, "resolve_request_max_body_size", None)
    limit = resolve() if resolve is not None else None
    return None if limit is None else Localized("body-too-large", limit=limit)


def _on_unavailable(request: Request[Any, Any, Any], exc: Exception) -> Response[Problem]:
    _log.warning("dependency.unavailable", error=type(exc).__name__)
    return problem_response(
        request,
        503,
        "service-unavailable",
        _DATABASE_UNAVAILABLE,
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
        _NO_DECISION,
        headers={"Retry-After": "1", **exc.headers},
    )


def _on_unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[Problem]:
    _log.error("request.failed", error=type(exc).__name__, exc_info=exc)
    return problem_response(request, 500, "internal-error")


def _on_postgres(request: Request[Any, Any, Any], exc: Exception) -> Response[Problem]:
    if isinstance(exc, _UNSTORABLE_TEXT):
        # A text PostgreSQL cannot hold: the client's input, not our failure (the write's
        # transaction is rolled back). Which field is not known here.
        return problem_response(request, 400, "validation-error", _NUL_CHARACTER)
    if isinstance(exc, asyncpg.exceptions.LockNotAvailableError):
        # lock_timeout (Database.tenant_hot): a long transaction holds what this write needs.
        _log.warning("write.lock_wait_gave_up", error=type(exc).__name__)
        return problem_response(
            request,
            503,
            "service-unavailable",
            _RECORDS_LOCKED,
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
    # PostgreSQL's message carries the DETAIL of the failure ("Failing row contains (...)",
    # "Key (...)=(...)"): values of the request, which may be personal data. The log gets where
    # and what kind, never the values.
    _log.error(
        "request.failed",
        error=type(exc).__name__,
        sqlstate=getattr(exc, "sqlstate", None),
        table=getattr(exc, "table_name", None),
        constraint=getattr(exc, "constraint_name", None),
        stack="".join(traceback.format_tb(exc.__traceback__)),
    )
    return problem_response(request, 500, "internal-error")


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
        # A connection whose protocol failed (a rollback over a connection lost mid-statement).
        asyncpg.InternalClientError: _on_unavailable,
        asyncpg.PostgresError: _on_postgres,
        Exception: _on_unexpected,
    }
