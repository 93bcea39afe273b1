"""Key hierarchy: generated once, data keys wrapped by the KEK, rotation keeps data readable."""

from __future__ import annotations

import base64
import hashlib
import shutil
import stat
import subprocess
import sys
import time
import uuid
from pathlib import Path

import msgspec
import pytest
from litestar.testing import AsyncTestClient

from consent.app import create_app
from consent.config import Settings
from consent.crypto.aead import DecryptionError
from consent.crypto.binding import KeyRingMismatch, bind_or_check
from consent.crypto.datakeys import DataKeys, EncryptedForErasedSubject, rewrap_all
from consent.crypto.keys import KeyError_, KeyRing, load_keyring, rotate_kek
from consent.db.database import Database
from tests.conftest import Catalog, Tenant

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[3]


def test_keys_are_generated_once_with_private_permissions(tmp_path: Path) -> None:
    ring = load_keyring(tmp_path / "keys")
    again = load_keyring(tmp_path / "keys")
    assert ring.current_kek_id == again.current_kek_id
    assert ring.lookup_root == again.lookup_root
    files = [p for p in (tmp_path / "keys").rglob("*") if p.is_file()]
    assert {p.name for p in files} >= {"lookup.key", "signing.ed25519", "current"}
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path.name
    assert stat.S_IMODE((tmp_path / "keys").stat().st_mode) == 0o700
    assert "lookup" not in repr(ring)
    assert base64.b64encode(ring.lookup_root).decode() not in repr(ring)


def test_production_refuses_to_invent_keys(tmp_path: Path) -> None:
    with pytest.raises(KeyError_):
        load_keyring(tmp_path / "absent", create=False)


def test_lookup_digests_are_per_tenant(tmp_path: Path) -> None:
    ring = load_keyring(tmp_path / "keys")
    a = ring.lookup_digest("tenant-a", "email", "ann@example.com")
    assert a == ring.lookup_digest("tenant-a", "email", "ann@example.com")
    assert a != ring.lookup_digest("tenant-b", "email", "ann@example.com")
    assert a != ring.lookup_digest("tenant-a", "phone", "ann@example.com")


async def test_rotation_rewraps_and_old_data_still_decrypts(
    db: Database, tenant: Tenant, tmp_path: Path
) -> None:
    keys_dir = tmp_path / "keys"
    ring = load_keyring(keys_dir)
    old_kek = ring.current_kek_id
    datakeys = DataKeys(ring)
    tid = uuid.UUID(tenant.id)
    subjects = [uuid.uuid4() for _ in range(25)]
    sealed: dict[uuid.UUID, bytes] = {}
    async with db.tenant(tid) as conn:
        for sid in subjects:
            dek = await datakeys.ensure(conn, tid, sid)
            sealed[sid] = DataKeys.encrypt(dek, tid, sid, f"secret-{sid}".encode(), b"profile")

    new_kek = rotate_kek(keys_dir)
    assert new_kek != old_kek
    # The running service's ring notices the rotation without a restart.
    ring.refresh(force=True)
    assert ring.current_kek_id == new_kek
    progress: list[tuple[int, int]] = []
    count = await rewrap_all(db, ring, batch_size=10, progress=lambda d, t: progress.append((d, t)))
    assert count == 25
    assert progress[-1] == (25, 25)
    assert len(progress) == 3

    async with db.system() as conn:
        kek_ids = {r["kek_id"] for r in await conn.fetch("select kek_id from subject_key")}
    assert kek_ids == {new_kek}

    # A fresh process (new ring from disk) still decrypts everything written before rotation.
    fresh = DataKeys(load_keyring(keys_dir, create=False))
    async with db.tenant(tid) as conn:
        for sid in subjects:
            dek = await fresh.get(conn, tid, sid)
            plain = DataKeys.decrypt(dek, tid, sid, sealed[sid], b"profile")
            assert plain == f"secret-{sid}".encode()
    # Rotating again with nothing left to do is harmless.
    assert await rewrap_all(db, ring) == 0


async def test_data_is_bound_to_its_subject_and_dies_with_its_key(
    db: Database, tenant: Tenant, tmp_path: Path
) -> None:
    ring = load_keyring(tmp_path / "keys")
    datakeys = DataKeys(ring)
    tid, a, b = uuid.UUID(tenant.id), uuid.uuid4(), uuid.uuid4()
    async with db.tenant(tid) as conn:
        dek_a = await datakeys.ensure(conn, tid, a)
        blob = DataKeys.encrypt(dek_a, tid, a, b"ann", b"email")
        with pytest.raises(DecryptionError):
            DataKeys.decrypt(dek_a, tid, b, blob, b"email")
        with pytest.raises(DecryptionError):
            DataKeys.decrypt(dek_a, tid, a, blob, b"phone")
        # A wrapped key copied onto another subject's row does not unwrap there.
        await conn.execute(
            "insert into subject_key (tenant_id, subject_id, kek_id, dek_wrapped) "
            "select tenant_id, $2, kek_id, dek_wrapped from subject_key where subject_id = $1",
            a,
            b,
        )
        with pytest.raises(KeyError_):
            await datakeys.get(conn, tid, b)
        await datakeys.destroy(conn, tid, a)
        with pytest.raises(EncryptedForErasedSubject):
            await datakeys.get(conn, tid, a)


_LOAD_WHEN_TOLD = """
import hashlib, sys, time
from pathlib import Path
from cryptography.hazmat.primitives import serialization
from consent.crypto.keys import load_keyring
go = Path(sys.argv[2])
while not go.exists():
    time.sleep(0.001)
ring = load_keyring(Path(sys.argv[1]))
public = ring.signing_key.public_key().public_bytes(
    serialization.Encoding.Raw, serialization.PublicFormat.Raw
)
print(ring.current_kek_id, hashlib.sha256(ring.lookup_root).hexdigest(), public.hex())
"""


def test_processes_creating_keys_at_once_all_get_the_same_keys(tmp_path: Path) -> None:
    """The workers of a first `consent serve` create the keys together. Each used to generate
    its own: one crashed on the other's temporary file, or, worse, kept encrypting under a key
    that another worker then overwrote on disk (lost for good at the next restart)."""
    keys, go = tmp_path / "keys", tmp_path / "go"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _LOAD_WHEN_TOLD, str(keys), str(go)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        for _ in range(6)
    ]
    time.sleep(1.5)  # every process has imported and waits
    go.touch()
    outputs = [p.communicate(timeout=60) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err[-500:] for _, err in outputs]
    seen = {out.strip() for out, _ in outputs}
    assert len(seen) == 1, seen
    ring = load_keyring(keys, create=False)
    kek_id, lookup, _ = seen.pop().split()
    assert (ring.current_kek_id, hashlib.sha256(ring.lookup_root).hexdigest()) == (kek_id, lookup)
    assert len(list((keys / "kek").glob("*.key"))) == 1


async def test_a_database_refuses_a_key_ring_it_does_not_belong_to(
    db: Database, tmp_path: Path
) -> None:
    """Started with another key directory, a process would hash identifiers anew (customers
    become new, empty subjects) and wrap data keys under a KEK the others lack: refused."""
    first = load_keyring(tmp_path / "first")
    async with db.pool.acquire() as conn:
        await bind_or_check(conn, first)
        await bind_or_check(conn, load_keyring(tmp_path / "first"))  # the same ring again

        with pytest.raises(KeyRingMismatch, match="lookup key"):
            await bind_or_check(conn, load_keyring(tmp_path / "other"))

        rotate_kek(tmp_path / "first")
        rotated = load_keyring(tmp_path / "first")
        await bind_or_check(conn, rotated)  # a rotation is recorded, not refused
        recorded = await conn.fetchval("select kek_ids from key_binding")
        assert recorded == [first.current_kek_id, rotated.current_kek_id]

        shutil.copytree(tmp_path / "first", tmp_path / "lost")
        (tmp_path / "lost" / "kek" / f"{first.current_kek_id}.key").unlink()
        with pytest.raises(KeyRingMismatch, match=first.current_kek_id):
            await bind_or_check(conn, load_keyring(tmp_path / "lost"))


async def test_the_service_does_not_start_with_another_key_ring(
    db: Database, settings: Settings, keyring: KeyRing, tmp_path: Path
) -> None:
    async with db.pool.acquire() as conn:
        await bind_or_check(conn, keyring)
    stranger = load_keyring(tmp_path / "stranger")
    with pytest.raises(BaseException) as failed:
        async with AsyncTestClient(app=create_app(settings, keyring=stranger)):
            pass
    assert "lookup key" in repr(failed.value)
    async with AsyncTestClient(app=create_app(settings, keyring=keyring)) as client:
        assert (await client.get("/health/ready")).status_code == 200


async def test_a_rotation_under_a_running_service_keeps_data_readable_and_erasable(
    db: Database, settings: Settings, tenant: Tenant, tmp_path: Path
) -> None:
    """`consent keys rotate` (another process: its own key ring) while the service runs: the
    service still reads what it wrote before, wraps new data keys under the new KEK, and an
    erasure still shreds a subject whose key was re-wrapped."""
    keys_dir = tmp_path / "keys"
    service_ring = load_keyring(keys_dir)
    old_kek = service_ring.current_kek_id
    own = msgspec.structs.replace(settings, keys_dir=keys_dir)
    browser = "RotationBrowser/1.0"
    h = {**tenant.headers, "user-agent": browser}
    async with AsyncTestClient(app=create_app(own, keyring=service_ring)) as client:
        catalog = Catalog(client, tenant)
        await catalog.post("/v1/purposes", {"key": "ads", "name": "Ads", "legal_basis": "consent"})
        await catalog.post("/v1/notices", {"key": "main", "purposes": ["ads"]})
        version = await catalog.publish_version()
        on = await client.put(
            "/v1/tenant/settings", json={"store_network_evidence": True}, headers=h
        )
        assert on.status_code == 200, on.text

        async def consent(identifier: dict[str, str]) -> str:
            body = {
                "identifier": identifier,
                "choices": [{"purpose": "ads", "choice": "granted"}],
                "notice_version_id": version,
                "surface": "banner",
                "channel": "web",
            }
            written = await client.post("/v1/consents", json=body, headers=h)
            assert written.status_code == 201, written.text
            return str(written.json()["subject_id"])

        before = await consent({"type": "email", "value": "rotate@example.com"})

        new_kek = rotate_kek(keys_dir)  # what `consent keys rotate` does, in its own process
        assert await rewrap_all(db, load_keyring(keys_dir, create=False)) == 1

        history = await client.get(f"/v1/subjects/{before}/consents/history", headers=h)
        assert history.status_code == 200, history.text
        assert history.json()["items"][0]["network"]["user_agent"] == browser
        after = await consent({"type": "email", "value": "new-after-rotation@example.com"})
        async with db.system() as conn:
            wrapped_by = {
                str(r["subject_id"]): r["kek_id"]
                for r in await conn.fetch("select subject_id, kek_id from subject_key")
            }
        assert wrapped_by == {before: new_kek, after: new_kek}
        assert old_kek != new_kek

        erased = await client.delete(f"/v1/subjects/{before}", headers=h)
        assert erased.status_code == 200, erased.text
        async with db.tenant(uuid.UUID(tenant.id)) as conn:
            with pytest.raises(EncryptedForErasedSubject):
                await DataKeys(service_ring).get(conn, uuid.UUID(tenant.id), uuid.UUID(before))
        gone = await client.get(f"/v1/subjects/{before}/consents/history", headers=h)
        assert gone.status_code == 404
        kept = await client.post(
            "/v1/subjects/lookup",
            json={"identifier": {"type": "email", "value": "new-after-rotation@example.com"}},
            headers=h,
        )
        assert kept.status_code == 200, kept.text
