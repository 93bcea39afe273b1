from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from consent.config import ConfigError, Settings, load_settings, unknown_variables

pytestmark = pytest.mark.unit


def test_no_configuration_gives_development_defaults() -> None:
    settings = load_settings({})
    assert settings == Settings()
    assert settings.embedded_database
    assert settings.resolved_keys_dir == Path(".consent/keys")
    assert (settings.host, settings.port) == ("127.0.0.1", 8000)


def test_every_problem_is_listed_at_once() -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(
            {
                "CONSENT_PORT": "eighty",
                "CONSENT_WORKERS": "0",
                "CONSENT_DATABASE_URL": "mysql://x",
                "CONSENT_LOG_LEVEL": "loud",
                "CONSENT_MIGRATE_ON_START": "maybe",
                "CONSENT_OPA_URL": "ftp://opa",
                "CONSENT_KEK": "not-base64!",
                "CONSENT_TRUSTED_PROXIES": "10.0.0.0/8, lb.internal",
            }
        )
    problems = info.value.problems
    joined = "\n".join(problems)
    for name in (
        "CONSENT_PORT",
        "CONSENT_WORKERS",
        "CONSENT_DATABASE_URL",
        "CONSENT_LOG_LEVEL",
        "CONSENT_MIGRATE_ON_START",
        "CONSENT_OPA_URL",
        "CONSENT_KEK",
        "CONSENT_TRUSTED_PROXIES",
    ):
        assert name in joined
    assert len(problems) == 8


def test_secret_from_file(tmp_path: Path) -> None:
    secret = tmp_path / "db-url"
    secret.write_text("postgresql://u@db.internal/consent\n")
    settings = load_settings({"CONSENT_DATABASE_URL_FILE": str(secret)})
    assert settings.database_url == "postgresql://u@db.internal/consent"
    assert not settings.embedded_database


def test_value_and_file_together_is_a_problem(tmp_path: Path) -> None:
    secret = tmp_path / "kek"
    secret.write_text("x")
    with pytest.raises(ConfigError, match="both set"):
        load_settings({"CONSENT_KEK": "x", "CONSENT_KEK_FILE": str(secret)})


def test_missing_secret_file_is_a_problem(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="CONSENT_KEK_FILE"):
        load_settings({"CONSENT_KEK_FILE": str(tmp_path / "absent")})


def test_cli_exits_with_one_message_listing_every_problem() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "consent", "migrate"],
        env={"CONSENT_PORT": "0", "CONSENT_LOG_LEVEL": "loud", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "CONSENT_PORT" in result.stderr
    assert "CONSENT_LOG_LEVEL" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_misspelt_variable_is_named_with_the_setting_it_resembles() -> None:
    """A typo must not silently fall back to a default (an embedded database instead of the
    one meant): the CLI warns with each unknown CONSENT_* name and what it resembles."""
    result = subprocess.run(
        [sys.executable, "-m", "consent", "migrate"],
        env={  # the missing KEK file stops it (exit 2) before it would start anything
            "CONSENT_DATABSE_URL": "postgresql://db.example/consent",
            "CONSENT_WIDGETS": "3",
            "CONSENT_TEST_DATABASE_URL": "postgresql://test.example/test",
            "CONSENT_KEK_FILE": "/nonexistent/kek",
            "PATH": "/usr/bin:/bin",
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert "CONSENT_DATABSE_URL is not a setting" in result.stderr
    assert "did you mean CONSENT_DATABASE_URL?" in result.stderr
    assert "CONSENT_WIDGETS is not a setting and is ignored\n" in result.stderr
    assert "CONSENT_TEST_DATABASE_URL" not in result.stderr
    assert "CONSENT_KEK_FILE is not a setting" not in result.stderr


ROOT = Path(__file__).resolve().parents[3]


def test_every_variable_the_readme_documents_is_a_setting() -> None:
    """CONSENT_IDEMPOTENCY_RETENTION_DAYS, set as the README says, was read and obeyed but also
    warned about as "not a setting and is ignored"."""
    readme = (ROOT / "README.md").read_text()
    documented = {
        name
        for line in readme.splitlines()
        if line.startswith("| `CONSENT_")
        for name in re.findall(r"`(CONSENT_[A-Z_]+)`", line.split("|")[1])
    }
    assert "CONSENT_IDEMPOTENCY_RETENTION_DAYS" in documented
    assert len(documented) >= 20
    assert unknown_variables(dict.fromkeys(documented, "1")) == []


@pytest.mark.parametrize("grace", ["-1", "0", "inf", "nan", "1e9"])
def test_a_shutdown_grace_that_is_no_usable_time_is_refused(grace: str) -> None:
    """A negative grace killed every worker at once on SIGTERM (in-flight requests cut off),
    `inf` and `nan` crashed `consent serve` with a traceback, 0 waited for ever."""
    with pytest.raises(ConfigError) as info:
        load_settings({"CONSENT_SHUTDOWN_GRACE_SECONDS": grace})
    assert [p for p in info.value.problems if p.startswith("CONSENT_SHUTDOWN_GRACE_SECONDS")]


def test_a_fractional_shutdown_grace_is_kept() -> None:
    assert load_settings({"CONSENT_SHUTDOWN_GRACE_SECONDS": "2.5"}).shutdown_grace_seconds == 2.5


@pytest.mark.parametrize(
    ("name", "url"),
    [
        ("CONSENT_DATABASE_URL", "postgresql://app:hunter2@db.internal:99999/consent"),
        ("CONSENT_DATABASE_URL", "postgresql://app:hunter2@db.internal:pg/consent"),
        ("CONSENT_OPA_URL", "http://opa.internal:70000"),
    ],
)
def test_a_url_with_an_impossible_port_is_a_problem_not_a_traceback(name: str, url: str) -> None:
    """`consent migrate` with such a URL died with asyncpg's traceback; the message names the
    variable and never repeats the URL (it may hold a password)."""
    with pytest.raises(ConfigError) as info:
        load_settings({name: url})
    (problem,) = info.value.problems
    assert problem.startswith(name)
    assert "hunter2" not in problem
