"""Every change to a stored audit row is detected by `consent audit verify`.

The tampering runs as a superuser with triggers disabled (session_replication_role = replica),
i.e. an operator with full database access: the append-only guards do not help, the hashes,
stored tree and signed checkpoints must.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from consent.audit.checkpoint import NoteSigner
from consent.audit.integrator import Integrator
from consent.audit.verify_db import LogReport, verify_all
from consent.db.database import Conn, Database
from tests.integration.conftest import Catalog
from tests.support.cli import cli_env, run_consent

pytestmark = pytest.mark.integration


async def _populate(catalog: Catalog, integrator: Integrator, n: int = 20) -> None:
    for i in range(n):
        await catalog.consent(
            identifier={"type": "device", "value": f"tamper-{i % 4}"},
            choices=[{"purpose": "analytics", "choice": "granted" if i % 3 else "denied"}],
        )
        if i % 6 == 5:
            await integrator.integrate_all()  # several checkpoints along the way
    await integrator.integrate_all()


async def _verify(db: Database, signer: NoteSigner, tenant: str) -> LogReport:
    reports = await verify_all(db, signer.verifier, tenant)
    assert len(reports) == 1
    return reports[0]


async def _as_superuser(db: Database, action: Callable[[Conn], Awaitable[Any]]) -> None:
    async with db.system() as conn:
        await conn.execute("set local session_replication_role = replica")
        await action(conn)


async def test_untouched_log_verifies(
    catalog: Catalog, db: Database, integrator: Integrator, signer: NoteSigner
) -> None:
    await _populate(catalog, integrator)
    report = await _verify(db, signer, catalog.tenant.id)
    assert report.ok, report.problems
    # The policy in force and the catalogue set-up's admin changes come first.
    assert report.tree_size == 1 + 7 + 20
    assert report.checkpoints >= 4


async def test_every_kind_of_leaf_verifies_untouched(
    client: Any, catalog: Catalog, db: Database, integrator: Integrator, signer: NoteSigner
) -> None:
    """The filing and evidence checks hold for every kind of leaf, before and after an erasure
    (which deletes the subject's token and evidence, and files its `subject.erased` leaf under
    no subject)."""
    device = await catalog.consent(
        identifier={"type": "device", "value": "kinds-1"},
        choices=[{"purpose": "analytics", "choice": "granted"}],
    )
    await catalog.post(
        "/v1/preferences",
        {
            "subject_id": device["subject_id"],
            "items": [{"kind": "channel", "key": "email", "value": "opt_in"}],
            "surface": "portal",
            "channel": "web",
        },
    )
    other = await catalog.consent(
        identifier={"type": "customer_id", "value": "K-9"},
        choices=[{"purpose": "analytics", "choice": "denied"}],
    )
    await catalog.post(
        "/v1/subjects/link",
        {"subjects": [{"subject_id": device["subject_id"]}, {"subject_id": other["subject_id"]}]},
        status=200,
    )
    await catalog.post(
        "/v1/decisions",
        {
            "subject": {"identifier": {"type": "device", "value": "kinds-1"}},
            "action": "web.analytics",
            "context": {"requester": "cdp-main"},
        },
        status=200,
    )
    header = {"action": "web.analytics", "context": {"requester": "dmp-nightly"}}
    body = json.dumps(header).encode() + b'\n{"type": "device", "value": "kinds-1"}\n'
    audience = await client.post(
        "/v1/audiences/filter",
        content=body,
        headers={**catalog.h, "content-type": "application/x-ndjson"},
    )
    assert audience.status_code == 200, audience.text
    exported = await client.get(f"/v1/subjects/{device['subject_id']}/export", headers=catalog.h)
    assert exported.status_code == 200, exported.text
    await integrator.integrate_all()
    report = await _verify(db, signer, catalog.tenant.id)
    assert report.ok, report.problems
    erased = await client.delete(f"/v1/subjects/{device['subject_id']}", headers=catalog.h)
    assert erased.status_code == 200, erased.text
    await integrator.integrate_all()
    async with db.system() as conn:
        kinds = {r["kind"] for r in await conn.fetch("select distinct kind from audit_event")}
    assert kinds >= {
        "admin.changed",
        "consent.recorded",
        "preference.recorded",
        "subject.linked",
        "decision.made",
        "audience.used",
        "subject.exported",
        "subject.erased",
    }
    report = await _verify(db, signer, catalog.tenant.id)
    assert report.ok, report.problems


async def _event_at(conn: Conn, index: int) -> int:
    """The audit_event row of leaf `index`."""
    return int(await conn.fetchval("select event_id from audit_leaf where leaf_index = $1", index))


async def change_bytes(conn: Conn) -> None:
    changed = await conn.execute(
        "update audit_event set leaf_bytes = convert_to(replace(convert_from(leaf_bytes, 'UTF8'), "
        "'\"analytics\"', '\"analytic5\"'), 'UTF8') where event_id = $1",
        await _event_at(conn, 8),
    )
    assert changed == "UPDATE 1"


async def change_bytes_and_hash(conn: Conn) -> None:
    """Leaf 8 forged consistently: its bytes, the event's hash and the tree's leaf hash."""
    event_id = await _event_at(conn, 8)
    row = await conn.fetchrow("select leaf_bytes from audit_event where event_id = $1", event_id)
    assert row is not None
    forged = bytes(row["leaf_bytes"]).replace(b'"analytics"', b'"analytic5"')
    forged_hash = hashlib.sha256(b"\x00" + forged).digest()
    await conn.execute(
        "update audit_event set leaf_bytes = $2, leaf_hash = $3 where event_id = $1",
        event_id,
        forged,
        forged_hash,
    )
    await conn.execute(
        "update audit_leaf set leaf_hash = $2 where event_id = $1", event_id, forged_hash
    )


async def delete_leaf(conn: Conn) -> None:
    event_id = await _event_at(conn, 8)
    await conn.execute("delete from audit_leaf where event_id = $1", event_id)
    await conn.execute("delete from audit_event where event_id = $1", event_id)


async def delete_event_only(conn: Conn) -> None:
    await conn.execute("delete from audit_event where event_id = $1", await _event_at(conn, 8))


async def reorder_leaves(conn: Conn) -> None:
    await conn.execute("update audit_leaf set leaf_index = -1 where leaf_index = 8")
    await conn.execute("update audit_leaf set leaf_index = 8 where leaf_index = 13")
    await conn.execute("update audit_leaf set leaf_index = 13 where leaf_index = -1")


async def change_stored_node(conn: Conn) -> None:
    """The stored hash over leaves 0-15 (what inclusion proofs are served from) is replaced."""
    changed = await conn.execute(
        "update audit_node set hash = sha256(hash) where level = 4 and idx = 0"
    )
    assert changed == "UPDATE 1"


async def insert_leaf(conn: Conn) -> None:
    """A copy of leaf 3 slipped in as leaf 8, the later leaves moved up by one."""
    row = await conn.fetchrow(
        "select * from audit_event where event_id = $1", await _event_at(conn, 3)
    )
    assert row is not None
    await conn.execute("update audit_leaf set leaf_index = leaf_index + 1000 where leaf_index >= 8")
    await conn.execute(
        "update audit_leaf set leaf_index = leaf_index - 999 where leaf_index >= 1008"
    )
    event_id = await conn.fetchval(
        "insert into audit_event (event_uuid, log_id, tenant_id, leaf_bytes, leaf_hash, kind) "
        "values ($1, $2, $3, $4, $5, $6) returning event_id",
        uuid.uuid4(),
        row["log_id"],
        row["tenant_id"],
        row["leaf_bytes"],
        row["leaf_hash"],
        row["kind"],
    )
    await conn.execute(
        "insert into audit_leaf (log_id, leaf_index, event_id, leaf_hash) values ($1, 8, $2, $3)",
        row["log_id"],
        event_id,
        row["leaf_hash"],
    )


async def drop_pending_leaf(conn: Conn) -> None:
    """A leaf taken out of the outbox before the integrator saw it: the event stays unproved."""
    deleted = await conn.execute(
        "delete from audit_pending where event_id = (select max(event_id) from audit_pending)"
    )
    assert deleted == "DELETE 1"


async def swap_checkpoint(conn: Conn) -> None:
    rows = await conn.fetch("select tree_size, note from audit_checkpoint order by tree_size")
    first, last = rows[0], rows[-1]
    await conn.execute(
        "update audit_checkpoint set note = $1 where tree_size = $2",
        last["note"],
        first["tree_size"],
    )


async def edit_checkpoint_text(conn: Conn) -> None:
    note = await conn.fetchval("select note from audit_checkpoint order by tree_size desc limit 1")
    lines = note.split("\n")
    lines[1] = str(int(lines[1]) + 1)
    await conn.execute(
        "update audit_checkpoint set note = $1 where note = $2", "\n".join(lines), note
    )


async def drop_latest_leaves(conn: Conn) -> None:
    await conn.execute(
        "with gone as (delete from audit_leaf where leaf_index >= 26 returning event_id) "
        "delete from audit_event where event_id in (select event_id from gone)"
    )


async def _uuid_at(conn: Conn, index: int) -> uuid.UUID:
    value = await conn.fetchval(
        "select event_uuid from audit_event where event_id = $1", await _event_at(conn, index)
    )
    return uuid.UUID(str(value))


async def refile_event(conn: Conn) -> None:
    """Leaf 8 (a consent of device tamper-0) moved into the activity of tamper-1's subject."""
    other = await conn.fetchval(
        "select subject_id from audit_event where event_id = $1", await _event_at(conn, 9)
    )
    changed = await conn.execute(
        "update audit_event set subject_id = $2 where event_id = $1 and subject_id <> $2",
        await _event_at(conn, 8),
        other,
    )
    assert changed == "UPDATE 1"


async def unfile_event(conn: Conn) -> None:
    """Leaf 8 hidden from its subject's activity and export."""
    await conn.execute(
        "update audit_event set subject_id = null where event_id = $1", await _event_at(conn, 8)
    )


async def change_kind(conn: Conn) -> None:
    await conn.execute(
        "update audit_event set kind = 'admin.changed' where event_id = $1",
        await _event_at(conn, 8),
    )


async def change_token(conn: Conn) -> None:
    """The token of leaf 8's subject replaced: its leaves no longer name it."""
    changed = await conn.execute(
        "update audit_subject_token set token = sha256(token) "
        "where subject_id = (select subject_id from audit_event where event_id = $1)",
        await _event_at(conn, 8),
    )
    assert changed == "UPDATE 1"


async def change_evidence(conn: Conn) -> None:
    changed = await conn.execute(
        "update audit_evidence set ciphertext = ciphertext || '\\x00'::bytea where event_uuid = $1",
        await _uuid_at(conn, 8),
    )
    assert changed == "UPDATE 1"


async def delete_evidence(conn: Conn) -> None:
    deleted = await conn.execute(
        "delete from audit_evidence where event_uuid = $1", await _uuid_at(conn, 8)
    )
    assert deleted == "DELETE 1"


async def change_frontier(conn: Conn) -> None:
    """The integrator's state: the next batch would build on a wrong tree."""
    changed = await conn.execute(
        "update audit_log set frontier[array_length(frontier, 1)] = "
        "sha256(frontier[array_length(frontier, 1)])"
    )
    assert changed == "UPDATE 1"


async def change_pending_hash(conn: Conn) -> None:
    """The waiting leaf's outbox row carries another hash: it would be integrated wrong."""
    changed = await conn.execute("update audit_pending set leaf_hash = sha256(leaf_hash)")
    assert changed == "UPDATE 1"


async def change_pending_bytes(conn: Conn) -> None:
    """The waiting leaf's bytes changed before the integrator saw them."""
    changed = await conn.execute(
        "update audit_event set leaf_bytes = leaf_bytes || '\\x20'::bytea "
        "where event_id = (select event_id from audit_pending)"
    )
    assert changed == "UPDATE 1"


async def forge_pending(conn: Conn) -> None:
    """An outbox row for no event: the integrator would put a leaf nobody wrote in the tree."""
    await conn.execute(
        "insert into audit_pending select log_id, 1::bigint << 40, sha256('forged') from audit_log"
    )


@pytest.mark.parametrize(
    ("tamper", "expected"),
    [
        (change_bytes, "leaf 8: bytes do not match"),
        # Leaf 8 re-hashed or swapped with 13: the first checkpoint over it (14) no longer matches
        # (stored nodes start at level 4, so the node over leaves 0-15 is not reached first).
        (change_bytes_and_hash, "first divergence: checkpoint 14: its root differs"),
        (delete_leaf, "leaf 8: missing"),
        (delete_event_only, "first divergence: leaf 8: its event is missing"),
        (change_stored_node, "first divergence: leaves 0-15: differ from the stored tree"),
        (reorder_leaves, "first divergence: checkpoint 14: its root differs"),
        (insert_leaf, "first divergence: leaf 8"),
        (swap_checkpoint, "its signed note says another tree"),
        (edit_checkpoint_text, "checkpoint"),
        (drop_latest_leaves, "checkpoint 28: beyond the 26 stored leaves"),
        (drop_pending_leaf, "neither integrated nor pending"),
        (refile_event, "first divergence: leaf 8: filed under another subject"),
        (unfile_event, "first divergence: leaf 8: not filed under its subject"),
        (change_kind, "first divergence: leaf 8: filed as 'admin.changed'"),
        (change_token, "first divergence: leaf 8: filed under another subject"),
        (change_evidence, "first divergence: leaf 8: its evidence differs"),
        (delete_evidence, "first divergence: leaf 8: its evidence is missing"),
        (change_frontier, "log state frontier differs from the leaves"),
        (change_pending_hash, "does not carry its event's leaf hash"),
        (change_pending_bytes, "does not carry its event's leaf hash"),
        (forge_pending, "does not carry its event's leaf hash"),
    ],
)
async def test_tampering_is_detected(
    catalog: Catalog,
    db: Database,
    integrator: Integrator,
    signer: NoteSigner,
    tamper: Callable[[Conn], Awaitable[None]],
    expected: str,
) -> None:
    await _populate(catalog, integrator)
    await catalog.consent(  # one leaf still waiting in the outbox
        identifier={"type": "device", "value": "tamper-late"},
        choices=[{"purpose": "analytics", "choice": "granted"}],
    )
    await _as_superuser(db, tamper)
    report = await _verify(db, signer, catalog.tenant.id)
    assert not report.ok
    assert any(expected in p for p in report.problems), report.problems


async def test_every_stored_node_is_checked(
    catalog: Catalog, db: Database, integrator: Integrator, signer: NoteSigner
) -> None:
    """Proofs are served from the stored nodes of every level, not only the lowest one."""
    await _populate(catalog, integrator, n=30)  # 38 leaves: a stored node over leaves 0-31

    async def change_upper_node(conn: Conn) -> None:
        changed = await conn.execute(
            "update audit_node set hash = sha256(hash) where level = 5 and idx = 0"
        )
        assert changed == "UPDATE 1"

    await _as_superuser(db, change_upper_node)
    report = await _verify(db, signer, catalog.tenant.id)
    assert "first divergence: leaves 0-31: differ from the stored tree" in report.problems


async def test_triggers_block_the_application_role(
    catalog: Catalog, db: Database, integrator: Integrator
) -> None:
    await _populate(catalog, integrator, n=3)
    await catalog.consent(  # one leaf still waiting in the outbox
        identifier={"type": "device", "value": "tamper-late"},
        choices=[{"purpose": "analytics", "choice": "granted"}],
    )
    import asyncpg

    async with db.pool.acquire() as conn:
        for statement in (
            "update audit_event set leaf_bytes = '\\x00'",
            "delete from audit_event",
            "truncate audit_event cascade",
            "update audit_leaf set leaf_index = leaf_index + 1",
            "delete from audit_leaf",
            "truncate audit_leaf",
            "update audit_checkpoint set note = 'x'",
        ):
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.execute(statement)
    # The outbox: the application role cannot see, add or remove pending leaves.
    for statement in (
        "select count(*) from audit_pending",
        "delete from audit_pending",
        "insert into audit_pending select log_id, 0, sha256('') from audit_log",
    ):
        async with db.tenant(catalog.tenant.id) as conn:
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.execute(statement)
    async with db.system() as conn:
        assert await conn.fetchval("select count(*) from audit_pending") == 1


async def test_verify_cli_exits_nonzero_on_tampering(
    catalog: Catalog,
    db: Database,
    integrator: Integrator,
    database_dsn: str,
    keys_dir: Path,
    tmp_path: Path,
) -> None:
    """The command an auditor runs: exit 0 on the untouched log, 1 once a leaf was changed."""
    await _populate(catalog, integrator, n=6)
    env = cli_env(database_dsn, keys_dir, tmp_path)

    def verify() -> subprocess.CompletedProcess[str]:
        return run_consent("audit", "verify", env=env)

    untouched = verify()
    assert untouched.returncode == 0, untouched.stderr
    assert "verified" in untouched.stdout

    async def change_a_leaf(conn: Conn) -> None:
        await conn.execute(
            "update audit_leaf set leaf_hash = sha256('forged'::bytea) "
            "where leaf_index = 3 and log_id = (select log_id from audit_log where tenant_id = $1)",
            uuid.UUID(catalog.tenant.id),
        )

    await _as_superuser(db, change_a_leaf)
    tampered = verify()
    assert tampered.returncode == 1, tampered.stderr
    assert "leaf 3" in tampered.stdout
