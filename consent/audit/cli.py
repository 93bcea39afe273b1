"""`consent audit …`: verify the stored log, integrate, monitor a service, export proofs."""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import signal
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from consent.audit.checkpoint import NoteError, NoteSigner, VerifierKey, open_checkpoint
from consent.audit.verify_offline import verify_consistency_notes

__all__ = ["add_parser", "monitor_once"]


def _out(text: str) -> None:
    """A line of progress, a warning or an error: stderr."""
    print(text, file=sys.stderr)  # noqa: T201


def _result(text: str) -> None:
    """A line of the command's result: stdout, alone (README: Configuration)."""
    print(text)  # noqa: T201


async def _open(settings: Any, action: str, *, wait_ready: bool = False) -> tuple[Any, Any] | None:
    """The key ring and the database, the keys bound to it or checked against its binding:
    checkpoints are never signed, nor logs verified or identifiers looked up, with another
    service's keys, and none are generated in a wrong key directory. None, after one line
    naming the whole command, when the database belongs to another key ring."""
    from consent.crypto.binding import KeyRingMismatch, bound_keys, existing_keys
    from consent.db.database import Database

    ring = existing_keys(settings)  # generated (development) once the database has none
    db = await Database.from_settings(settings)
    try:
        if wait_ready:
            await _wait_until_ready(db)
        async with db.pool.acquire() as conn:
            return await bound_keys(conn, settings, ring), db
    except KeyRingMismatch as exc:
        await db.close()
        _out(f"consent audit {action}: {exc}")
        return None
    except BaseException:
        await db.close()
        raise


async def _verify(args: argparse.Namespace) -> int:
    from consent.audit.verify_db import verify_all
    from consent.cli import _settings
    from consent.db.database import Database

    settings = _settings()
    if args.vkey:  # the key given is all it checks with: the local keys play no part
        vkey = VerifierKey.parse(args.vkey)
        db = await Database.from_settings(settings)
    else:
        opened = await _open(settings, "verify")
        if opened is None:
            return 1
        ring, db = opened
        vkey = NoteSigner(settings.audit_origin, ring.signing_key).verifier
    try:
        started = time.perf_counter()
        reports = await verify_all(db, vkey, None if args.tenant is None else str(args.tenant))
    finally:
        await db.close()
    if args.tenant is not None and not reports:
        # Nothing verified is no proof: a mistyped tenant id must not pass as "ok".
        _out(f"consent audit verify: tenant {args.tenant} has no audit log")
        return 1
    failed = 0
    for r in reports:
        status = "ok" if r.ok else "FAILED"
        _result(f"{status}: {r.origin}: {r.tree_size} leaves, {r.checkpoints} checkpoints")
        for problem in r.problems:
            _result(f"  - {problem}")
        failed += not r.ok
    _result(f"verified {len(reports)} logs in {time.perf_counter() - started:.2f} s")
    return 1 if failed else 0


async def _integrate(args: argparse.Namespace) -> int:
    from consent.audit.integrator import Integrator
    from consent.cli import _settings
    from consent.idempotency import keep_pruned
    from consent.serving import die_with_main_process

    if args.loop and not die_with_main_process():
        _out("consent audit integrate: the service that started it has gone")
        return 1
    settings = _settings()
    opened = await _open(settings, "integrate", wait_ready=args.wait_ready)
    if opened is None:
        return 1
    ring, db = opened
    try:
        integrator = Integrator(
            db,
            NoteSigner(settings.audit_origin, ring.signing_key),
            sign_interval=args.sign_interval,
        )
        if args.loop:
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(signum, stop.set)
            _out("consent audit integrate: integrating until stopped")
            # The service's one background process: it also deletes expired idempotency
            # records, which the workers of `consent serve` leave to it.
            await asyncio.gather(
                integrator.run(stop, interval=args.interval),
                keep_pruned(db, settings.idempotency_retention_days, stop),
            )
            return 0
        count = await integrator.integrate_all()
    finally:
        await db.close()
    _result(f"integrated {count} leaves")
    return 0


async def _wait_until_ready(db: Any) -> None:
    """Wait (quietly, however long it takes) until the database answers and every migration
    on disk is applied: a service's integrator process starts with its workers, which migrate
    a new database."""
    from consent.db.migrate import default_migrations_dir, discover, migrations_current

    migrations = discover(default_migrations_dir())
    while True:
        if await db.ping() and await migrations_current(db, migrations):
            return
        await asyncio.sleep(0.5)


def _get(url: str, api_key: str) -> bytes:
    if not url.startswith(("http://", "https://")):
        raise ValueError("the service URL must be http(s)")
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {api_key}"})  # noqa: S310
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
        body: bytes = response.read()
        return body


def monitor_once(base_url: str, api_key: str, vkey: str, state_file: Path) -> tuple[bool, str]:
    """Fetch the latest checkpoint and prove it consistent with the one seen last time.

    Returns (ok, message); the state file is updated only when the new checkpoint is verified.
    """
    base = base_url.rstrip("/")
    note = _get(f"{base}/v1/audit/checkpoint", api_key).decode()
    origin = note.split("\n", 1)[0]
    try:
        checkpoint, _ = open_checkpoint(note, [VerifierKey.parse(vkey)], origin=origin)
    except NoteError as exc:
        return False, f"checkpoint does not verify: {exc}"
    previous = json.loads(state_file.read_text()) if state_file.exists() else None
    if previous is not None:
        if previous["origin"] != origin:
            return False, "the log origin changed"
        old_size = int(previous["size"])
        if checkpoint.size < old_size:
            return False, f"rollback: size {checkpoint.size} is below {old_size} seen before"
        if checkpoint.size > old_size:
            url = f"{base}/v1/audit/consistency?from={old_size}&to={checkpoint.size}"
            proof = [base64.b64decode(h) for h in json.loads(_get(url, api_key))]
            result = verify_consistency_notes(previous["note"], note, proof, vkey, origin=origin)
            if not result.ok:
                return False, f"fork: {result.reason}"
        elif previous["note"].split("\n\n")[0] != note.split("\n\n")[0]:
            return False, "fork: same size, different checkpoint"
    state_file.write_text(json.dumps({"origin": origin, "size": checkpoint.size, "note": note}))
    return True, f"ok: {origin} at size {checkpoint.size}"


def _monitor_failure(url: str, exc: Exception) -> str:
    """What went wrong, in words: the service's answer, or why it could not be reached."""
    if isinstance(exc, urllib.error.HTTPError):
        return f"{url} answered {exc.code} {exc.reason}"
    if isinstance(exc, urllib.error.URLError):
        return f"cannot reach {url}: {exc.reason}"
    return f"{type(exc).__name__}: {exc}"


def _monitor(args: argparse.Namespace) -> int:
    while True:
        try:
            ok, message = monitor_once(args.url, args.api_key, args.vkey, Path(args.state))
        except (OSError, ValueError, KeyError, NoteError) as exc:
            # An unreachable or refusing service, a bad key or state file: one line, no
            # traceback.
            ok, message = False, f"consent audit monitor: {_monitor_failure(args.url, exc)}"
        (_result if ok else _out)(message)
        if not ok:
            return 1
        if args.interval <= 0:
            return 0
        time.sleep(args.interval)


async def _export(args: argparse.Namespace) -> int:
    import msgspec

    from consent.audit.service import AuditReader
    from consent.cli import _settings
    from consent.errors import ProblemError
    from consent.subjects.resolver import SubjectResolver

    settings = _settings()
    opened = await _open(settings, "export")
    if opened is None:
        return 1
    ring, db = opened
    try:
        reader = AuditReader(
            db, args.tenant, NoteSigner(settings.audit_origin, ring.signing_key).vkey
        )
        export = await reader.export(
            SubjectResolver(ring),
            subject_id=args.subject,
            since=args.since,
            until=args.until,
            start=args.start,
        )
    except ProblemError as exc:  # no log, no checkpoint, no such subject: one line
        _out(f"consent audit export: {exc}")
        return 1
    finally:
        await db.close()
    await asyncio.to_thread(
        Path(args.out).write_bytes, msgspec.json.format(msgspec.json.encode(export))
    )
    _result(f"wrote {len(export.entries)} entries with proofs to {args.out}")
    if export.next_start is not None:
        _result(f"more entries follow: export again with --start {export.next_start}")
    return 0


def _verify_export(args: argparse.Namespace) -> int:
    """Check an export file offline: no database, no network, only the trusted key."""
    from consent.audit.verify_offline import MalformedInputError, verify_export

    try:
        result = verify_export(Path(args.file).read_bytes(), args.vkey, origin=args.origin)
    except OSError as exc:
        _out(f"consent audit verify-export: cannot read {args.file}: {exc.strerror or exc}")
        return 1
    except MalformedInputError as exc:
        _out(f"consent audit verify-export: {exc}")
        return 1
    if not result.ok:
        _out(f"FAILED: {args.file}: {result.reason}")
        return 1
    assert result.checkpoint is not None  # noqa: S101 - set whenever ok
    _result(
        f"ok: {result.entries} entries are in {result.checkpoint.origin}, "
        f"a signed tree of {result.checkpoint.size} leaves"
    )
    return 0


def _verifier_key(text: str) -> str:
    """An argument that must be a verifier key (`name+hexid+base64`; else argparse exits 2)."""
    try:
        VerifierKey.parse(text)
    except NoteError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _leaf_index(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a leaf index: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError("must be 0 or more")
    return value


def add_parser(sub: Any) -> None:
    import uuid
    from datetime import datetime

    from consent.cli import seconds

    audit = sub.add_parser("audit", help="tamper-evident audit log", description="Audit log.")
    cmds = audit.add_subparsers(dest="audit_command", required=True, metavar="ACTION")

    verify = cmds.add_parser(
        "verify",
        help="recompute every tree from the stored leaves; report the first divergence",
        description="Recompute each tenant's Merkle tree from the stored leaves, check every "
        "checkpoint's signature and root, and report the first divergence. Exit 1 on any.",
    )
    verify.add_argument("--tenant", type=uuid.UUID, help="only this tenant's log (exit 1: none)")
    verify.add_argument(
        "--vkey", type=_verifier_key, help="verifier key (default: the local signing key's)"
    )
    verify.set_defaults(func=lambda a: asyncio.run(_verify(a)))

    integrate = cmds.add_parser(
        "integrate",
        help="integrate pending leaves now (the service also does this continuously)",
        description="Assign leaf indexes to pending audit events and sign a checkpoint.",
    )
    integrate.add_argument(
        "--loop", action="store_true", help="keep integrating until SIGTERM or SIGINT"
    )
    integrate.add_argument("--interval", type=seconds, default=0.2, help="seconds between runs")
    integrate.add_argument(
        "--sign-interval",
        type=seconds,
        default=0.0,
        help="least seconds between two checkpoints of a log (0: sign after every batch)",
    )
    integrate.add_argument(
        "--wait-ready",
        action="store_true",
        help="first wait until the database is reachable and fully migrated",
    )
    integrate.set_defaults(func=lambda a: asyncio.run(_integrate(a)))

    monitor = cmds.add_parser(
        "monitor",
        help="check that a service's new checkpoint is consistent with the last one seen",
        description="Fetch the latest checkpoint over HTTP, verify its signature and a "
        "consistency proof from the checkpoint stored in --state; exit 1 on a fork or rollback.",
    )
    monitor.add_argument("--url", required=True, help="base URL of the service")
    monitor.add_argument("--api-key", required=True, help="an API key with the read scope")
    monitor.add_argument("--vkey", required=True, type=_verifier_key, help="the log's verifier key")
    monitor.add_argument("--state", required=True, help="file keeping the last checkpoint seen")
    monitor.add_argument(
        "--interval", type=seconds, default=0, help="repeat every N seconds (0: check once)"
    )
    monitor.set_defaults(func=_monitor)

    export = cmds.add_parser(
        "export",
        help="a subject's or a period's leaves with proofs, as one JSON file",
        description="Export leaves with inclusion proofs against one signed checkpoint.",
    )
    export.add_argument("--tenant", required=True, type=uuid.UUID, help="the tenant's id")
    export.add_argument(
        "--subject", type=uuid.UUID, help="a subject's id: its leaves (and its linked ones')"
    )
    export.add_argument(
        "--since",
        type=datetime.fromisoformat,
        help="period start (ISO 8601, included), by the time in each event id",
    )
    export.add_argument(
        "--until",
        type=datetime.fromisoformat,
        help="period end (ISO 8601, excluded), by the time in each event id",
    )
    export.add_argument(
        "--start",
        type=_leaf_index,
        default=0,
        help="first leaf index (a previous file's next_start)",
    )
    export.add_argument("--out", required=True, help="the JSON file to write")

    def run_export(a: argparse.Namespace) -> int:
        by_subject = a.subject is not None and a.since is None and a.until is None
        by_period = a.subject is None and a.since is not None and a.until is not None
        if not (by_subject or by_period):
            export.error("give --subject, or both --since and --until")  # exits 2
        return asyncio.run(_export(a))

    export.set_defaults(func=run_export)

    check = cmds.add_parser(
        "verify-export",
        help="check an export file offline with the trusted key",
        description="Check a file from `consent audit export` or GET /v1/audit/export offline: "
        "its checkpoint is signed by --vkey (obtained independently, not the file's own) and "
        "every entry's inclusion proof leads to it. Exit 0: verified; 1: not verified.",
    )
    check.add_argument("file", help="the export file (JSON)")
    check.add_argument("--vkey", required=True, type=_verifier_key, help="the trusted verifier key")
    check.add_argument("--origin", help="the log expected (default: the one the file names)")
    check.set_defaults(func=_verify_export)
