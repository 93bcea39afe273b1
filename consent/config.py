"""Settings: every `CONSENT_*` environment variable, read once into one frozen object.

No configuration at all is a valid configuration: an embedded PostgreSQL and generated keys under
`./.consent/`, the in-process OPA engine and the service on 127.0.0.1:8000. Secrets may be given
as `NAME_FILE` (a path whose content is the value) instead of `NAME`.
"""

from __future__ import annotations

import difflib
import math
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Final, TypeVar
from urllib.parse import SplitResult, urlsplit

import msgspec

from consent.consents.evidence import parse_networks
from consent.settings_defaults import DEFAULT_AUDIT_ORIGIN

__all__ = ["ConfigError", "Settings", "load_settings", "unknown_variables"]

_PREFIX: Final = "CONSENT_"
_LOG_LEVELS: Final = frozenset({"debug", "info", "warning", "error"})
_MAX_GRACE_SECONDS: Final = 3600
_T = TypeVar("_T")


class ConfigError(Exception):
    """Raised with every configuration problem found, never just the first."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid configuration:\n" + "\n".join(f"  - {p}" for p in problems))


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    """The whole configuration of one process."""

    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    data_dir: Path = Path(".consent")
    # None: start an embedded PostgreSQL in `data_dir/pgdata`.
    database_url: str | None = None
    db_pool_min: int = 2
    db_pool_max: int = 16
    migrate_on_start: bool = True
    keys_dir: Path | None = None  # default: data_dir / "keys"
    # A key-encryption key given directly (base64, 32 bytes); it becomes the current KEK.
    kek: str | None = None
    opa_url: str | None = None
    # Policy decisions: the Rego bundle (None: the bundled `policies/`), in-process engine pool,
    # evaluation timeout, result cache entries (0: no cache), decision-log group-commit linger.
    policy_dir: Path | None = None
    opa_pool_size: int = 2
    opa_timeout_ms: int = 1000
    decision_cache_size: int = 16384
    decision_log_linger_ms: float = 1.0
    log_level: str = "info"
    log_json: bool = True
    shutdown_grace_seconds: float = 20.0
    environment: str = "development"
    audit_origin: str = DEFAULT_AUDIT_ORIGIN
    # Run the audit integrator inside the service (one per replica is safe: they take turns).
    audit_integrator: bool = True
    # Reverse proxies / load balancers whose X-Forwarded-For is believed (addresses or CIDRs).
    trusted_proxies: str = ""
    # Idempotency records (an Idempotency-Key's stored answer) are deleted after this many days.
    idempotency_retention_days: int = 30

    @property
    def resolved_keys_dir(self) -> Path:
        return self.keys_dir if self.keys_dir is not None else self.data_dir / "keys"

    @property
    def embedded_database(self) -> bool:
        return self.database_url is None


def _read(env: Mapping[str, str], name: str, problems: list[str]) -> str | None:
    """Value of CONSENT_<name>, or of the file named by CONSENT_<name>_FILE."""
    key = _PREFIX + name
    file_key = key + "_FILE"
    if key in env and file_key in env:
        problems.append(f"{key} and {file_key} are both set; set only one")
        return None
    if file_key in env:
        try:
            return Path(env[file_key]).read_text(encoding="utf-8").strip()
        except OSError as exc:
            problems.append(f"{file_key}: cannot read the file ({exc.strerror})")
            return None
    return env.get(key)


def _parse(
    env: Mapping[str, str],
    name: str,
    parse: Callable[[str], _T],
    default: _T,
    problems: list[str],
    expected: str,
) -> _T:
    raw = _read(env, name, problems)
    if raw is None:
        return default
    try:
        return parse(raw)
    except ValueError:
        problems.append(f"{_PREFIX}{name}: expected {expected}, got {raw!r}")
        return default


def _bool(raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ValueError(raw)


def _port_is_valid(parts: SplitResult) -> bool:
    """Whether the URL's port, if any, is a TCP port (never repeat the URL: it may hold a
    password)."""
    try:
        port = parts.port
    except ValueError:  # not a number, or beyond 65535
        return False
    return port != 0


def _check_database_url(url: str | None, problems: list[str]) -> None:
    if url is None:
        return
    parts = urlsplit(url)
    if parts.scheme not in {"postgres", "postgresql"}:
        problems.append("CONSENT_DATABASE_URL: expected a postgresql:// URL")
    elif not _port_is_valid(parts):
        problems.append("CONSENT_DATABASE_URL: its port is not a TCP port (1-65535)")


def _check_opa_url(url: str | None, problems: list[str]) -> None:
    if url is None:
        return
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        problems.append("CONSENT_OPA_URL: expected an http(s):// URL of an OPA server")
    elif not _port_is_valid(parts):
        problems.append("CONSENT_OPA_URL: its port is not a TCP port (1-65535)")


def _trusted_proxies(env: Mapping[str, str], problems: list[str]) -> str:
    raw = _read(env, "TRUSTED_PROXIES", problems) or ""
    try:
        parse_networks(raw)
    except ValueError:
        problems.append(
            "CONSENT_TRUSTED_PROXIES: expected comma-separated IP addresses or CIDR ranges"
        )
    return raw


def _retention_days(env: Mapping[str, str], default: int, problems: list[str]) -> int:
    name = "IDEMPOTENCY_RETENTION_DAYS"
    days = _parse(env, name, int, default, problems, "a number of days")
    if not 1 <= days <= 36_500:  # noqa: PLR2004
        problems.append(f"{_PREFIX}{name}: must be between 1 and 36500")
    return days


def _grace_seconds(env: Mapping[str, str], default: float, problems: list[str]) -> float:
    name = "SHUTDOWN_GRACE_SECONDS"
    grace = _parse(env, name, float, default, problems, "seconds")
    # Below 1 s granian waits for ever (0) or kills every worker at once (negative).
    if not (math.isfinite(grace) and 1 <= grace <= _MAX_GRACE_SECONDS):
        problems.append(f"{_PREFIX}{name}: must be between 1 and {_MAX_GRACE_SECONDS} seconds")
    return grace


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Read settings from `env` (default: the process environment).

    Raises ConfigError listing every problem found.
    """
    source: Mapping[str, str] = os.environ if env is None else env
    problems: list[str] = []
    d = Settings()

    port = _parse(source, "PORT", int, d.port, problems, "an integer port")
    if not 0 < port < 65536:  # noqa: PLR2004
        problems.append(f"CONSENT_PORT: {port} is not a TCP port (1-65535)")
    workers = _parse(source, "WORKERS", int, d.workers, problems, "an integer")
    if workers < 1:
        problems.append("CONSENT_WORKERS: must be at least 1")
    pool_min = _parse(source, "DB_POOL_MIN", int, d.db_pool_min, problems, "an integer")
    pool_max = _parse(source, "DB_POOL_MAX", int, d.db_pool_max, problems, "an integer")
    if pool_min < 0 or pool_max < 1 or pool_min > pool_max:
        problems.append("CONSENT_DB_POOL_MIN/MAX: need 0 <= min <= max and max >= 1")
    log_level = (_read(source, "LOG_LEVEL", problems) or d.log_level).lower()
    if log_level not in _LOG_LEVELS:
        problems.append(f"CONSENT_LOG_LEVEL: expected one of {sorted(_LOG_LEVELS)}")
    grace = _grace_seconds(source, d.shutdown_grace_seconds, problems)
    database_url = _read(source, "DATABASE_URL", problems) or None
    _check_database_url(database_url, problems)
    opa_url = _read(source, "OPA_URL", problems) or None
    _check_opa_url(opa_url, problems)
    kek = _read(source, "KEK", problems) or None
    if kek is not None:
        from consent.crypto.keys import parse_kek  # local: keeps config import-light

        try:
            parse_kek(kek)
        except ValueError as exc:
            problems.append(f"CONSENT_KEK: {exc}")
    keys_dir_raw = _read(source, "KEYS_DIR", problems)
    policy_dir_raw = _read(source, "POLICY_DIR", problems)
    opa_pool = _parse(source, "OPA_POOL_SIZE", int, d.opa_pool_size, problems, "an integer")
    opa_timeout = _parse(source, "OPA_TIMEOUT_MS", int, d.opa_timeout_ms, problems, "an integer")
    cache_size = _parse(
        source, "DECISION_CACHE_SIZE", int, d.decision_cache_size, problems, "an integer"
    )
    linger = _parse(
        source, "DECISION_LOG_LINGER_MS", float, d.decision_log_linger_ms, problems, "a number"
    )
    if not 1 <= opa_pool <= 64:  # noqa: PLR2004
        problems.append("CONSENT_OPA_POOL_SIZE: must be between 1 and 64")
    if opa_timeout < 1:
        problems.append("CONSENT_OPA_TIMEOUT_MS: must be at least 1")
    if cache_size < 0:
        problems.append("CONSENT_DECISION_CACHE_SIZE: must be 0 (no cache) or more")
    if not 0 <= linger <= 100:  # noqa: PLR2004
        problems.append("CONSENT_DECISION_LOG_LINGER_MS: must be between 0 and 100")
    migrate = _parse(source, "MIGRATE_ON_START", _bool, d.migrate_on_start, problems, "true/false")
    log_json = _parse(source, "LOG_JSON", _bool, d.log_json, problems, "true/false")
    integrator = _parse(
        source, "AUDIT_INTEGRATOR", _bool, d.audit_integrator, problems, "true/false"
    )
    proxies = _trusted_proxies(source, problems)
    retention = _retention_days(source, d.idempotency_retention_days, problems)

    if problems:
        raise ConfigError(problems)
    return Settings(
        host=_read(source, "HOST", problems) or d.host,
        port=port,
        workers=workers,
        data_dir=Path(_read(source, "DATA_DIR", problems) or d.data_dir),
        database_url=database_url,
        db_pool_min=pool_min,
        db_pool_max=pool_max,
        migrate_on_start=migrate,
        keys_dir=Path(keys_dir_raw) if keys_dir_raw else None,
        kek=kek,
        opa_url=opa_url,
        policy_dir=Path(policy_dir_raw) if policy_dir_raw else None,
        opa_pool_size=opa_pool,
        opa_timeout_ms=opa_timeout,
        decision_cache_size=cache_size,
        decision_log_linger_ms=linger,
        log_level=log_level,
        log_json=log_json,
        shutdown_grace_seconds=grace,
        environment=_read(source, "ENVIRONMENT", problems) or d.environment,
        audit_origin=_read(source, "AUDIT_ORIGIN", problems) or d.audit_origin,
        audit_integrator=integrator,
        trusted_proxies=proxies,
        idempotency_retention_days=retention,
    )


SETTING_NAMES: Final = frozenset(
    _PREFIX + name
    for name in (
        "HOST", "PORT", "WORKERS", "DATA_DIR", "DATABASE_URL", "DB_POOL_MIN", "DB_POOL_MAX",
        "MIGRATE_ON_START", "KEYS_DIR", "KEK", "OPA_URL", "POLICY_DIR", "OPA_POOL_SIZE",
        "OPA_TIMEOUT_MS", "DECISION_CACHE_SIZE", "DECISION_LOG_LINGER_MS", "LOG_LEVEL",
        "LOG_JSON", "SHUTDOWN_GRACE_SECONDS", "ENVIRONMENT", "AUDIT_ORIGIN", "AUDIT_INTEGRATOR",
        "TRUSTED_PROXIES", "IDEMPOTENCY_RETENTION_DAYS",
    )
)  # fmt: skip
"""Every variable load_settings reads (each also as `<name>_FILE`)."""
# Read by the project's tests and benchmarks, not by the service.
_NOT_SETTINGS: Final = ("CONSENT_TEST_", "CONSENT_BENCH_", "CONSENT_REGEN_")


def unknown_variables(env: Mapping[str, str] | None = None) -> list[str]:
    """A warning for each `CONSENT_*` variable that is no setting: a misspelt one (say
    `CONSENT_DATABSE_URL`) is otherwise ignored without a word, and its default silently used
    (there: an embedded database instead of yours)."""
    source: Mapping[str, str] = os.environ if env is None else env
    warnings = []
    for name in sorted(source):
        setting = name.removesuffix("_FILE")
        if not name.startswith(_PREFIX) or setting in SETTING_NAMES:
            continue
        if name.startswith(_NOT_SETTINGS):
            continue
        near = difflib.get_close_matches(setting, SETTING_NAMES, n=1, cutoff=0.8)
        hint = f"; did you mean {near[0]}?" if near else ""
        warnings.append(f"{name} is not a setting and is ignored{hint}")
    return warnings
