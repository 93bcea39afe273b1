"""The `consent` command (also `python -m consent`)."""

from __future__ import annotations

import argparse
import asyncio
import math
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit
from uuid import UUID

from consent.config import ConfigError, Settings, load_settings, unknown_variables
from consent.logging import configure_logging

if TYPE_CHECKING:
    from consent.crypto.keys import KeyRing
    from consent.db.database import Database

__all__ = ["main", "positive_int", "seconds", "tenant_id_arg"]


def _settings() -> Settings:
    try:
        return load_settings()
    except ConfigError as exc:
        print(f"consent: {exc}", file=sys.stderr)  # noqa: T201
        raise SystemExit(2) from None


def _run(coro: Coroutine[Any, Any, int]) -> int:
    return asyncio.run(coro)


def _progress(label: str, *, every: float = 30.0) -> Callable[[int, int], None]:
    """`label: done/total` on stderr: redrawn in place on a terminal; elsewhere (a log file,
    a job runner) a line of its own at most every `every` seconds and the final count, so
    that a run of hours shows it is alive without a line per batch."""
    terminal = sys.stderr.isatty()
    last_line = time.monotonic()

    def show(done: int, total: int) -> None:
        nonlocal last_line
        last = done >= total
        if terminal:
            end = "\n" if last else ""
            print(f"\r{label}: {done}/{total}", end=end, file=sys.stderr, flush=True)  # noqa: T201
            return
        now = time.monotonic()
        if last or now - last_line >= every:
            last_line = now
            print(f"{label}: {done}/{total}", file=sys.stderr, flush=True)  # noqa: T201

    return show


# -- commands ---------------------------------------------------------------------------------


def cmd_serve(args: argparse.Namespace) -> int:
    settings = _settings()
    from consent.crypto.binding import KeyRingMismatch, check_binding, existing_keys
    from consent.serving import AddressInUse, AddressUnusable, check_address_free, serve

    host = args.host or settings.host
    port = args.port or settings.port
    try:
        check_address_free(host, port)
    except AddressInUse as exc:
        print(f"consent serve: {exc} (another consent serve? set CONSENT_PORT)", file=sys.stderr)  # noqa: T201
        return 1
    except AddressUnusable as exc:
        print(f"consent serve: cannot listen on {exc}; set CONSENT_HOST", file=sys.stderr)  # noqa: T201
        return 2
    # What every worker would otherwise find out for itself, each with its traceback: keys
    # that cannot be read (or, outside development, are missing), a database (embedded or
    # not) that is down or belongs to another key ring. Keys are generated only once the
    # database is known to belong to none.
    ring = existing_keys(settings)
    if not _policies_found(settings):
        return 2
    try:
        asyncio.run(check_binding(settings, ring))
    except KeyRingMismatch as exc:
        print(f"consent serve: {exc}", file=sys.stderr)  # noqa: T201
        return 1
    if ring is None:
        _load_keys(settings)  # a first start: the database belongs to no key ring yet
    role_problem = asyncio.run(_prepare_database(settings))
    if role_problem is not None:
        print(f"consent serve: {role_problem}", file=sys.stderr)  # noqa: T201
        return 1
    if settings.database_url is None:
        _size_embedded_buffers(settings)
    print(f"consent: serving on http://{host}:{port} (docs: /schema)", file=sys.stderr)  # noqa: T201
    print(f"consent: {_where_the_data_lives(settings)}", file=sys.stderr)  # noqa: T201
    serve(settings, host, port, args.workers or settings.workers)
    return 0


async def _prepare_database(settings: Settings) -> str | None:
    """Before any worker starts: apply pending migrations (CONSENT_MIGRATE_ON_START), so that
    one that fails (a privilege the database user lacks) is one line of `consent serve` rather
    than a traceback from every worker; then why tenant transactions would fail, or None."""
    from consent.db.database import Database
    from consent.db.migrate import app_role_problem, apply_migrations, default_migrations_dir

    db = await Database.from_settings(settings)
    try:
        async with db.pool.acquire() as conn:
            if settings.migrate_on_start:
                applied = await apply_migrations(conn, default_migrations_dir())
                if applied:
                    names = [f"{m.version:04d}_{m.name}" for m in applied]
                    span = names[0] if len(names) == 1 else f"{names[0]} … {names[-1]}"
                    print(  # noqa: T201
                        f"consent: applied {len(names)} migrations ({span})", file=sys.stderr
                    )
            return await app_role_problem(conn)
    finally:
        await db.close()


def _load_keys(settings: Settings) -> KeyRing:
    """The key ring as the workers load it (generated here, once, on a first start in
    development: call consent.crypto.binding.check_binding first)."""
    from consent.crypto.keys import load_keyring

    return load_keyring(
        settings.resolved_keys_dir,
        kek=settings.kek,
        create=settings.environment == "development",
    )


def _policies_found(settings: Settings) -> bool:
    """Whether the policy directory holds a bundle that passes the checks a reload makes (else
    says why: a misspelt directory, a Rego error, a failing Rego test; ~1 s)."""
    from consent.decisions.engine import PolicyLoadError
    from consent.decisions.policy import load_bundle, policy_root

    root = policy_root(settings)
    try:
        load_bundle(root)
    except PolicyLoadError as exc:
        print(f"consent serve: CONSENT_POLICY_DIR: {exc}", file=sys.stderr)  # noqa: T201
        return False
    # In a process of its own: the engine starts the Go runtime, which a worker forked from
    # this process afterwards would inherit in a state it cannot run in.
    refused = _policy_refusal(root)
    if refused is not None:
        print(f"consent serve: CONSENT_POLICY_DIR: refused: {refused}", file=sys.stderr)  # noqa: T201
        return False
    return True


_CHECK_POLICY = """
import sys
from pathlib import Path
from consent.decisions.engine import PolicyLoadError
from consent.decisions.policy import check_policy
try:
    check_policy(Path(sys.argv[1]))
except PolicyLoadError as exc:
    print(exc)
    sys.exit(1)
"""


def _policy_refusal(root: Path) -> str | None:
    """Why a reload would refuse the bundle under `root` (checked by a child process), or
    None."""
    done = subprocess.run(  # noqa: S603 - this interpreter, our own code, a path argument
        [sys.executable, "-c", _CHECK_POLICY, str(root)],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    if done.returncode == 0:
        return None
    return done.stdout.strip() or done.stderr.strip()[-2000:] or f"exit {done.returncode}"


def _where_the_data_lives(settings: Settings) -> str:
    """The database and the keys, for the operator (never the URL's user or password)."""
    keys = f"keys: {settings.resolved_keys_dir.absolute()}"
    if settings.kek is not None:
        keys += " (current key-encryption key: CONSENT_KEK)"
    if settings.database_url is None:
        pgdata = (settings.data_dir / "pgdata").absolute()
        return f"database: embedded PostgreSQL in {pgdata}; {keys}"
    parts = urlsplit(settings.database_url)
    place = parts.netloc.rpartition("@")[2] + parts.path
    return f"database: {place or 'the default of libpq'} (CONSENT_DATABASE_URL); {keys}"


def _size_embedded_buffers(settings: Settings) -> None:
    from consent.db.memory import size_embedded_buffers

    sized = asyncio.run(size_embedded_buffers(settings.data_dir))
    if sized is not None:
        megabytes, now = sized
        when = "" if now else " from its next start (other processes use it now)"
        print(  # noqa: T201
            f"consent: the embedded PostgreSQL uses shared_buffers={megabytes}MB{when}",
            file=sys.stderr,
        )


async def _migrate(settings: Settings) -> int:
    from consent.db.database import Database
    from consent.db.migrate import apply_migrations, default_migrations_dir

    db = await Database.from_settings(settings)
    try:
        async with db.pool.acquire() as conn:
            applied = await apply_migrations(conn, default_migrations_dir())
    finally:
        await db.close()
    for m in applied:
        print(f"applied {m.version:04d}_{m.name}")  # noqa: T201
    if not applied:
        print("database is up to date")  # noqa: T201
    return 0


def cmd_migrate(_: argparse.Namespace) -> int:
    from consent.db.migrate import MigrationError

    try:
        return _run(_migrate(_settings()))
    except MigrationError as exc:
        print(f"consent migrate: {exc}", file=sys.stderr)  # noqa: T201
        return 1


async def _tenant_create(settings: Settings, name: str) -> int:
    from consent.audit.outbox import AuditWriter
    from consent.db.database import Database
    from consent.tenancy.service import create_tenant_with_admin_key

    db = await Database.from_settings(settings)
    try:
        await _migrated(db)
        tenant, key = await create_tenant_with_admin_key(
            db, name, AuditWriter(settings.audit_origin)
        )
    finally:
        await db.close()
    print(f"tenant {tenant.id} created ({tenant.name})")  # noqa: T201
    print("admin API key (shown once, store it now):")  # noqa: T201
    print(key)  # noqa: T201
    return 0


def cmd_tenant_create(args: argparse.Namespace) -> int:
    from consent.errors import ValidationFailed

    try:
        return _run(_tenant_create(_settings(), args.name))
    except ValidationFailed as exc:
        print(f"consent tenant create: {exc.detail}", file=sys.stderr)  # noqa: T201
        return 2


async def _tenant_list(settings: Settings) -> int:
    from consent.db.database import Database
    from consent.tenancy.service import list_tenants

    db = await Database.from_settings(settings)
    try:
        await _migrated(db)
        tenants = await list_tenants(db)
    finally:
        await db.close()
    for t in tenants:
        created = t.created_at.isoformat(timespec="seconds")
        print(f"{t.id}\t{t.name}\t{created}\t{t.active_keys}")  # noqa: T201
    return 0


def cmd_tenant_list(_args: argparse.Namespace) -> int:
    return _run(_tenant_list(_settings()))


async def _tenant_admin_key(settings: Settings, tenant_id: UUID, name: str) -> int:
    from consent.db.database import Database
    from consent.errors import NotFound
    from consent.tenancy.service import issue_admin_key

    db = await Database.from_settings(settings)
    try:
        await _migrated(db)
        key = await issue_admin_key(db, tenant_id, name)
    except NotFound as exc:
        print(f"consent tenant admin-key: {exc.detail}", file=sys.stderr)  # noqa: T201
        return 1
    finally:
        await db.close()
    print(f"admin API key for tenant {tenant_id} (shown once, store it now):")  # noqa: T201
    print(key)  # noqa: T201
    return 0


def cmd_tenant_admin_key(args: argparse.Namespace) -> int:
    from consent.errors import ValidationFailed

    try:
        return _run(_tenant_admin_key(_settings(), args.tenant_id, args.name))
    except ValidationFailed as exc:
        print(f"consent tenant admin-key: {exc.detail}", file=sys.stderr)  # noqa: T201
        return 2


async def _migrated(db: Database) -> None:
    from consent.db.migrate import apply_migrations, default_migrations_dir

    async with db.pool.acquire() as conn:
        await apply_migrations(conn, default_migrations_dir())


async def _keys_rotate(settings: Settings, batch_size: int) -> int:
    from consent.crypto.binding import KeyRingMismatch, check_binding, existing_keys
    from consent.crypto.keys import load_keyring, rotate_kek

    if settings.kek is not None:
        print(  # noqa: T201
            "consent keys rotate: CONSENT_KEK is set; to rotate, set the new key in CONSENT_KEK "
            "and keep the old one in the keys directory, then run this command again "
            "with --rewrap-only",
            file=sys.stderr,
        )
        return 2
    keys_dir = settings.resolved_keys_dir
    # Before the new key becomes current (or any key is generated): with the database down,
    # or bound to another key directory, nothing changes.
    ring = existing_keys(settings)
    try:
        await check_binding(settings, ring)
    except KeyRingMismatch as exc:
        print(f"consent keys rotate: {exc}", file=sys.stderr)  # noqa: T201
        return 1
    if ring is None:
        load_keyring(keys_dir, create=True)  # the database belongs to no key ring yet
    new_id = rotate_kek(keys_dir)
    print(f"new key-encryption key {new_id} is current")  # noqa: T201
    return await _rewrap(settings, batch_size)


async def _rewrap(settings: Settings, batch_size: int) -> int:
    from consent.crypto.binding import KeyRingMismatch, open_bound
    from consent.crypto.datakeys import RewrapIncomplete, rewrap_all
    from consent.crypto.keys import KeyError_, load_keyring

    ring = load_keyring(settings.resolved_keys_dir, kek=settings.kek, create=False)
    try:
        db = await open_bound(settings, ring)  # records the new KEK
    except KeyRingMismatch as exc:
        print(f"consent keys rotate: {exc}", file=sys.stderr)  # noqa: T201
        return 1
    try:
        count = await rewrap_all(db, ring, batch_size=batch_size, progress=_progress("re-wrapped"))
    except KeyError_ as exc:  # a data key that does not unwrap: its batch rolled back
        print(  # noqa: T201
            f"consent keys rotate: {exc}; nothing after this key was re-wrapped",
            file=sys.stderr,
        )
        return 1
    except RewrapIncomplete as exc:
        print(  # noqa: T201
            f"consent keys rotate: {exc}; run `consent keys rotate --rewrap-only` again",
            file=sys.stderr,
        )
        return 1
    finally:
        await db.close()
    print(f"{count} data keys re-wrapped under {ring.current_kek_id}")  # noqa: T201
    return 0


def cmd_keys_rotate(args: argparse.Namespace) -> int:
    from consent.crypto.keys import KeyError_

    settings = _settings()
    try:
        if args.rewrap_only:
            return _run(_rewrap(settings, args.batch_size))
        return _run(_keys_rotate(settings, args.batch_size))
    except KeyError_ as exc:  # the key ring cannot be loaded: nothing was done
        print(f"consent keys rotate: {exc}", file=sys.stderr)  # noqa: T201
        return 1


async def _keys_retire(settings: Settings, kek_ids: list[str] | None) -> int:
    from consent.crypto.binding import KeyRingMismatch, open_bound
    from consent.crypto.datakeys import KekInUse, retire_keks
    from consent.crypto.keys import kek_ids_on_disk, load_keyring, retired_kek_ids

    keys_dir = settings.resolved_keys_dir
    ring = load_keyring(keys_dir, create=False)
    try:
        # Never judge another database's keys "unused": this must be its key directory.
        db = await open_bound(settings, ring)
        try:
            # A KEK named that is neither here nor retired from here: a typo, never "already
            # retired". (One retired before retirements were recorded cannot be told apart.)
            on_disk, _ = kek_ids_on_disk(keys_dir)
            known = {*on_disk, *retired_kek_ids(keys_dir)}
            for kek_id in kek_ids or ():
                if kek_id not in known:
                    print(  # noqa: T201
                        f"consent keys retire: no key-encryption key {kek_id} in {keys_dir} "
                        "(never there, or retired before retirements were recorded), nothing "
                        "was retired",
                        file=sys.stderr,
                    )
                    return 1
            done = await retire_keks(db, keys_dir, kek_ids)
        finally:
            await db.close()
    except (KeyRingMismatch, KekInUse) as exc:
        print(f"consent keys retire: {exc}, nothing was retired", file=sys.stderr)  # noqa: T201
        return 1
    for kek_id in done.retired:
        print(f"retired {kek_id}")  # noqa: T201
    for kek_id in done.absent:
        print(f"{kek_id} was already retired")  # noqa: T201
    for kek_id, wrapped in done.kept.items():
        keys = f"{wrapped} data key is" if wrapped == 1 else f"{wrapped} data keys are"
        print(  # noqa: T201
            f"kept {kek_id}: {keys} wrapped under it (`consent keys rotate --rewrap-only`)"
        )
    if not (done.retired or done.absent or done.kept):
        print(f"no key-encryption key to retire ({ring.current_kek_id} is current)")  # noqa: T201
    if done.retired:
        print(  # noqa: T201
            "copies of the keys directory (backups) still hold retired keys: destroy them too",
            file=sys.stderr,
        )
    return 0


def cmd_keys_retire(args: argparse.Namespace) -> int:
    from consent.crypto.keys import KeyError_

    settings = _settings()
    if settings.kek is not None:
        print(  # noqa: T201
            "consent keys retire: CONSENT_KEK is set, so your key-encryption keys are kept "
            "outside the keys directory: once `consent keys rotate --rewrap-only` has re-wrapped "
            "every data key (exit 0), destroy the old key where you keep it, and any copy of it "
            "in the keys directory",
            file=sys.stderr,
        )
        return 2
    try:
        return _run(_keys_retire(settings, args.kek_ids or None))
    except KeyError_ as exc:  # the key ring cannot be loaded: nothing was done
        print(f"consent keys retire: {exc}", file=sys.stderr)  # noqa: T201
        return 1


def cmd_policy_test(args: argparse.Namespace) -> int:
    from consent.decisions import policy_tests

    settings = _settings()
    root = args.root or settings.policy_dir
    argv = [*(["--root", str(root)] if root else []), *(["--verbose"] if args.verbose else [])]
    return policy_tests.main(argv, database_url=settings.database_url)


async def _policy_reload(settings: Settings, root: Path | None, wait: float) -> int:
    from consent.db.database import DatabaseUnavailable
    from consent.decisions.engine import PolicyLoadError
    from consent.decisions.policy import (
        NoRunningService,
        describe_ack,
        policy_dir_problem,
        policy_root,
        reload_everywhere,
    )

    root = root or policy_root(settings)
    problem = policy_dir_problem(root)
    if problem is not None:
        print(f"consent policy reload: {problem}", file=sys.stderr)  # noqa: T201
        return 2

    def warn(line: str) -> None:
        print(f"consent policy reload: warning: {line}", file=sys.stderr)  # noqa: T201

    try:
        bundle, acks = await reload_everywhere(settings, root, wait=wait, warn=warn)
    except PolicyLoadError as exc:
        print(f"consent policy reload: refused, nothing changed: {exc}", file=sys.stderr)  # noqa: T201
        return 1
    except NoRunningService as exc:  # the bundle passed; no embedded server was started
        print(f"policy {exc.revision} passed its checks")  # noqa: T201
        print(  # noqa: T201
            f"consent policy reload: no running service found: CONSENT_DATABASE_URL is not set "
            f"and no embedded PostgreSQL runs in {exc.pgdata} (set CONSENT_DATABASE_URL, or "
            "CONSENT_DATA_DIR, as the service has it; a service loads the policy when it starts)",
            file=sys.stderr,
        )
        return 3
    except DatabaseUnavailable as exc:  # the bundle passed; the request cannot be sent
        print(  # noqa: T201
            "consent policy reload: the policy passed its checks, but the database cannot be "
            f"reached ({exc}), so no running process was asked to reload it",
            file=sys.stderr,
        )
        return 1
    print(f"policy {bundle.revision} passed its checks; reload requested")  # noqa: T201
    for ack in acks:
        print(f"  {describe_ack(ack, bundle.revision, root)}")  # noqa: T201
    if not acks:
        print("no running service answered (it loads the policy when it starts)", file=sys.stderr)  # noqa: T201
        return 3
    return 0 if all(a.ok and a.revision == bundle.revision for a in acks) else 1


def cmd_policy_reload(args: argparse.Namespace) -> int:
    return _run(_policy_reload(_settings(), args.root, args.wait))


# -- parser -----------------------------------------------------------------------------------


def positive_int(text: str) -> int:
    """An argument that must be a whole number of at least 1 (else argparse exits 2)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def seconds(text: str) -> float:
    """An argument that must be a finite number of seconds, 0 or more (else argparse exits 2):
    `-5` or `nan` would run a loop without pause, `inf` never return."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError("must be a finite number of seconds, 0 or more")
    return value


_MAX_PORT = 65535


def tenant_id_arg(text: str) -> UUID:
    """An argument that must be a tenant id, a UUID (else argparse exits 2)."""
    try:
        return UUID(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a tenant id (a UUID): {text!r}") from None


def _port(text: str) -> int:
    value = positive_int(text)
    if value > _MAX_PORT:
        raise argparse.ArgumentTypeError(f"a port is at most {_MAX_PORT}")
    return value


def _kek_id(text: str) -> str:
    from consent.crypto.keys import is_kek_id

    if not is_kek_id(text):
        raise argparse.ArgumentTypeError(f"not a key-encryption key id: {text!r}")
    return text


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="consent",
        description="Consent and preference service. Configuration: CONSENT_* variables "
        "(see README); with none, an embedded PostgreSQL and keys under ./.consent/.",
        epilog="Exit status: 0 done; 1 failed (e.g. the database cannot be reached); 2 bad "
        "arguments or configuration. Some commands say more in their own --help.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = sub.add_parser("serve", help="run the HTTP service", description="Run the service.")
    serve.add_argument("--host", help="listen address (CONSENT_HOST, default 127.0.0.1)")
    serve.add_argument("--port", type=_port, help="listen port (CONSENT_PORT, default 8000)")
    serve.add_argument("--workers", type=positive_int, help="worker processes (CONSENT_WORKERS)")
    serve.set_defaults(func=cmd_serve)

    migrate = sub.add_parser(
        "migrate", help="apply pending database migrations", description="Apply migrations."
    )
    migrate.set_defaults(func=cmd_migrate)

    tenant = sub.add_parser("tenant", help="manage tenants", description="Manage tenants.")
    tenant_sub = tenant.add_subparsers(dest="tenant_command", required=True, metavar="ACTION")
    create = tenant_sub.add_parser(
        "create",
        help="create a tenant and print its first admin API key",
        description="Create a tenant and print its first admin API key (shown once).",
    )
    create.add_argument("name", help="the tenant's display name")
    create.set_defaults(func=cmd_tenant_create)
    listing = tenant_sub.add_parser(
        "list",
        help="list tenants: id, name, created, unrevoked keys",
        description="List every tenant, oldest first, one per line: id, name, when it was "
        "created and how many unrevoked API keys it has (tab-separated; never a secret).",
    )
    listing.set_defaults(func=cmd_tenant_list)
    admin_key = tenant_sub.add_parser(
        "admin-key",
        help="issue a new admin API key for a tenant (e.g. when its admins lost theirs)",
        description="Issue a new admin API key for an existing tenant and print it (shown "
        "once, on the last line). Revoke lost keys with DELETE /v1/api-keys/{id} afterwards. "
        "Exit status: 0 issued, 1 no such tenant or the database failed, 2 bad arguments.",
    )
    admin_key.add_argument(
        "tenant_id", type=tenant_id_arg, help="the tenant's id (see consent tenant list)"
    )
    admin_key.add_argument(
        "--name", default="admin (issued by the operator)", help="the key's name in key lists"
    )
    admin_key.set_defaults(func=cmd_tenant_admin_key)

    keys = sub.add_parser("keys", help="manage keys", description="Manage encryption keys.")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    rotate = keys_sub.add_parser(
        "rotate",
        help="new key-encryption key; re-wrap all data keys (no downtime)",
        description="Generate a new key-encryption key, make it current and re-wrap every "
        "subject data key under it while the service keeps running. Old KEKs stay in the "
        "keys directory so nothing becomes unreadable.",
    )
    rotate.add_argument(
        "--batch-size",
        type=positive_int,
        default=1000,
        metavar="N",
        help="keys per transaction (default 1000)",
    )
    rotate.add_argument(
        "--rewrap-only",
        action="store_true",
        help="do not generate a KEK; re-wrap under the current one (e.g. set by CONSENT_KEK)",
    )
    rotate.set_defaults(func=cmd_keys_rotate)
    retire = keys_sub.add_parser(
        "retire",
        help="destroy old key-encryption keys that no data key is wrapped under",
        description="Destroy the files of old key-encryption keys once no data key of any "
        "tenant is wrapped under them (after `consent keys rotate`), so that a database backup "
        "taken before an erasure can no longer be opened with the keys directory. Refuses the "
        "current KEK and one that still wraps data keys. The overwrite is best effort "
        "(filesystems and SSDs may keep old blocks); copies of the keys directory are yours "
        "to destroy. Exit 0: done (or retired before); 1: refused, nothing retired.",
    )
    retire.add_argument(
        "kek_ids",
        nargs="*",
        type=_kek_id,
        metavar="KEK_ID",
        help="the KEKs to retire (default: every one but the current that wraps no data key)",
    )
    retire.set_defaults(func=cmd_keys_retire)

    from consent.audit import cli as audit_cli
    from consent.decisions.policy_tests import EXIT_STATUS as POLICY_TEST_EXIT_STATUS

    policy = sub.add_parser(
        "policy",
        help="test and reload the Rego policies",
        description="Decision policies: `test` them while you write them, `reload` them into "
        "the running service. Each ACTION has its own --help.",
    )
    policy_sub = policy.add_subparsers(dest="policy_command", required=True, metavar="ACTION")
    ptest = policy_sub.add_parser(
        "test",
        help="run the Rego tests and the table-driven cases",
        description="Run every test_* rule of the *_test.rego files and every case of "
        "cases/*.json through the real OPA engine, and the checks a reload makes "
        "(CONSENT_POLICY_DIR or the bundled policies).",
        epilog=POLICY_TEST_EXIT_STATUS,
    )
    ptest.add_argument(
        "--root", type=Path, help="policy directory (default: CONSENT_POLICY_DIR, else bundled)"
    )
    ptest.add_argument("-v", "--verbose", action="store_true", help="list passing tests too")
    ptest.set_defaults(func=cmd_policy_test)
    preload = policy_sub.add_parser(
        "reload",
        help="check the policies and make the running service serve them (no restart)",
        description="Check the policy bundle (compiles, its tests pass, fails closed, cache "
        "normalisation holds), then ask every running service process to reload it. A process "
        "that finds the bundle broken refuses it and keeps serving its current one. An action "
        "that needs a purpose no tenant defines is a warning, not a refusal.",
        epilog="Exit status: 0 every answering process serves the new revision; 1 refused (or "
        "a process serves another revision, or the database cannot be reached); 2 bad "
        "arguments or configuration (no policy directory there); 3 no process answered (or, "
        "without CONSENT_DATABASE_URL, no `consent serve` runs on the embedded database of "
        "CONSENT_DATA_DIR: none is started for a reload).",
    )
    preload.add_argument("--root", type=Path, help="policy directory (default: CONSENT_POLICY_DIR)")
    preload.add_argument(
        "--wait",
        type=seconds,
        default=5.0,
        metavar="S",
        help="seconds to wait for the processes' answers (default 5)",
    )
    preload.set_defaults(func=cmd_policy_reload)

    from consent.consents import importer
    from consent.subjects import renormalise

    importer.add_parser(sub)
    renormalise.add_parser(sub)
    audit_cli.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    for warning in unknown_variables():  # before the settings' problems, which may stem from it
        print(f"consent: warning: {warning}", file=sys.stderr)  # noqa: T201
    settings_for_logs = _settings()
    # A service's processes log to stdout; a command's results go there, its log to stderr
    # (`consent tenant create | tail -n 1` is the key, whatever was logged meanwhile).
    service = args.command == "serve" or getattr(args, "loop", False)
    configure_logging(
        settings_for_logs.log_level,
        json=settings_for_logs.log_json,
        stream=sys.stdout if service else sys.stderr,
    )
    import asyncpg

    from consent.crypto.keys import KeyError_
    from consent.db.database import DatabaseUnavailable
    from consent.db.migrate import MigrationError

    # The whole command in its messages (`consent tenant list`, not `consent tenant`).
    action = getattr(args, f"{args.command}_command", None)
    command = f"{args.command} {action}" if action else args.command
    try:
        result: int = args.func(args)
    except DatabaseUnavailable as exc:
        # The error's name only, never the URL: it may hold a password.
        print(f"consent {command}: cannot reach the database ({exc})", file=sys.stderr)  # noqa: T201
        return 1
    except (KeyError_, MigrationError) as exc:  # keys that cannot be loaded; a migration
        # that cannot be applied (a file edited after it was applied)
        print(f"consent {command}: {exc}", file=sys.stderr)  # noqa: T201
        return 1
    except asyncpg.UndefinedTableError:
        print(  # noqa: T201
            f"consent {command}: the database has not been migrated (`consent migrate`)",
            file=sys.stderr,
        )
        return 1
    except OSError as exc:
        if exc.filename is None:  # not a file or directory of the configuration
            raise
        print(  # noqa: T201
            f"consent {command}: cannot use {exc.filename}: {exc.strerror}",
            file=sys.stderr,
        )
        return 1
    return result
