"""structlog configuration: JSON lines, request and tenant ids bound, personal data dropped.

Personal data and secrets never reach a log line: the redaction processor removes every key
on a deny list (and any key that contains one of the deny-listed words), at any depth.
"""

from __future__ import annotations

import functools
import logging
import sys
import traceback
from collections.abc import Mapping, MutableMapping
from datetime import UTC, datetime
from typing import Any, Final, TextIO

import msgspec
import structlog

__all__ = [
    "GRANIAN_LOG_CONFIG",
    "REDACTED_KEYS",
    "JsonLineFormatter",
    "configure_logging",
    "exception_without_values",
    "format_exc_info_without_values",
    "redact_personal_data",
]

REDACTED_KEYS: Final = frozenset(
    {
        "email",
        "phone",
        "ip",
        "ip_address",
        "user_agent",
        "identifier",
        "identifiers",
        "value",
        "raw",
        "token",
        "secret",
        "password",
        "authorization",
        "api_key",
        "cookie",
        "kek",
        "dek",
        "key_material",
        "private_key",
        "name_of_person",
        "address",
    }
)
_DENY_PARTS: Final = ("secret", "password", "token", "authorization", "email", "phone", "cookie")
_encoder = msgspec.json.Encoder()


@functools.lru_cache(maxsize=1024)
def _is_personal(key: str) -> bool:
    """Memoised: log keys are a small, fixed set (an access line used to spend ~14 us here)."""
    lowered = key.lower()
    return lowered in REDACTED_KEYS or any(part in lowered for part in _DENY_PARTS)


# Values that hold no keys to drop (exact types: a subclass takes the full check).
_FLAT: Final = frozenset({str, int, float, bool, type(None)})


def _scrub(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _scrub(v) for k, v in value.items() if not _is_personal(str(k))}
    if isinstance(value, list | tuple):
        return [_scrub(v) for v in value]
    return value


def redact_personal_data(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: drop personal-data and secret fields (never mask: drop)."""
    for key in [k for k in event_dict if _is_personal(k)]:
        del event_dict[key]
    for key, value in list(event_dict.items()):
        if type(value) not in _FLAT and isinstance(value, Mapping | list | tuple):
            event_dict[key] = _scrub(value)
    return event_dict


def _exception_of(exc_info: Any) -> BaseException | None:
    if isinstance(exc_info, BaseException):
        return exc_info
    if isinstance(exc_info, tuple):
        return exc_info[1] if len(exc_info) > 1 else None
    return sys.exc_info()[1] if exc_info else None


def format_exc_info_without_values(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor in place of `format_exc_info`: the traceback of `exc_info` as
    `exception` (each exception of the chain by its type, with its frames), never an
    exception's message. Messages carry values: a `KeyError` names the key it missed (an
    e-mail address), PostgreSQL's errors the row and key values of the failure, a decoding
    error the text it could not read."""
    exc = _exception_of(event_dict.pop("exc_info", None))
    if exc is not None:
        event_dict["exception"] = exception_without_values(exc)
    return event_dict


def exception_without_values(exc: BaseException) -> str:
    """`exc`'s traceback: each exception of its chain by type, with its frames, no message."""
    parts: list[str] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        kind = type(current)
        name = (
            kind.__qualname__
            if kind.__module__ == "builtins"
            else (f"{kind.__module__}.{kind.__qualname__}")
        )
        frames = "".join(traceback.format_tb(current.__traceback__))
        parts.append(f"Traceback (most recent call last):\n{frames}{name} (message not logged)")
        current = current.__cause__ or (
            None if current.__suppress_context__ else current.__context__
        )
    return "\n\nwhile handling, or caused by:\n\n".join(parts)


def _serialize(obj: Any, **_: Any) -> bytes:
    return _encoder.encode(obj)


def configure_logging(
    level: str = "info", *, json: bool = True, cache: bool = True, stream: TextIO | None = None
) -> None:
    """Configure structlog once per process (tests pass cache=False). Lines go to `stream`,
    stdout by default (a service's log); commands whose results go to stdout log to stderr."""
    out = stream if stream is not None else sys.stdout
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        redact_personal_data,
        format_exc_info_without_values,
    ]
    if json:
        processors.append(structlog.processors.JSONRenderer(serializer=_serialize))
        factory: Any = structlog.BytesLoggerFactory(out.buffer)
    else:
        processors.append(structlog.dev.ConsoleRenderer(colors=False))
        factory = structlog.PrintLoggerFactory(out)
    if json:  # the standard library's records too (asyncpg's, a library's warning): JSON lines
        handler = logging.StreamHandler(out)
        handler.setFormatter(JsonLineFormatter(messages=False))
        root = logging.getLogger()
        root.handlers = [handler]
        root.setLevel(logging.WARNING)
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=factory,
        cache_logger_on_first_use=cache,
    )


class JsonLineFormatter(logging.Formatter):
    """Records of the standard library's logging (granian's own: a worker that failed to
    start, one killed after the grace period) as JSON lines like the service's own, so that a
    log shipper reads every line of stdout; a traceback is a field of its line."""

    def __init__(self, *, messages: bool = True) -> None:
        super().__init__()
        self.messages = messages
        """Whether an exception's message is written: granian's start-up failures, yes (why
        a worker did not start); other libraries' records, no (what a request sent)."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "event": record.getMessage(),
            "logger": record.name.lstrip("_"),
            "level": record.levelname.lower(),
            "timestamp": datetime.fromtimestamp(record.created, UTC)
            .isoformat()
            .replace("+00:00", "Z"),
        }
        if record.exc_info and record.exc_info[1] is not None:
            line["exception"] = (
                self.formatException(record.exc_info)
                if self.messages
                else exception_without_values(record.exc_info[1])
            )
        return _encoder.encode(line).decode()


GRANIAN_LOG_CONFIG: Final[dict[str, Any]] = {
    # Merged by granian into its logging configuration: its two formatters, replaced.
    "formatters": {
        "generic": {"()": f"{__name__}.JsonLineFormatter"},
        "access": {"()": f"{__name__}.JsonLineFormatter"},
    },
}
"""granian's `log_dictconfig` for JSON logs."""
