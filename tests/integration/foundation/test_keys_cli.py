"""`consent keys rotate`, `keys retire`, `import` and `audit` as a new user runs them: a wrong
key directory is refused before anything is written in it, a mistyped KEK id is no success,
and the results (alone) are on stdout."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from consent.audit.checkpoint import NoteSigner
from consent.crypto.binding import bind_or_check
from consent.crypto.keys import load_keyring
from consent.db.database import Database
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


_EMPTY_ON_A_BOUND_DATABASE = (
    "no key-encryption key in {empty}, and this database's data belongs to a key ring: wrong "
    "CONSENT_KEYS_DIR (or data directory)? No key was generated"
)
_ANOTHER_LOOKUP_KEY = (
    "the lookup key in the key directory is not the one this database's identifiers were "
    "hashed with: wrong CONSENT_KEYS_DIR (or data directory)?"
)


@pytest.fixture
async def unbound(db: Database) -> AsyncIterator[Database]:
    """The test database, bound to no key ring, and unbound again after the test."""
    yield db
    async with db.pool.acquire() as conn:
        await conn.execute("delete from key_binding")


@pytest.fixture
async def bound(unbound: Database, tmp_path: Path) -> Path:
    """The test database, bound to a key ring of its own (the directory returned)."""
    keys = tmp_path / "keys"
    async with unbound.pool.acquire() as conn:
        await bind_or_check(conn, load_keyring(keys))
    return keys


def _command(tmp_path: Path, *args: str) -> list[str]:
    """The arguments of `consent ARGS`: an import gets a file with a valid header."""
    if args[0] != "import":
        return [*args, *(("--out", str(tmp_path / "export.json")) if "export" in args else ())]
    rows = tmp_path / "rows.csv"
    rows.write_text(
        "identifier_type,identifier_value,purpose,choice,occurred_at,channel,language\n"
        "customer_id,C-1,ads,granted,2026-01-01T00:00:00Z,web,en\n"
    )
    return ["import", str(rows), "--tenant", str(uuid.uuid4())]


_COMMANDS = [
    ("import",),
    ("audit", "verify"),
    ("audit", "integrate"),
    ("audit", "export", "--tenant", str(uuid.UUID(int=1)), "--subject", str(uuid.UUID(int=2))),
]


@pytest.mark.parametrize("args", _COMMANDS, ids=lambda a: "-".join(a[:2]))
def test_an_empty_key_directory_on_a_bound_database_gets_no_keys(
    database_dsn: str, bound: Path, tmp_path: Path, args: tuple[str, ...]
) -> None:
    """In development they generated a whole key ring in a wrong, empty CONSENT_KEYS_DIR, then
    refused (`consent import`: exit 2), failed the binding (`audit integrate`) or went on with
    those new keys (`audit verify`: every checkpoint FAILED, as if the log had been tampered
    with)."""
    empty = tmp_path / "empty"
    command = " ".join(args[:2])
    done = run_consent(*_command(tmp_path, *args), env=cli_env(database_dsn, empty, tmp_path))
    assert done.returncode == 1, done.stderr
    assert done.stdout == ""
    assert done.stderr.strip().splitlines() == [
        f"consent {command}: " + _EMPTY_ON_A_BOUND_DATABASE.format(empty=empty)
    ]
    assert _files(empty) == {}
    assert not (tmp_path / "export.json").exists()


@pytest.mark.parametrize("args", _COMMANDS, ids=lambda a: "-".join(a[:2]))
def test_another_key_ring_on_a_bound_database_is_refused(
    database_dsn: str, bound: Path, tmp_path: Path, args: tuple[str, ...]
) -> None:
    """`consent import` exited 2 (a usage error); `audit verify` and `export` checked nothing
    and reported with another service's keys."""
    stranger = tmp_path / "stranger"
    load_keyring(stranger)
    before = _files(stranger)
    command = " ".join(args[:2])
    done = run_consent(*_command(tmp_path, *args), env=cli_env(database_dsn, stranger, tmp_path))
    assert done.returncode == 1, done.stderr
    assert done.stdout == ""
    assert done.stderr.strip().splitlines() == [f"consent {command}: {_ANOTHER_LOOKUP_KEY}"]
    assert _files(stranger) == before


@pytest.mark.parametrize(
    ("args", "result"),
    [(("audit", "verify"), "verified 0 logs in "), (("audit", "integrate"), "integrated 0 leaves")],
    ids=["audit-verify", "audit-integrate"],
)
def test_a_first_use_generates_the_keys_and_binds_them(
    database_dsn: str, unbound: Database, tmp_path: Path, args: tuple[str, ...], result: str
) -> None:
    """A fresh setup (a database bound to no key ring, no keys yet): development generates
    them, as before, and the database is theirs from then on."""
    keys = tmp_path / "keys"
    done = run_consent(*args, env=cli_env(database_dsn, keys, tmp_path))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(result), done.stdout
    ring = load_keyring(keys, create=False)
    again = run_consent(*args, env=cli_env(database_dsn, keys, tmp_path))
    assert again.returncode == 0, again.stderr
    assert load_keyring(keys, create=False).current_kek_id == ring.current_kek_id
    other = run_consent(*args, env=cli_env(database_dsn, tmp_path / "other", tmp_path))
    assert other.returncode == 1, other.stderr
    assert _files(tmp_path / "other") == {}


def test_verify_with_a_key_given_reads_no_key_directory(
    database_dsn: str, bound: Path, tmp_path: Path
) -> None:
    """`consent audit verify --vkey K` checks with K alone: it needs no local keys (before, a
    development run generated a key ring in the empty directory it never used)."""
    vkey = NoteSigner("audit.example.org", load_keyring(bound, create=False).signing_key).vkey
    empty = tmp_path / "empty"
    done = run_consent(
        "audit", "verify", "--vkey", vkey, env=cli_env(database_dsn, empty, tmp_path)
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("verified 0 logs in "), done.stdout
    assert _files(empty) == {}
