"""Decisions: the policy input built from the ledger, evaluated (cached), logged, answered.

One pipeline serves the single call, the batch and the audience filter, so that each gives exactly
the single call's answer for every subject:

1. subject references -> keyed HMAC lookups (no identifier reaches the database in clear);
2. one statement per request (or audience chunk) loads the tenant's catalogue entries of the
   purposes the action needs and each subject's current choices (`queries.sql`); single
   decisions asked at the same moment share one (`reader.GroupReader`);
3. `build_input` makes the exact policy input; `normalise` makes its cache key; distinct
   normalised inputs are evaluated once (and the engine's LRU remembers them across requests);
4. the decisions, with their exact inputs, are committed to the decision log (group commit);
5. only then is the answer returned. Any failure on the way is a 503, never an allow.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final
from uuid import UUID

import asyncpg
import msgspec
import structlog

from consent.crypto.keys import KeyRing
from consent.db.database import Conn, Database
from consent.db.grouped import DB_UNAVAILABLE
from consent.db.sql import SqlFile
from consent.decisions.engine import (
    CachedPolicyEngine,
    ConsentState,
    DecisionInput,
    DecisionResult,
    PolicyBundle,
    PolicyUnavailable,
    PurposeDefinition,
    SubjectState,
    canonical_input,
)
from consent.decisions.logwriter import DecisionRecord, GroupCommitWriter, LogBatch
from consent.decisions.policy import PolicyRuntime
from consent.decisions.reader import GroupReader, ReadRequest
from consent.decisions.schemas import (
    BatchResponse,
    DecisionContext,
    DecisionOut,
    DecisionRequest,
    Replay,
    StoredDecision,
)
from consent.decisions.shape import gpc_days, needed_purposes, normalise
from consent.errors import FieldError, NotFound, ServiceUnavailable, ValidationFailed
from consent.ids import uuid7
from consent.locales import Localized, localized
from consent.subjects.identifiers import BUILTIN_TYPES, InvalidIdentifier, normalize
from consent.subjects.schemas import SubjectRef

__all__ = [
    "PLAIN_EMAIL",
    "AudienceRefs",
    "Caller",
    "Catalogue",
    "DecisionService",
    "Evaluator",
    "KeyedDigest",
    "LedgerUnavailable",
    "PolicyChanged",
    "Ref",
    "SubjectRow",
    "build_input",
    "consent_values",
    "normalize_identifier",
    "ns_to_datetime",
    "state_key",
    "uuid7",
]

Q = SqlFile.beside(__file__)
_log = structlog.get_logger(__name__)
NS_PER_DAY: Final = 86_400 * 1_000_000_000
_ATTEMPTS: Final = 3
_MAX_FIELD_ERRORS: Final = 50
_ONE_OF: Final = Localized("subject-id-or-identifier")
_INVALID_REFERENCES: Final = Localized("invalid-subject-references")
_LEDGER_NO_DECISION: Final = Localized("ledger-unavailable-no-decision")
_OBJECTION_CHOICES: Final = frozenset({"denied", "withdrawn"})


class LedgerUnavailable(ServiceUnavailable):
    """The consent state could not be read: no decision (fail closed; not a denial)."""

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(detail, headers={"Retry-After": "1"})

    @classmethod
    def because(cls, exc: BaseException, detail: str) -> LedgerUnavailable:
        _log.warning(
            "decisions.ledger_unavailable", error=type(exc).__name__, message=str(exc)[:300]
        )
        return cls(detail)


PLAIN_EMAIL: Final = re.compile(
    r"[a-z0-9._%+\-]{1,64}@(?=[a-z0-9.\-]{3,253}$)"
    r"(?:[a-z0-9](?:[a-z0-9\-]{0,61}[a-z0-9])?\.)+[a-z0-9](?:[a-z0-9\-]{0,61}[a-z0-9])?"
)


def normalize_identifier(id_type: str, value: str) -> str:
    """`consent.subjects.identifiers.normalize`, with a shortcut for e-mail addresses that are
    already in normal form (lower-case ASCII, valid labels): those normalise to themselves.
    Raises InvalidIdentifier like `normalize`."""
    if id_type == "email" and PLAIN_EMAIL.fullmatch(value):
        return value
    return normalize(id_type, value)


def _unknown_type(subject_field: str, id_type: str) -> FieldError:
    """The error of an identifier (at `subject_field`) of a type the tenant never defined."""
    return FieldError(
        f"{subject_field}.identifier.type", Localized("unknown-identifier-type", type=id_type)
    )


def ns_to_datetime(ns: int) -> datetime:
    """The instant of `ns` (nanoseconds since the epoch), truncated to microseconds."""
    seconds, rest = divmod(ns, 1_000_000_000)
    return datetime.fromtimestamp(seconds, tz=UTC) + timedelta(microseconds=rest // 1000)


_SHA256_BLOCK: Final = 64
_IPAD: Final = bytes(x ^ 0x36 for x in range(256))
_OPAD: Final = bytes(x ^ 0x5C for x in range(256))


class KeyedDigest:
    """HMAC-SHA256 under one key (RFC 2104), from the SHA-256 states of the key's inner and outer
    pads, copied per message: the digests of `hmac.digest(key, message, "sha256")`, for about
    half the CPU of copying an `hmac.HMAC` (audiences hash millions of identifiers)."""

    __slots__ = ("_inner", "_outer")

    def __init__(self, key: bytes) -> None:
        if len(key) > _SHA256_BLOCK:
            key = hashlib.sha256(key).digest()
        padded = key.ljust(_SHA256_BLOCK, b"\x00")
        self._inner = hashlib.sha256(padded.translate(_IPAD))
        self._outer = hashlib.sha256(padded.translate(_OPAD))

    def digest(self, message: bytes) -> bytes:
        inner = self._inner.copy()
        inner.update(message)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()


@dataclass(frozen=True, slots=True)
class Caller:
    tenant_id: UUID
    api_key_id: str
    request_id: str | None


@dataclass(frozen=True, slots=True)
class Ref:
    """A subject reference ready for lookup: a subject id, or an identifier's type and HMAC."""

    subject_id: UUID | None
    id_type: str | None
    digest: bytes | None


@dataclass(frozen=True, slots=True)
class Catalogue:
    """The tenant's entries for the purposes needed; `material_version` is the purpose's own
    (the highest current material version of the notices asking about it). `erasure_epoch`:
    the tenant's erasures as the state read saw them (None: not read), which a decision about
    an unknown identifier logs its HMAC under (consent.decisions.logwriter.write_decisions)."""

    purposes: dict[str, PurposeDefinition]
    erasure_epoch: int | None = None

    def restrict(self, keys: Sequence[str]) -> Catalogue:
        return Catalogue(
            {k: self.purposes[k] for k in keys if k in self.purposes}, self.erasure_epoch
        )


@dataclass(frozen=True, slots=True)
class AudienceRefs:
    """The references of an audience chunk, packed for `audience_subject_states` (bulk values
    go as bytes: per-element array encoding would cost more than the lookups): member i
    (0-based) has kind `kinds[2i] + 256 * kinds[2i + 1]` (0: a subject id, given in
    `subject_ids` at its 1-based position in `subject_ords`; n: an identifier of type
    `types[n - 1]` whose keyed HMAC is `digests[32i:32i + 32]`) and context number
    `contexts[i]` (None: all 0)."""

    kinds: bytes
    digests: bytes
    types: list[str]
    subject_ords: list[int]
    subject_ids: list[UUID]
    contexts: list[int] | None


class SubjectRow(msgspec.Struct, frozen=True):
    """A subject's current choices for the needed purposes, as read from consent_state
    (parallel sequences, one entry per choice), and its audit token (None until its first
    audit leaf; decisions about it are logged with leaves naming it)."""

    subject_id: UUID | None
    purposes: Sequence[str] = ()
    choices: Sequence[str] = ()
    recorded_at_us: Sequence[int] = ()
    consent_material: Sequence[int | None] = ()
    notice_material: Sequence[int | None] = ()
    audit_token: bytes | None = None

    def only(self, purposes: Sequence[str]) -> SubjectRow:
        """This row restricted to the choices about `purposes` (as if read for them alone)."""
        if all(p in purposes for p in self.purposes):
            return self
        keep = [i for i, p in enumerate(self.purposes) if p in purposes]
        return SubjectRow(
            self.subject_id,
            [self.purposes[i] for i in keep],
            [self.choices[i] for i in keep],
            [self.recorded_at_us[i] for i in keep],
            [self.consent_material[i] for i in keep],
            [self.notice_material[i] for i in keep],
            self.audit_token,
        )


UNKNOWN: Final = SubjectRow(subject_id=None)


def consent_values(
    purpose: PurposeDefinition | None, consent_mv: int | None, notice_mv: int | None
) -> tuple[int | None, int]:
    """(the purpose's material version for this subject, the consent's material version).

    A consent is measured against the current material version of the notice it was given under
    (stale when its own is lower); one recorded without a notice (import, GPC) against the
    purpose's own version, so it is never stale, as in the ledger's state. None: no catalogue
    entry (then the consent's version is 0 and the policy denies the purpose anyway)."""
    if notice_mv is None:
        material = purpose.material_version if purpose is not None else 0
        return (purpose.material_version if purpose is not None else None), material
    return (notice_mv if purpose is not None else None), (consent_mv or 0)


def build_input(
    action: str,
    now_ns: int,
    context: DecisionContext,
    catalogue: Catalogue,
    row: SubjectRow,
) -> DecisionInput:
    """The exact policy input: catalogue entries and consents of the purposes needed, with the
    material versions of `consent_values`. A purpose on legitimate interest whose choice is
    denied or withdrawn is an objection."""
    purposes = dict(catalogue.purposes)
    consents: dict[str, ConsentState] = {}
    objections: list[str] = []
    for key, choice, recorded_us, consent_mv, notice_mv in zip(
        row.purposes,
        row.choices,
        row.recorded_at_us,
        row.consent_material,
        row.notice_material,
        strict=True,
    ):
        purpose = purposes.get(key)
        purpose_mv, material = consent_values(purpose, consent_mv, notice_mv)
        if purpose is not None and purpose_mv != purpose.material_version:
            purposes[key] = msgspec.structs.replace(purpose, material_version=purpose_mv)
        consents[key] = ConsentState(
            status=choice,  # type: ignore[arg-type]  # checked by the database
            recorded_at_ns=recorded_us * 1000,
            material_version=material,
        )
        if (
            purpose is not None
            and purpose.legal_basis == "legitimate_interest"
            and choice in _OBJECTION_CHOICES
        ):
            objections.append(key)
    return DecisionInput(
        now_ns=now_ns,
        action=action,
        subject=SubjectState(
            known=row.subject_id is not None,
            jurisdiction=context.jurisdiction,
            age=context.age,
            parental_consent=context.parental_consent,
            parental_consent_third_parties=context.parental_consent_third_parties,
            gpc=context.gpc,
            limit_sensitive=context.limit_sensitive,
            objections=tuple(sorted(objections)),
        ),
        purposes=purposes,
        consents=consents,
    )


def state_key(catalogue: Catalogue, now_ns: int, row: SubjectRow) -> tuple[object, ...]:
    """A cheap key of what `normalise(build_input(...))` keeps of a subject's state: subjects with
    the same key (and the same context) have the same normalised input, hence the same
    decision. Per choice: its purpose, its status, whether it is within the maximum age and
    whether it is current (not stale). The audience filter computes the same key in SQL
    (`audience_subject_states`, migrations/0008_audience_states.sql): keep the two in step."""
    if row.subject_id is None:
        return ()
    parts: list[tuple[object, ...]] = []
    for key, choice, recorded_us, consent_mv, notice_mv in zip(
        row.purposes,
        row.choices,
        row.recorded_at_us,
        row.consent_material,
        row.notice_material,
        strict=True,
    ):
        purpose = catalogue.purposes.get(key)
        if purpose is None:
            parts.append((key, choice))
            continue
        purpose_mv, material = consent_values(purpose, consent_mv, notice_mv)
        age = purpose.max_age_ns
        fresh = age is None or recorded_us * 1000 + age >= now_ns
        parts.append((key, choice, fresh, material >= (purpose_mv or 0)))
    parts.sort()
    return (True, *parts)


class PolicyChanged(Exception):
    """The policy was reloaded between reading its action data and evaluating: start again."""


class Evaluator:
    """Decides many inputs: normalised, deduplicated, evaluated once each, with bounded
    concurrency (so that a big batch does not queue past the engine's timeout)."""

    def __init__(self, runtime: PolicyRuntime, *, concurrency: int = 4) -> None:
        self.runtime = runtime
        self._slots = asyncio.Semaphore(concurrency)

    async def _one(self, value: DecisionInput) -> DecisionResult:
        async with self._slots:
            return await self.runtime.engine.evaluate(value)

    async def decide(
        self, bundle: PolicyBundle, inputs: Sequence[tuple[DecisionInput, tuple[str, ...]]]
    ) -> tuple[list[DecisionResult], list[bytes]]:
        """Results in input order, and each input's normalised form as canonical JSON (equal for
        inputs that share a decision). Raises PolicyUnavailable, or PolicyChanged when `bundle`
        is no longer the one served."""
        engine = self.runtime.engine
        cache = engine if isinstance(engine, CachedPolicyEngine) else None
        by_key: dict[bytes, DecisionResult] = {}
        distinct: dict[bytes, DecisionInput] = {}
        keys: list[bytes] = []
        gpc = gpc_days(bundle)
        for value, needed in inputs:
            normal = normalise(value, needed, gpc=gpc)
            key = canonical_input(normal)
            keys.append(key)
            if key in by_key or key in distinct:
                continue
            hit = cache.cached(key) if cache is not None else None
            if hit is not None:
                by_key[key] = hit  # no task for what the cache answers
            else:
                distinct[key] = normal
        if distinct:
            results = await asyncio.gather(*(self._one(v) for v in distinct.values()))
            by_key.update(zip(distinct, results, strict=True))
        if any(r.revision != bundle.revision for r in by_key.values()):
            raise PolicyChanged
        return [by_key[k] for k in keys], keys


class DecisionService:
    """`app.state.decisions`: decide, decide many, read back and replay."""

    def __init__(
        self,
        db: Database,
        keyring: KeyRing,
        runtime: PolicyRuntime,
        log: GroupCommitWriter,
        *,
        clock: Callable[[], int] = time.time_ns,
        concurrency: int = 4,
        read_groups: int = 2,
    ) -> None:
        self.db = db
        self.keyring = keyring
        self.runtime = runtime
        self.log = log
        self.clock = clock
        self.evaluator = Evaluator(runtime, concurrency=concurrency)
        self.reader = GroupReader(db, self.load, concurrent_reads=read_groups)
        self._lookup_keys: dict[UUID, KeyedDigest] = {}

    def start(self) -> None:
        """Start the group reads of single decisions (within the event loop)."""
        self.reader.start()

    async def aclose(self) -> None:
        await self.reader.aclose()

    # -- references ------------------------------------------------------------------------------

    def lookup_state(self, tenant_id: UUID) -> KeyedDigest:
        """HMAC-SHA256 under the tenant's lookup key (as `KeyRing.lookup_digest`), keyed once
        per tenant."""
        keyed = self._lookup_keys.get(tenant_id)
        if keyed is None:
            if len(self._lookup_keys) >= 4096:  # noqa: PLR2004
                self._lookup_keys.clear()
            key = self.keyring.lookup_key(str(tenant_id))
            keyed = self._lookup_keys[tenant_id] = KeyedDigest(key)
        return keyed

    def lookup_hmac(self, tenant_id: UUID) -> Callable[[bytes], bytes]:
        """HMAC-SHA256 under the tenant's lookup key (as `KeyRing.lookup_digest`)."""
        return self.lookup_state(tenant_id).digest

    def ref(self, tenant_id: UUID, subject: SubjectRef, field: str) -> Ref:
        """Raises ValidationFailed naming `field`."""
        if (subject.subject_id is None) == (subject.identifier is None):
            raise ValidationFailed.field(field, _ONE_OF)
        if subject.subject_id is not None:
            return Ref(subject.subject_id, None, None)
        ident = subject.identifier
        assert ident is not None  # noqa: S101 - narrowed above
        try:
            value = normalize_identifier(ident.type, ident.value)
        except InvalidIdentifier as exc:
            raise ValidationFailed.field(f"{field}.identifier.value", localized(str(exc))) from None
        message = ident.type.encode() + b"\x00" + value.encode()
        digest = self.lookup_hmac(tenant_id)(message)
        return Ref(None, ident.type, digest)

    async def refs(self, tenant_id: UUID, subjects: Sequence[SubjectRef], prefix: str) -> list[Ref]:
        """The subjects' references; ValidationFailed naming every bad one, in order: those
        that are not valid and, with them, those of an identifier type the tenant never defined
        (`check_identifier_types` finds these once the ledger is read when all are valid)."""
        out: list[Ref] = []
        errors: list[tuple[int, FieldError]] = []
        for i, subject in enumerate(subjects):
            field = prefix.format(i=i)
            try:
                out.append(self.ref(tenant_id, subject, field))
            except ValidationFailed as exc:
                errors += [(i, e) for e in exc.errors or [FieldError(field, exc.detail or "")]]
        if not errors:
            return out
        custom = {
            i: s.identifier.type
            for i, s in enumerate(subjects)
            if s.subject_id is None
            and s.identifier is not None
            and s.identifier.type not in BUILTIN_TYPES
        }
        with contextlib.suppress(LedgerUnavailable):  # then the invalid ones alone: still a 400
            known = await self.defined_identifier_types(tenant_id, set(custom.values()))
            errors += [
                (i, _unknown_type(prefix.format(i=i), t))
                for i, t in custom.items()
                if t not in known
            ]
        ordered = [e for _, e in sorted(errors, key=lambda pair: pair[0])]  # stable per member
        raise ValidationFailed.of(ordered[:_MAX_FIELD_ERRORS], _INVALID_REFERENCES)

    # -- reading the ledger ----------------------------------------------------------------------

    async def read(
        self,
        tenant_id: UUID,
        purposes: Sequence[str],
        refs: Sequence[Ref],
        *,
        grouped: bool = False,
    ) -> tuple[Catalogue, list[SubjectRow]]:
        """`load` on a connection of the pool, or `grouped` with the reads pending at the same
        time (`GroupReader`: for single decisions, whose reads are small and many);
        LedgerUnavailable when the database is not there."""
        try:
            if grouped:
                return await self.reader.read(ReadRequest(tenant_id, tuple(purposes), refs))
            async with self.db.pool.acquire() as conn:
                return await self.load(conn, tenant_id, purposes, refs)
        except DB_UNAVAILABLE as exc:
            raise LedgerUnavailable.because(exc, _LEDGER_NO_DECISION) from exc

    @staticmethod
    async def load(
        conn: Conn, tenant_id: UUID, purposes: Sequence[str], refs: Sequence[Ref]
    ) -> tuple[Catalogue, list[SubjectRow]]:
        """The catalogue entries of `purposes` and one row per reference (UNKNOWN if none), in
        one statement, on `conn` outside a transaction (see queries.sql). `refs` must not be
        empty."""
        fetched = await conn.fetch(
            Q.subject_states,
            tenant_id,
            list(range(len(refs))),
            [r.subject_id for r in refs],
            [r.id_type for r in refs],
            [r.digest for r in refs],
            list(purposes),
        )
        rows: list[SubjectRow] = [UNKNOWN] * len(refs)
        catalogue = Catalogue({})
        for r in fetched:
            if r["ord"] == 0:
                catalogue = DecisionService.catalogue_of(r, r["erasure_epoch"])
            subject_id = r["subject_id"]
            if subject_id is None:
                continue
            purposes_ = r["purposes"]
            rows[r["ord"]] = (
                SubjectRow(
                    subject_id,
                    purposes_,
                    r["choices"],
                    r["recorded_at_us"],
                    r["consent_material"],
                    r["notice_material"],
                    r["audit_token"],
                )
                if purposes_
                else SubjectRow(subject_id, audit_token=r["audit_token"])
            )
        return catalogue, rows

    async def audience_states(
        self,
        tenant_id: UUID,
        now_ns: int,
        purposes: Sequence[str],
        refs: AudienceRefs,
    ) -> list[asyncpg.Record]:
        """An audience chunk's references, looked up and grouped by (context number, state key)
        in one statement (`audience_subject_states`, under row-level security): one record per
        group, in order of first member. LedgerUnavailable when the database is not there."""
        try:
            async with self.db.pool.acquire() as conn:
                rows: list[asyncpg.Record] = await conn.fetch(
                    Q.audience_states,
                    tenant_id,
                    now_ns,
                    list(purposes),
                    refs.kinds,
                    refs.digests,
                    refs.types,
                    refs.subject_ords,
                    refs.subject_ids,
                    refs.contexts,
                )
                return rows
        except DB_UNAVAILABLE as exc:
            raise LedgerUnavailable.because(exc, _LEDGER_NO_DECISION) from exc

    @staticmethod
    def catalogue_of(row: asyncpg.Record, erasure_epoch: int | None = None) -> Catalogue:
        """The catalogue entries carried by a row of subject_states or audience_states."""
        if not row["cat_keys"]:
            return Catalogue({}, erasure_epoch)
        return Catalogue(
            {
                key: PurposeDefinition(
                    legal_basis=basis,
                    max_age_ns=days * NS_PER_DAY if days is not None else None,
                    strictly_necessary=necessary,
                    material_version=material,
                )
                for key, basis, days, necessary, material in zip(
                    row["cat_keys"],
                    row["cat_bases"],
                    row["cat_max_age_days"],
                    row["cat_necessary"],
                    row["cat_material"],
                    strict=True,
                )
            },
            erasure_epoch,
        )

    async def defined_identifier_types(self, tenant_id: UUID, types: set[str]) -> set[str]:
        """Those of `types` (custom ones: built-in types are not listed in the catalogue) the
        tenant defined. LedgerUnavailable when the database is not there."""
        try:
            async with self.db.tenant(tenant_id) as conn:
                found = await conn.fetch(Q.known_identifier_types, tenant_id, list(types))
        except DB_UNAVAILABLE as exc:
            raise LedgerUnavailable.because(exc, Localized("ledger-unavailable")) from exc
        return {r["key"] for r in found}

    async def check_identifier_types(
        self, tenant_id: UUID, refs: Sequence[Ref], rows: Sequence[SubjectRow], prefix: str
    ) -> None:
        """An identifier of a type the tenant never defined is a client error, not a denial."""
        unknown = {
            r.id_type
            for r, row in zip(refs, rows, strict=True)
            if r.id_type is not None and row.subject_id is None and r.id_type not in BUILTIN_TYPES
        }
        if not unknown:
            return
        known = await self.defined_identifier_types(tenant_id, unknown)
        errors = [
            _unknown_type(prefix.format(i=i), t)
            for i, t in enumerate(r.id_type for r in refs)
            if t in unknown and t not in known
        ]
        if errors:
            raise ValidationFailed(errors[0].message, errors=errors[:_MAX_FIELD_ERRORS])

    # -- deciding ------------------------------------------------------------------------------

    async def decide(self, caller: Caller, request: DecisionRequest) -> DecisionOut:
        (out,) = await self._decide(
            caller, [request], kind="single", batch_id=None, prefix="subject"
        )
        return out

    async def decide_batch(
        self, caller: Caller, requests: Sequence[DecisionRequest]
    ) -> BatchResponse:
        batch_id = uuid7()
        outs = await self._decide(
            caller, requests, kind="batch", batch_id=batch_id, prefix="decisions[{i}].subject"
        )
        return BatchResponse(batch_id=batch_id, decisions=outs)

    async def _decide(
        self,
        caller: Caller,
        requests: Sequence[DecisionRequest],
        *,
        kind: str,
        batch_id: UUID | None,
        prefix: str,
    ) -> list[DecisionOut]:
        refs = await self.refs(caller.tenant_id, [r.subject for r in requests], prefix)
        for _ in range(_ATTEMPTS):
            bundle = self.runtime.engine.bundle
            needed = {a: needed_purposes(bundle, a) for a in {r.action for r in requests}}
            union = sorted({p for keys in needed.values() for p in keys})
            now_ns = self.clock()
            catalogue, rows = await self.read(
                caller.tenant_id, union, refs, grouped=kind == "single"
            )
            await self.check_identifier_types(caller.tenant_id, refs, rows, prefix)
            restricted = {a: catalogue.restrict(keys) for a, keys in needed.items()}
            # A batch reads the purposes of all its actions at once; each input (and so the
            # log) holds the state of its own action's purposes only, as a single call's does.
            inputs = [
                build_input(
                    r.action, now_ns, r.context, restricted[r.action], row.only(needed[r.action])
                )
                for r, row in zip(requests, rows, strict=True)
            ]
            try:
                results, _ = await self.evaluator.decide(
                    bundle, [(x, needed[x.action]) for x in inputs]
                )
            except PolicyChanged:
                continue
            break
        else:
            raise PolicyUnavailable("the policy changed during the decision; retry")
        decided_at = ns_to_datetime(now_ns)
        records = [
            DecisionRecord(
                id=uuid7(now_ns),
                tenant_id=caller.tenant_id,
                decided_at=decided_at,
                # None when the ledger knows no such subject (never was, or erased), as for
                # an unknown identifier and an audience member: no leaf, no token for it.
                subject_id=row.subject_id,
                id_type=ref.id_type if row.subject_id is None else None,
                lookup_hmac=ref.digest if row.subject_id is None else None,
                requester=request.context.requester,
                api_key_id=caller.api_key_id,
                request_id=caller.request_id,
                kind=kind,
                batch_id=batch_id,
                action=request.action,
                allow=result.allow,
                reasons=result.reasons,
                purposes=result.purposes,
                policy_revision=result.revision,
                input=value,
                subject_token=row.audit_token,
                # The HMAC is logged only if no erasure committed since this read (an erasure
                # in between may have forgotten it already: migrations/0028).
                erasure_epoch=catalogue.erasure_epoch,
            )
            for request, ref, row, value, result in zip(
                requests, refs, rows, inputs, results, strict=True
            )
        ]
        await self.log.write(LogBatch(decisions=records))
        return [
            DecisionOut(
                decision_id=record.id,
                allow=record.allow,
                reasons=list(record.reasons),
                purposes=record.purposes,
                policy_revision=record.policy_revision,
                decided_at=decided_at,
                subject_id=row.subject_id,
            )
            for record, row in zip(records, rows, strict=True)
        ]

    # -- reading back ----------------------------------------------------------------------------

    async def purpose_keys(self, tenant_id: UUID) -> set[str]:
        """The keys of the tenant's purposes (what its decisions can find in the catalogue)."""
        try:
            async with self.db.tenant(tenant_id) as conn:
                return {row["key"] for row in await conn.fetch(Q.purpose_keys)}
        except DB_UNAVAILABLE as exc:
            raise LedgerUnavailable.because(exc, Localized("catalogue-unavailable")) from exc

    async def get(self, tenant_id: UUID, decision_id: UUID, *, replay: bool) -> StoredDecision:
        try:
            async with self.db.tenant(tenant_id) as conn:
                row = await conn.fetchrow(Q.get_decision, tenant_id, decision_id)
        except DB_UNAVAILABLE as exc:
            raise LedgerUnavailable.because(exc, Localized("decision-log-unavailable")) from exc
        if row is None:
            raise NotFound(Localized("no-such-decision"))
        stored = StoredDecision(
            decision_id=row["id"],
            decided_at=row["decided_at"],
            subject_id=row["subject_id"],
            requester=row["requester"],
            kind=row["kind"],
            batch_id=row["batch_id"],
            action=row["action"],
            allow=row["allow"],
            reasons=list(row["reasons"]),
            purposes=row["purposes"],
            policy_revision=row["policy_revision"],
            input=msgspec.convert(row["input"], DecisionInput),
        )
        if not replay:
            return stored
        return msgspec.structs.replace(stored, replay=await self.replay(stored))

    async def replay(self, stored: StoredDecision) -> Replay:
        """The stored input, as it was, under the policy in force now (not logged: it uses no
        current data of the subject)."""
        bundle = self.runtime.engine.bundle
        result = await self.runtime.engine.evaluate(stored.input)
        now_needed = needed_purposes(bundle, stored.action)
        missing = [p for p in now_needed if p not in stored.input.purposes]
        return Replay(
            policy_revision=result.revision,
            allow=result.allow,
            reasons=list(result.reasons),
            purposes=result.purposes,
            differs=(result.allow, list(result.reasons), result.purposes)
            != (stored.allow, stored.reasons, stored.purposes),
            missing_purposes=missing,
        )
