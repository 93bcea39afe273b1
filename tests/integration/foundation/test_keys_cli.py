"""`consent keys rotate` and `consent keys retire` as a new user runs them: a wrong key
directory is refused before anything is written in it, a mistyped KEK id is no success, and
the results (alone) are on stdout."""

from __future__ import annotations

from pathlib import Path

import pytest

from consent.crypto.keys import load_keyring
from tests.support.cli import cli_env, run_consent

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _files(keys: Path) -> dict[str, bytes]:
    """Every file under `keys` with its content (nothing when there is no such directory)."""
    if not keys.exists():
        return {}
    return {str(p.relative_to(keys)): p.read_bytes() for p in keys.rglob("*") if p.is_file()}


def test_rotate_with_another_key_directory_writes_nothing_there(
    database_dsn: str, db: object, tmp_path: Path
) -> None:
    """It said `new key-encryption key … is current` (and wrote that KEK into the wrong
    directory), then that the lookup key is not the database's."""
    data = tmp_path / "data"
    bound = run_consent("keys", "rotate", env=cli_env(database_dsn, data_dir=data))
    assert bound.returncode == 0, bound.stderr  # the database now belongs to data/keys
    current = load_keyring(data / "keys", create=False).current_kek_id
    assert bound.stdout.splitlines() == [
        f"new key-encryption key {current} is current",
        f"0 data keys re-wrapped under {current}",
    ]
    assert "is current" not in bound.stderr

    stranger = tmp_path / "stranger"
    load_keyring(stranger)  # another key ring
    before = _files(stranger)
    done = run_consent("keys", "rotate", env=cli_env(database_dsn, stranger, data))
    assert done.returncode == 1, done.stderr
    assert done.stdout == ""
    assert done.stderr.strip().splitlines() == [
        (
            "consent keys rotate: the lookup key in the key directory is not the one this "
            "database's identifiers were hashed with: wrong CONSENT_KEYS_DIR (or data directory)?"
        )
    ]
    assert _files(stranger) == before

    # A directory with no keys at all: none are generated in it for a database that has some.
    empty = tmp_path / "empty"
    done = run_consent("keys", "rotate", env=cli_env(database_dsn, empty, data))
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    assert f"consent keys rotate: no key-encryption key in {empty}" in done.stderr
    assert "is current" not in done.stdout + done.stderr
    assert _files(empty) == {}


def test_retire_of_a_kek_that_never_existed_is_no_success(
    database_dsn: str, db: object, tmp_path: Path
) -> None:
    """`consent keys retire deadbeefdeadbeef` said `deadbeefdeadbeef was already retired`,
    exit 0: a typo looked like success. One retired before still exits 0."""
    keys = tmp_path / "keys"
    env = cli_env(database_dsn, keys, tmp_path / "data")
    assert run_consent("keys", "rotate", env=env).returncode == 0  # generates, binds, rotates
    old = sorted(set(load_keyring(keys, create=False).keks))
    current = load_keyring(keys, create=False).current_kek_id
    (first,) = [k for k in old if k != current]

    typo = run_consent("keys", "retire", "deadbeefdeadbeef", env=env)
    assert typo.returncode == 1, typo.stderr
    assert typo.stdout == ""
    assert "already retired" not in typo.stderr
    assert typo.stderr.strip() == (
        f"consent keys retire: no key-encryption key deadbeefdeadbeef in {keys} (never there, "
        "or retired before retirements were recorded), nothing was retired"
    )
    # With a KEK that can be retired beside it: still nothing retired.
    mixed = run_consent("keys", "retire", first, "deadbeefdeadbeef", env=env)
    assert mixed.returncode == 1, mixed.stderr
    assert first in load_keyring(keys, create=False).keks

    retired = run_consent("keys", "retire", first, env=env)
    assert retired.returncode == 0, retired.stderr
    assert retired.stdout.splitlines() == [f"retired {first}"]
    again = run_consent("keys", "retire", first, env=env)
    assert again.returncode == 0, again.stderr
    assert again.stdout.splitlines() == [f"{first} was already retired"]
