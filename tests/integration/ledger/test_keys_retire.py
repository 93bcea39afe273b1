"""Retiring old key-encryption keys after a rotation, and a re-wrap that does not stop short.

An erased subject's data key lives on in database backups taken before the erasure, wrapped
under the KEK of its day. Crypto-shredding holds for those backups only once that KEK is gone
from the keys directory: `consent keys retire` removes KEKs that no data key is wrapped under.
"""

from __future__ import annotations

import asyncio
import base64
import uuid
from pathlib import Path

import pytest

from consent.crypto.binding import bind_or_check
from consent.crypto.datakeys import (
    DataKeys,
    KekInUse,
    RewrapIncomplete,
    dek_aad,
    retire_keks,
    rewrap_all,
)
from consent.crypto.keys import KeyError_, KeyRing, load_keyring, rotate_kek
from consent.db.database import Database
from tests.conftest import Tenant
from tests.support.cli import cli_env, run_consent

pytestmark = pytest.mark.integration


async def _subjects(db: Database, ring: KeyRing, tenant: Tenant, n: int) -> dict[uuid.UUID, bytes]:
    """`n` new subjects of `tenant`, each with data sealed under its own key."""
    tid, datakeys = uuid.UUID(tenant.id), DataKeys(ring)
    sealed: dict[uuid.UUID, bytes] = {}
    async with db.tenant(tid) as conn:
        for _ in range(n):
            sid = uuid.uuid4()
            dek = await datakeys.ensure(conn, tid, sid)
            sealed[sid] = DataKeys.encrypt(dek, tid, sid, f"secret-{sid}".encode(), b"profile")
    return sealed


async def _all_readable(
    db: Database, keys_dir: Path, tenant: Tenant, sealed: dict[uuid.UUID, bytes]
) -> None:
    """A process started now (its ring read from disk) decrypts every subject's data."""
    tid, fresh = uuid.UUID(tenant.id), DataKeys(load_keyring(keys_dir, create=False))
    async with db.tenant(tid) as conn:
        for sid, blob in sealed.items():
            dek = await fresh.get(conn, tid, sid)
            assert DataKeys.decrypt(dek, tid, sid, blob, b"profile") == f"secret-{sid}".encode()


async def _wrapped_by(db: Database) -> set[str]:
    async with db.system() as conn:
        return {r["kek_id"] for r in await conn.fetch("select kek_id from subject_key")}


def _kek_files(keys_dir: Path) -> list[str]:
    return sorted(p.name for p in (keys_dir / "kek").iterdir())


# -- the command ------------------------------------------------------------------------------


async def test_retire_after_a_rotation_removes_the_old_key_and_everything_stays_readable(
    db: Database, tenant: Tenant, database_dsn: str, tmp_path: Path
) -> None:
    keys_dir = tmp_path / "keys"
    ring = load_keyring(keys_dir)
    old = ring.current_kek_id
    sealed = await _subjects(db, ring, tenant, 5)
    env = cli_env(database_dsn, keys_dir, tmp_path / "data")

    rotated = run_consent("keys", "rotate", env=env)
    assert rotated.returncode == 0, rotated.stderr
    new = load_keyring(keys_dir, create=False).current_kek_id

    retired = run_consent("keys", "retire", env=env)
    assert retired.returncode == 0, retired.stderr
    assert f"retired {old}" in retired.stdout
    assert _kek_files(keys_dir) == sorted(["current", "retired", f"{new}.key"])
    await _all_readable(db, keys_dir, tenant, sealed)
    # The database no longer expects the retired KEK: a service started now is not refused.
    async with db.pool.acquire() as conn:
        await bind_or_check(conn, load_keyring(keys_dir, create=False))
    # The service that ran all along (the old KEK still in memory) reads on and writes new
    # data keys under the new KEK only.
    more = await _subjects(db, ring, tenant, 1)
    assert await _wrapped_by(db) == {new}
    await _all_readable(db, keys_dir, tenant, {**sealed, **more})

    again = run_consent("keys", "retire", old, env=env)
    assert again.returncode == 0, again.stderr
    assert f"{old} was already retired" in again.stdout
    for output in (rotated, retired, again):
        assert base64.b64encode(ring.keks[old]).decode() not in output.stdout + output.stderr


async def test_retire_refuses_a_key_that_still_wraps_data_keys(
    db: Database, tenant: Tenant, database_dsn: str, tmp_path: Path
) -> None:
    """Before the re-wrap (a rotation that stopped, or a process still configured with the
    old KEK): removing the key would make those subjects' data unreadable for good."""
    keys_dir = tmp_path / "keys"
    old = load_keyring(keys_dir).current_kek_id
    sealed = await _subjects(db, load_keyring(keys_dir), tenant, 3)
    rotate_kek(keys_dir)  # no re-wrap yet
    env = cli_env(database_dsn, keys_dir, tmp_path / "data")
    before = _kek_files(keys_dir)

    refused = run_consent("keys", "retire", old, env=env)
    assert refused.returncode == 1, refused.stderr
    assert refused.stderr.strip().splitlines() == [
        (
            f"consent keys retire: {old} still wraps 3 data keys; run `consent keys rotate "
            "--rewrap-only` first, nothing was retired"
        )
    ]
    # Without ids: every unused KEK is retired, the one in use is kept and named.
    kept = run_consent("keys", "retire", env=env)
    assert kept.returncode == 0, kept.stderr
    assert f"kept {old}: 3 data keys are wrapped under it" in kept.stdout
    assert _kek_files(keys_dir) == before
    await _all_readable(db, keys_dir, tenant, sealed)


async def test_retire_refuses_while_a_process_still_wraps_under_the_old_key(
    db: Database, tenant: Tenant, tmp_path: Path
) -> None:
    """A data key written by a process that still has the old KEK as its current one (started
    with CONSENT_KEK set to it) after the re-wrap ended."""
    keys_dir = tmp_path / "keys"
    ring = load_keyring(keys_dir)
    old = ring.current_kek_id
    rotate_kek(keys_dir)
    assert await rewrap_all(db, load_keyring(keys_dir, create=False)) == 0
    stale = load_keyring(keys_dir, kek=base64.b64encode(ring.keks[old]).decode())
    sealed = await _subjects(db, stale, tenant, 1)
    with pytest.raises(KekInUse, match=f"{old} still wraps 1 data key;"):
        await retire_keks(db, keys_dir, [old])
    assert f"{old}.key" in _kek_files(keys_dir)
    await _all_readable(db, keys_dir, tenant, sealed)


async def _write_a_key_until(
    db: Database, ring: KeyRing, tenant: Tenant, written: asyncio.Event, commit: asyncio.Event
) -> None:
    """A long transaction (an import, say) that writes a data key and commits on `commit`."""
    tid = uuid.UUID(tenant.id)
    async with db.tenant(tid) as conn:
        await DataKeys(ring).ensure(conn, tid, uuid.uuid4())
        written.set()
        await commit.wait()


async def test_retire_waits_for_a_transaction_writing_under_the_old_key(
    db: Database, tenant: Tenant, tmp_path: Path
) -> None:
    """Data keys wrapped under the old KEK but not committed yet are invisible to a count: the
    retirement waits for their transaction, then sees them and keeps the KEK."""
    keys_dir = tmp_path / "keys"
    stale = load_keyring(keys_dir)
    old = stale.current_kek_id
    stale.keys_dir = None  # holds on to the old KEK, as a ring from CONSENT_KEK does
    rotate_kek(keys_dir)
    written, commit = asyncio.Event(), asyncio.Event()
    writer = asyncio.create_task(_write_a_key_until(db, stale, tenant, written, commit))
    await written.wait()
    asyncio.get_running_loop().call_later(0.3, commit.set)
    done = await retire_keks(db, keys_dir, lock_timeout=5)
    await writer
    assert (done.retired, done.kept) == ((), {old: 1})
    assert f"{old}.key" in _kek_files(keys_dir)


async def test_retire_gives_up_on_a_transaction_that_writes_for_long(
    db: Database, tenant: Tenant, tmp_path: Path
) -> None:
    """It does not hold off the service's writes behind a transaction that does not end."""
    keys_dir = tmp_path / "keys"
    ring = load_keyring(keys_dir)
    old = ring.current_kek_id
    rotate_kek(keys_dir)
    written, commit = asyncio.Event(), asyncio.Event()
    writer = asyncio.create_task(_write_a_key_until(db, ring, tenant, written, commit))
    await written.wait()
    try:
        with pytest.raises(KekInUse, match="long transaction"):
            await retire_keks(db, keys_dir, lock_timeout=0.2)
    finally:
        commit.set()
        await writer
    # Its key went under the new KEK (the ring follows the rotation): the old one is unused.
    assert (await retire_keks(db, keys_dir)).retired == (old,)


async def test_retire_refuses_the_current_key(
    db: Database, tenant: Tenant, database_dsn: str, tmp_path: Path
) -> None:
    keys_dir = tmp_path / "keys"
    current = load_keyring(keys_dir).current_kek_id
    env = cli_env(database_dsn, keys_dir, tmp_path / "data")
    refused = run_consent("keys", "retire", current, env=env)
    assert refused.returncode == 1, refused.stderr
    assert refused.stderr.strip().splitlines() == [
        (
            f"consent keys retire: {current} is the current key-encryption key; "
            "run `consent keys rotate` first, nothing was retired"
        )
    ]
    assert f"{current}.key" in _kek_files(keys_dir)


def test_retire_with_the_kek_in_the_environment_says_what_to_do(tmp_path: Path) -> None:
    env = cli_env(
        "postgresql://postgres@127.0.0.1:1/none",
        tmp_path / "keys",
        tmp_path / "data",
        CONSENT_KEK=base64.b64encode(bytes(32)).decode(),
    )
    done = run_consent("keys", "retire", env=env)
    assert done.returncode == 2, done.stderr
    assert "CONSENT_KEK is set" in done.stderr
    assert "Traceback" not in done.stderr


def test_retire_refuses_what_is_not_a_key_id(tmp_path: Path) -> None:
    env = cli_env("postgresql://postgres@127.0.0.1:1/none", tmp_path / "keys", tmp_path / "data")
    done = run_consent("keys", "retire", "../lookup", env=env)
    assert done.returncode == 2, done.stderr
    assert "not a key-encryption key id" in done.stderr


# -- what retiring is for ----------------------------------------------------------------------


async def test_after_retirement_a_backup_taken_before_an_erasure_stays_shredded(
    db: Database, tenant: Tenant, tmp_path: Path
) -> None:
    keys_dir = tmp_path / "keys"
    ring = load_keyring(keys_dir)
    old = ring.current_kek_id
    tid = uuid.UUID(tenant.id)
    (sid,) = await _subjects(db, ring, tenant, 1)
    async with db.system() as conn:  # the backup: the key row as it was before the erasure
        backup = await conn.fetchrow("select kek_id, dek_wrapped from subject_key")
    assert backup is not None
    rotate_kek(keys_dir)
    assert await rewrap_all(db, load_keyring(keys_dir, create=False)) == 1
    async with db.tenant(tid) as conn:
        await DataKeys(ring).destroy(conn, tid, sid)

    aad = dek_aad(tid, sid)
    # Without retirement the keys directory still opens the erased subject's backed-up key.
    load_keyring(keys_dir, create=False).unwrap(backup["kek_id"], backup["dek_wrapped"], aad)
    done = await retire_keks(db, keys_dir)
    assert done.retired == (old,)
    with pytest.raises(KeyError_, match="unknown key-encryption key"):
        load_keyring(keys_dir, create=False).unwrap(backup["kek_id"], backup["dek_wrapped"], aad)
    # Nothing of the key is left in the directory under another name.
    secret = base64.b64encode(ring.keks[old])
    assert all(secret not in p.read_bytes() for p in keys_dir.rglob("*") if p.is_file())


# -- a running service across rotation and retirement -------------------------------------------


async def test_a_service_whose_kek_was_retired_wraps_new_keys_under_the_current_one(
    db: Database, tenant: Tenant, tmp_path: Path
) -> None:
    """The service kept its first KEK as current when that KEK was no longer on disk at its next
    look at the directory (rotation and retirement both done meanwhile): it went on wrapping new
    data keys under a KEK that no process could load again after a restart."""
    keys_dir = tmp_path / "keys"
    service = load_keyring(keys_dir)
    old = service.current_kek_id
    new = rotate_kek(keys_dir)
    assert await rewrap_all(db, load_keyring(keys_dir, create=False)) == 0
    assert (await retire_keks(db, keys_dir)).retired == (old,)

    sealed = await _subjects(db, service, tenant, 2)
    assert await _wrapped_by(db) == {new}
    await _all_readable(db, keys_dir, tenant, sealed)


async def test_a_rotation_during_a_rewrap_labels_each_key_with_the_kek_that_wrapped_it(
    db: Database, tenant: Tenant, tmp_path: Path
) -> None:
    """Two rotations close together: the first re-wrap went on under the second KEK (its ring
    follows the directory) but recorded the first one's id, so those data keys did not unwrap
    any more."""
    keys_dir = tmp_path / "keys"
    sealed = await _subjects(db, load_keyring(keys_dir), tenant, 6)
    rotate_kek(keys_dir)
    ring = load_keyring(keys_dir, create=False)
    newest: list[str] = []

    def rotate_again(done: int, _total: int) -> None:
        if not newest:
            newest.append(rotate_kek(keys_dir))

    await rewrap_all(db, ring, batch_size=2, progress=rotate_again)
    assert await _wrapped_by(db) == set(newest)
    await _all_readable(db, keys_dir, tenant, sealed)


async def _hold_lock_on_one_key(
    db: Database, locked: asyncio.Event, release: asyncio.Event
) -> None:
    async with db.system() as conn:
        await conn.fetchrow("select 1 from subject_key limit 1 for update")
        locked.set()
        await release.wait()


async def test_a_rewrap_that_cannot_reach_a_locked_key_says_so(
    db: Database, tenant: Tenant, tmp_path: Path
) -> None:
    """A data key locked by another transaction for the whole re-wrap was skipped (SKIP LOCKED)
    and the rotation reported success: the old KEK then looked safe to delete but was not."""
    keys_dir = tmp_path / "keys"
    sealed = await _subjects(db, load_keyring(keys_dir), tenant, 4)
    rotate_kek(keys_dir)
    ring = load_keyring(keys_dir, create=False)
    locked, release = asyncio.Event(), asyncio.Event()
    holder = asyncio.create_task(_hold_lock_on_one_key(db, locked, release))
    await locked.wait()
    try:
        with pytest.raises(RewrapIncomplete) as incomplete:
            await rewrap_all(db, ring, batch_size=2, locked_wait=0.3)
    finally:
        release.set()
        await holder
    assert (incomplete.value.done, incomplete.value.remaining) == (3, 1)
    assert await rewrap_all(db, ring) == 1
    assert await _wrapped_by(db) == {ring.current_kek_id}
    await _all_readable(db, keys_dir, tenant, sealed)


async def test_a_rewrap_waits_for_a_key_locked_for_a_moment(
    db: Database, tenant: Tenant, tmp_path: Path
) -> None:
    keys_dir = tmp_path / "keys"
    await _subjects(db, load_keyring(keys_dir), tenant, 3)
    rotate_kek(keys_dir)
    ring = load_keyring(keys_dir, create=False)
    locked, release = asyncio.Event(), asyncio.Event()
    holder = asyncio.create_task(_hold_lock_on_one_key(db, locked, release))
    await locked.wait()
    asyncio.get_running_loop().call_later(0.3, release.set)
    assert await rewrap_all(db, ring, locked_wait=10) == 3
    await holder
    assert await _wrapped_by(db) == {ring.current_kek_id}
