"""`consent identifiers renormalise`: stored e-mail and phone identifiers re-spelt under the
current normalisation rules (consent/subjects/identifiers.py).

An identifier is found by the keyed HMAC of its normalised value and stored encrypted under its
subject's data key. When the rules change, a value stored under the old ones is no longer found
by the spelling the new ones give it. For each stored identifier of type email or phone (other
types are left alone) the command decrypts the value and normalises it again:

- the same value: nothing to do;
- another value, which no identifier has: the HMAC and the encrypted value are replaced (same
  subject, same data key, same associated data as the resolver writes them);
- another value that the same person (subject or linked group) already holds: the old spelling
  is removed (counted as re-spelt);
- another value that another subject holds: the two are one person, linked as
  `POST /v1/subjects/link` links them (`SubjectResolver.link`: the oldest survives, the state is
  rebuilt from both histories, a `subject.linked` audit leaf); then the old spelling is removed;
- a value the current rules refuse (an invisible character): left as it is, counted, and
  reported by tenant and subject id (never the value);
- a value that does not decrypt (a damaged row): the same, as unreadable; the run goes on.

Two stored spellings that become the same one in a run (two subjects' old spellings of one
address) are one person: the first is re-spelt, the second finds it held and links the two.
A dry run writes nothing but keeps what the run would have written (the spellings, the links:
in memory, per tenant), so it reports the same counts a real run over the same data does. Each
identifier is checked and counted once, also when a link moves it onto a subject the run has
not reached yet.

A spelling that goes takes with it the keyed HMACs that decisions about it logged while the
ledger did not know it (decision_log.lookup_hmac): erasure finds those by the subject's
identifier rows, so after a re-spelling it would no longer find them. Also those of decisions
still being logged (read before, committed after): the run fences them off as an erasure does,
under the tenant's erasure lock and with its erasure epoch advanced (fence_decision_lookups,
migrations/0029_one_erasure_fence.sql), so such a decision is logged without its HMAC.

What it reads back is the value as normalised when it was stored: where the old rules lost
information (IDNA 2003 spelt `straße.de` as `strasse.de`), the stored value is also someone
else's real identifier, and it is left as it is. A trunk `0` kept after the country code
(`+49030…`) is re-spelt where the country's rules make it a trunk prefix (Germany, the UK,
France, …: consent/subjects/identifiers.py), never where it is part of the number (Italy).

Short transactions: one per batch of subjects, holding the tenant's link lock (links and
erasures wait for it). A run that stops part-way leaves every batch either done or untouched,
and a second run finishes it; a run over re-spelt data changes nothing. Erased subjects have no
identifiers left (erasure deletes them); one whose data key is gone is skipped and counted.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final
from uuid import UUID

import asyncpg

from consent.audit.outbox import AuditWriter
from consent.crypto.aead import DecryptionError
from consent.crypto.datakeys import DataKeys, EncryptedForErasedSubject
from consent.crypto.keys import KeyError_, KeyRing
from consent.db.database import Conn, Database
from consent.db.grouped import DB_UNAVAILABLE
from consent.db.sql import SqlFile
from consent.subjects.identifiers import InvalidIdentifier, normalize
from consent.subjects.resolver import SubjectResolver
from consent.subjects.schemas import SubjectRef

__all__ = [
    "RESPELT_TYPES",
    "Outcome",
    "Refusal",
    "UnknownTenant",
    "add_parser",
    "renormalise",
    "respelling",
]

Q = SqlFile.beside(__file__, "renormalise.sql")
RESPELT_TYPES: Final = ("email", "phone")
DEFAULT_BATCH_SIZE: Final = 500
_NO_SUBJECT: Final = UUID(int=0)


class UnknownTenant(Exception):
    """`--tenant` names no tenant."""


@dataclass(frozen=True)
class Refusal:
    """A stored identifier the current rules refuse: where it is, never what it is."""

    tenant_id: UUID
    subject_id: UUID
    id_type: str


@dataclass
class Outcome:
    """What a run did (a dry run: would do)."""

    dry_run: bool
    checked: int = 0
    respelt: int = 0
    linked: int = 0
    skipped: int = 0  # the subject's data key is gone (erased): nothing readable
    refused: list[Refusal] = field(default_factory=list)
    unreadable: list[Refusal] = field(default_factory=list)  # a stored value that is damaged

    def summary(self) -> str:
        checked = f"checked {self.checked} identifier{'' if self.checked == 1 else 's'}"
        skipped = f", {self.skipped} skipped (erased)" if self.skipped else ""
        if self.unreadable:
            skipped += f", {len(self.unreadable)} unreadable"
        if self.dry_run:
            return (
                f"dry run, nothing changed: {checked}: would re-spell {self.respelt}, "
                f"would link {self.linked}, {len(self.refused)} refused{skipped}"
            )
        return (
            f"{checked}: {self.respelt} re-spelt, {self.linked} linked, "
            f"{len(self.refused)} refused{skipped}"
        )


def respelling(id_type: str, stored: str) -> str | None:
    """The current spelling of a stored (normalised) value, or None when it is current.
    InvalidIdentifier: the current rules refuse it. (The rules normalise their own output to
    itself, so a value they wrote is current.)"""
    current = normalize(id_type, stored)
    return None if current == stored else current


def _context(id_type: str) -> bytes:
    """The associated data the resolver encrypts an identifier of `id_type` under."""
    return b"identifier/" + id_type.encode()


Key = tuple[str, bytes]  # an identifier: its type and lookup HMAC


@dataclass
class _TenantRun:
    """What one run remembers about one tenant from batch to batch.

    `passed`: identifiers already checked that a link moved onto a subject the run has not
    reached yet (their own batch must not check, count or report them again).

    A dry run writes nothing, so it keeps what a real run would have written: `respelt`, the
    current spellings it would have written (with their subjects), `gone`, the spellings it
    would have removed, and `joined`, the links it would have made (a union-find over the
    subjects that stand for their groups). With them it finds what a real run finds: the
    current spelling another identifier of the same run would have taken, and a person that a
    link earlier in the run would have made one."""

    passed: set[Key] = field(default_factory=set)
    respelt: dict[Key, UUID] = field(default_factory=dict)
    gone: set[Key] = field(default_factory=set)
    joined: dict[UUID, UUID] = field(default_factory=dict)

    def group(self, survivor: UUID) -> UUID:
        """The group a subject that stands for its group would be in after the dry run's
        links."""
        root = survivor
        while (up := self.joined.get(root, root)) != root:
            root = up
        while survivor != root:  # path compression
            up = self.joined[survivor]
            self.joined[survivor] = root
            survivor = up
        return root


class _Batch:
    """One batch of one tenant, inside its transaction."""

    def __init__(
        self,
        conn: Conn,
        tenant_id: UUID,
        resolver: SubjectResolver,
        audit: AuditWriter,
        outcome: Outcome,
        state: _TenantRun,
        last: UUID,
    ) -> None:
        self.conn = conn
        self.tenant_id = tenant_id
        self.last = last  # the batch's last subject: the cursor once it commits
        self.resolver = resolver
        self.audit = audit
        self.outcome = outcome
        self.state = state
        self.deks: dict[UUID, bytes] = {}
        self.removed: list[Key] = []  # spellings re-spelt or deleted
        self.seen: set[Key] = set()  # checked in this batch, queued, or written by it

    async def _dek(self, subject_id: UUID) -> bytes:
        if subject_id not in self.deks:
            try:
                self.deks[subject_id] = await self.resolver.datakeys.get(
                    self.conn, self.tenant_id, subject_id
                )
            except KeyError_ as exc:  # which one, for the operator (a subject id only)
                raise KeyError_(f"{exc} (tenant {self.tenant_id}, subject {subject_id})") from exc
        return self.deks[subject_id]

    async def _survivor(self, subject_id: UUID) -> UUID:
        return UUID(str(await self.conn.fetchval(Q.survivor_of, subject_id)))

    async def _keys(self, subjects: list[UUID]) -> list[Key]:
        return [
            (str(r["id_type"]), bytes(r["lookup_hmac"]))
            for r in await self.conn.fetch(
                Q.identifiers_of_batch, self.tenant_id, list(RESPELT_TYPES), subjects
            )
        ]

    async def run(self, subjects: list[UUID]) -> None:
        """Check the identifiers of `subjects`, and those a link brings onto a subject that
        this run has passed (else they would wait for the next run)."""
        queue = []
        for key in await self._keys(subjects):
            self.seen.add(key)
            if key in self.state.passed:  # checked before a link moved it here
                self.state.passed.discard(key)
            else:
                queue.append(key)
        while queue:
            id_type, digest = queue.pop(0)
            survivor = await self.one(id_type, digest)
            if survivor is None or survivor > self.last:  # ahead: its own batch checks them
                continue
            for key in await self._keys([survivor]):
                if key not in self.seen:
                    self.seen.add(key)
                    queue.append(key)

    async def _current(self, id_type: str, digest: bytes) -> tuple[UUID, bytes, str] | None:
        """The identifier's subject, that subject's data key and the identifier's current
        spelling, when it has another one (counted as checked, refused or skipped)."""
        tid = self.tenant_id
        row = await self.conn.fetchrow(
            Q.identifier_unlocked if self.outcome.dry_run else Q.identifier_locked,
            tid,
            id_type,
            digest,
        )
        if row is None or (id_type, digest) in self.state.gone:  # removed meanwhile
            return None
        self.outcome.checked += 1
        subject = UUID(str(row["subject_id"]))
        try:
            dek = await self._dek(subject)
        except EncryptedForErasedSubject:
            self.outcome.skipped += 1
            return None
        try:
            stored = DataKeys.decrypt(dek, tid, subject, row["value_enc"], _context(id_type))
            text = stored.decode()
        except (DecryptionError, UnicodeDecodeError):  # a damaged row: the others go on
            self.outcome.unreadable.append(Refusal(tid, subject, id_type))
            return None
        try:
            current = respelling(id_type, text)
        except InvalidIdentifier:
            self.outcome.refused.append(Refusal(tid, subject, id_type))
            return None
        return None if current is None else (subject, dek, current)

    async def _owner(self, id_type: str, digest: bytes) -> UUID | None:
        """The subject holding a spelling (a dry run: as a real run would have left it)."""
        key = (id_type, digest)
        if key in self.state.respelt:
            return self.state.respelt[key]
        if key in self.state.gone:
            return None
        owner = await self.conn.fetchval(Q.identifier_unlocked, self.tenant_id, id_type, digest)
        return None if owner is None else UUID(str(owner))

    async def one(self, id_type: str, digest: bytes) -> UUID | None:
        """Check one identifier; the survivor of a link it made, if any."""
        found = await self._current(id_type, digest)
        if found is None:
            return None
        subject, dek, current = found
        tid = self.tenant_id
        new_digest = self.resolver.keyring.lookup_digest(str(tid), id_type, current)
        new = (id_type, new_digest)
        owner = await self._owner(id_type, new_digest)
        if owner is None and self.outcome.dry_run:
            self.state.respelt[new] = subject
            self.state.gone.add((id_type, digest))
            self.outcome.respelt += 1
            return None
        if owner is None:
            enc = DataKeys.encrypt(dek, tid, subject, current.encode(), _context(id_type))
            try:
                async with self.conn.transaction():
                    await self.conn.execute(
                        Q.respell_identifier, tid, id_type, digest, new_digest, enc
                    )
            except asyncpg.UniqueViolationError:
                # A write gave the current spelling a subject of its own meanwhile: link it.
                owner = await self._owner(id_type, new_digest)
                if owner is None:  # and took it away again
                    raise
            else:
                self.outcome.respelt += 1
                self.removed.append((id_type, digest))
                self.seen.add(new)  # written current: a link re-queueing it checks it no more
                if subject > self.last:  # a link in this batch moved it ahead
                    self.state.passed.add(new)
                return None
        return await self._join(id_type, digest, subject, owner)

    async def _join(self, id_type: str, digest: bytes, subject: UUID, owner: UUID) -> UUID | None:
        """The identifier's current spelling is `owner`'s: link the two subjects unless they
        are one person already, then remove the old spelling. The survivor of a link made."""
        conn, tid, state = self.conn, self.tenant_id, self.state
        ours, theirs = await self._survivor(subject), await self._survivor(owner)
        if self.outcome.dry_run:
            ours, theirs = state.group(ours), state.group(theirs)
            if ours == theirs:
                self.outcome.respelt += 1
            else:
                self.outcome.linked += 1
                state.joined[theirs] = ours
            state.gone.add((id_type, digest))
            return None
        linked = None
        if ours == theirs:
            self.outcome.respelt += 1
        else:
            self.outcome.linked += 1
            # Identifiers checked already (on a subject this run has reached) that the link
            # may move onto a subject ahead, whose batch must not check them again.
            checked = await self._keys([s for s in (ours, theirs) if s <= self.last])
            refs = [SubjectRef(subject_id=subject), SubjectRef(subject_id=owner)]
            linked = (await self.resolver.link(conn, tid, refs, self.audit)).subject_id
            self.deks.clear()  # the identifiers moved to the survivor's key
            if linked > self.last:
                state.passed.update(checked)
        await conn.execute(Q.delete_identifier, tid, id_type, digest)
        self.removed.append((id_type, digest))
        return linked


async def _tenants(db: Database, tenant_id: UUID | None) -> list[UUID]:
    async with db.system() as conn:
        found = [UUID(str(r["id"])) for r in await conn.fetch(Q.tenants, tenant_id)]
    if tenant_id is not None and not found:
        raise UnknownTenant(f"no tenant {tenant_id}")
    return found


async def renormalise(
    db: Database,
    keyring: KeyRing,
    audit: AuditWriter,
    *,
    tenant_id: UUID | None = None,
    dry_run: bool = False,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: Callable[[int, int], None] | None = None,
) -> Outcome:
    """Re-spell the stored email and phone identifiers of one tenant (or every tenant), one
    transaction per batch of `batch_size` subjects (see the module docstring)."""
    tenants = await _tenants(db, tenant_id)
    async with db.system() as conn:
        total = int(await conn.fetchval(Q.count_identifiers, tenant_id, list(RESPELT_TYPES)))
    resolver = SubjectResolver(keyring)
    outcome = Outcome(dry_run=dry_run)
    types = list(RESPELT_TYPES)
    for tid in tenants:
        cursor = _NO_SUBJECT
        state = _TenantRun()
        while True:
            async with db.tenant(tid) as conn:
                if not dry_run:
                    await conn.execute(Q.lock_tenant_links, str(tid))
                subjects = [
                    UUID(str(r["subject_id"]))
                    for r in await conn.fetch(Q.next_subjects, tid, types, cursor, batch_size)
                ]
                if not subjects:
                    break
                batch = _Batch(conn, tid, resolver, audit, outcome, state, subjects[-1])
                await batch.run(subjects)
                if batch.removed:
                    # Committed before the batch: if the batch then fails, those HMACs are
                    # cleared a little early (as erasure would), never left behind. Fenced as
                    # an erasure is: a decision read before and logged after keeps no HMAC.
                    async with db.system() as owner:
                        await owner.execute(Q.fence_decision_lookups, tid)
                        await owner.execute(
                            Q.forget_decision_lookups_of,
                            tid,
                            [t for t, _ in batch.removed],
                            [d for _, d in batch.removed],
                        )
            cursor = subjects[-1]
            if progress is not None:
                progress(outcome.checked, max(total, outcome.checked))
    if progress is not None and (outcome.checked < total or outcome.checked == 0):
        progress(outcome.checked, outcome.checked)  # the final line (rows erased meanwhile)
    return outcome


# -- command ----------------------------------------------------------------------------------

_COMMAND: Final = "consent identifiers renormalise"


def _kept(args: argparse.Namespace) -> str:
    """What a run that stopped leaves behind."""
    if args.dry_run:
        return "dry run, nothing changed"
    return "the batches before it are done, the one under way was rolled back"


def _say(message: str) -> int:
    print(f"{_COMMAND}: {message}", file=sys.stderr)  # noqa: T201
    return 1


async def _main(args: argparse.Namespace) -> int:
    from consent.cli import _progress, _settings
    from consent.crypto.binding import KeyRingMismatch, open_bound
    from consent.crypto.keys import load_keyring

    settings = _settings()
    ring = load_keyring(settings.resolved_keys_dir, kek=settings.kek, create=False)
    try:
        db = await open_bound(settings, ring)
    except KeyRingMismatch as exc:
        return _say(str(exc))
    try:
        outcome = await renormalise(
            db,
            ring,
            AuditWriter(settings.audit_origin),
            tenant_id=args.tenant,
            dry_run=args.dry_run,
            batch_size=args.batch_size,
            progress=_progress("checked"),
        )
    except UnknownTenant as exc:
        print(f"{_COMMAND}: --tenant: {exc}", file=sys.stderr)  # noqa: T201
        return 2
    except KeyError_ as exc:  # a data key that does not unwrap: its batch rolled back
        return _say(
            f"{exc}; {_kept(args)}: run the command again once that key unwraps (the right "
            "keys directory, or the key restored)"
        )
    except (asyncpg.PostgresError, *DB_UNAVAILABLE) as exc:  # connection lost
        return _say(
            f"the database failed ({type(exc).__name__}); {_kept(args)}: run the command again"
        )
    finally:
        await db.close()
    for r in outcome.refused:
        print(  # noqa: T201
            f"refused: tenant {r.tenant_id} subject {r.subject_id} ({r.id_type}): not valid "
            "under the current rules, left as it is"
        )
    for r in outcome.unreadable:
        print(  # noqa: T201
            f"unreadable: tenant {r.tenant_id} subject {r.subject_id} ({r.id_type}): the stored "
            "value does not decrypt under the subject's data key (damaged), left as it is"
        )
    print(outcome.summary())  # noqa: T201
    return 0


def cmd_renormalise(args: argparse.Namespace) -> int:
    try:
        return asyncio.run(_main(args))
    except KeyboardInterrupt:  # Ctrl-C: the batch under way rolled back as the run was cancelled
        _say(f"interrupted; {_kept(args)}: run the command again to finish")
        return 130


def add_parser(sub: Any) -> None:
    # the CLI imports this module while building itself
    from consent.cli import positive_int, tenant_id_arg

    identifiers = sub.add_parser(
        "identifiers",
        help="maintain stored subject identifiers",
        description="Maintain stored subject identifiers.",
    )
    actions = identifiers.add_subparsers(
        dest="identifiers_command", required=True, metavar="ACTION"
    )
    parser: argparse.ArgumentParser = actions.add_parser(
        "renormalise",
        help="re-spell stored e-mail and phone identifiers under the current rules",
        description="Normalise every stored e-mail and phone identifier again under the "
        "current rules, so that a lookup by its current spelling finds the subject: a new "
        "spelling replaces the stored one; one that another subject already has links the two "
        "(as POST /v1/subjects/link does, with its audit leaf); a value the current rules "
        "refuse is left as it is and reported by subject id. Runs while the service serves, "
        "one short transaction per batch; running it again changes nothing. Exit status: 0 "
        "done; 1 failed (what was done is kept: run it again); 2 bad arguments or tenant; "
        "130 interrupted (the batch under way rolled back: run it again).",
    )
    parser.add_argument(
        "--tenant",
        type=tenant_id_arg,
        metavar="TENANT_ID",
        help="only this tenant (default: every tenant)",
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="change nothing; say what would be done"
    )
    parser.add_argument(
        "--batch-size",
        type=positive_int,
        default=DEFAULT_BATCH_SIZE,
        metavar="N",
        help=f"subjects per transaction (default {DEFAULT_BATCH_SIZE})",
    )
    parser.set_defaults(func=cmd_renormalise)
