"""The audience filter: NDJSON in, NDJSON out, for any number of identifiers in bounded memory.

Request: a header line `{"action": ..., "context": {...}, "output": "allowed"|"all"}`, then one
member per line: `{"subject_id": ...}` or `{"type": "email", "value": ...}`, optionally with
per-member overrides of the context (`jurisdiction`, `age`, `gpc`, ...).

Members are processed in chunks, in bulk: a chunk's lines are decoded in one msgspec call,
identifiers normalised and hashed (keyed HMAC) into packed bytes, and one statement
(`audience_subject_states`, migrations/0008, under row-level security) looks every member up and
groups the chunk by (context, state key) in PostgreSQL, returning per group its members'
positions, subject ids and stored input values as arrays. Python then works per group, not per
member: the first member's exact input is built and normalised, each distinct normalised input
(a consent-state shape) is evaluated once per run (and the engine's cache remembers it across
runs), and the group's arrays become its audience_member row as they are. Each chunk's decisions
are committed to the log (group commit) as the request streams in; two chunks are in flight at a
time, so memory depends on the chunk size, never on the audience size.

Answer: the lines of the allowed members, verbatim (or, with `"output": "all"`, one
`{"line": n, "allow": ..., "reasons": [...]}` per member), then `{"summary": {...}}` with the
counts of denied members by reason. The answer is spooled (`SealedSpool`: to a temporary file
beyond a few MB, each piece encrypted under a key held only in memory, so no identifier reaches
the disk in the clear) and sent once the whole request has been decided and logged: all or
nothing, so a failure is a 503 problem, never a partial answer, and no client or server has to
stream both ways at once (granian, for one, does not read a request body after the response has
started).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import sys
from array import array
from collections import Counter, deque
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Final
from uuid import UUID

import msgspec
import structlog

from consent.crypto.spool import DEFAULT_MEMORY, SealedSpool
from consent.decisions.engine import (
    DecisionInput,
    DecisionResult,
    PolicyBundle,
    PolicyError,
    PolicyUnavailable,
)
from consent.decisions.logwriter import (
    AudienceMemberRecord,
    AudienceRunRecord,
    AudienceShapeRecord,
    GroupCommitWriter,
    LogBatch,
)
from consent.decisions.schemas import (
    AudienceHeader,
    AudienceMember,
    AudienceSummary,
    DecisionContext,
    checked_field,
)
from consent.decisions.service import (
    PLAIN_EMAIL,
    UNKNOWN,
    AudienceRefs,
    Caller,
    Catalogue,
    DecisionService,
    KeyedDigest,
    PolicyChanged,
    SubjectRow,
    build_input,
    normalize_identifier,
    ns_to_datetime,
    uuid7,
)
from consent.decisions.shape import needed_purposes
from consent.errors import ProblemError, ValidationFailed, msgspec_field
from consent.locales import Localized, fields
from consent.subjects.identifiers import BUILTIN_TYPES, InvalidIdentifier

__all__ = ["AUDIENCE_ID_HEADER", "AudienceAnswer", "AudienceFilter", "member_input"]

MAX_LINE_BYTES: Final = 16_384
# On a failed run's problem when some of its members were decided and logged before it failed.
AUDIENCE_ID_HEADER: Final = "Audience-Id"
_MAX_INVALID_LINES: Final = 20
_MAX_TYPES_KEPT: Final = 10_000  # custom identifier types a run remembers the answer for
_ATTEMPTS: Final = 3
_CONTEXT_FIELDS: Final = (
    "jurisdiction",
    "gpc",
    "age",
    "parental_consent",
    "parental_consent_third_parties",
    "limit_sensitive",
)
_log = structlog.get_logger(__name__)
_encode = msgspec.json.Encoder().encode
_LINE_TOO_LONG: Final = Localized("line-longer-than", max=MAX_LINE_BYTES)
_decode_members = msgspec.json.Decoder(list[AudienceMember]).decode
_decode_member = msgspec.json.Decoder(AudienceMember).decode
_decode_header = msgspec.json.Decoder(AudienceHeader).decode
# Not JSON, not a member, or not UTF-8 (msgspec raises UnicodeDecodeError inside a string).
_UNDECODABLE: Final = (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError)
_NO_OVERRIDES: Final = (msgspec.UNSET,) * len(_CONTEXT_FIELDS)
_NO_DIGEST: Final = bytes(32)
_BOM: Final = b"\xef\xbb\xbf"
# PLAIN_EMAIL for each line of a text (no line break inside a match: `$` ends the line).
_PLAIN_LINES: Final = re.compile(f"^(?:{PLAIN_EMAIL.pattern})$", re.MULTILINE)


class _InvalidHeader(Localized):
    """`invalid-header` whose reason, msgspec's English words about the header line, is given
    in the asker's language too (by its shape, as the problem of a bad JSON body is)."""

    def in_language(self, language: str) -> str:
        reason = fields.in_language(str(self.params["reason"]), language)
        return Localized(self.key, reason=reason).in_language(language)


def _header_field(message: str) -> tuple[str, str]:
    """The path of the header's field that msgspec's `message` is about (`header.context`,
    `header.context.jurisdiction`, as a body's fields are named), and the message without the
    path msgspec appended."""
    named, message = msgspec_field(message)
    path = checked_field(named or "", message)
    return (f"header.{path}" if path else "header"), message


def member_input(
    shape_input: DecisionInput,
    now_ns: int,
    purpose_keys: Sequence[str],
    purpose_material: Sequence[int | None],
    recorded_at_ns: Sequence[int | None],
    consent_material: Sequence[int | None],
) -> DecisionInput:
    """A member's exact input, rebuilt from the log (audience_shape.input, audience_run.now_ns and
    the member's row of the audience_member arrays)."""
    purposes = dict(shape_input.purposes)
    consents = dict(shape_input.consents)
    for key, pm, rec, cm in zip(
        purpose_keys, purpose_material, recorded_at_ns, consent_material, strict=True
    ):
        if pm is not None and key in purposes:
            purposes[key] = msgspec.structs.replace(purposes[key], material_version=pm)
        if rec is not None and cm is not None and key in consents:
            consents[key] = msgspec.structs.replace(
                consents[key], recorded_at_ns=rec, material_version=cm
            )
    return msgspec.structs.replace(shape_input, now_ns=now_ns, purposes=purposes, consents=consents)


@dataclass(slots=True)
class _Shape:
    number: int
    result: DecisionResult
    input: DecisionInput
    all_suffix: bytes


@dataclass(slots=True)
class _Run:
    caller: Caller
    header: AudienceHeader
    id: UUID
    now_ns: int
    record: AudienceRunRecord
    run_committed: bool = False
    shapes: dict[tuple[str, bytes], _Shape] = field(default_factory=dict)
    committed_shapes: set[int] = field(default_factory=set)
    revisions: list[str] = field(default_factory=list)
    contexts: dict[tuple[Any, ...], DecisionContext] = field(default_factory=dict)
    # (revision, context overrides, state_key) -> shape: members whose normalised input is
    # already known skip building it (see service.state_key).
    known: dict[tuple[object, ...], _Shape] = field(default_factory=dict)
    total: int = 0
    allowed: int = 0
    denied: int = 0
    by_reason: Counter[str] = field(default_factory=Counter)
    invalid: int = 0
    invalid_lines: list[int] = field(default_factory=list)
    # Custom identifier types seen in the run: whether the tenant defined each.
    identifier_types: dict[str, bool] = field(default_factory=dict)


@dataclass(slots=True)
class _Chunk:
    number: int
    lines: list[bytes]  # raw lines of the valid members, in order
    line_nos: list[int]  # their line numbers
    contexts: list[DecisionContext]  # the distinct contexts of the chunk, by number
    context_keys: list[tuple[Any, ...]]  # their overrides
    refs: AudienceRefs


@dataclass(slots=True)
class _Group:
    """Members of a chunk that share a context and a state key (hence a shape)."""

    shape: _Shape
    ords: list[int]  # 1-based positions in the chunk
    members: int
    subject_ids: list[UUID]
    purpose_material: list[int | None]
    recorded_at_ns: list[int | None]
    consent_material: list[int | None]


class AudienceAnswer:
    """A decided audience: the spooled member lines, then the summary line."""

    def __init__(self, spool: SealedSpool, summary: AudienceSummary) -> None:
        self.spool = spool
        self.summary = summary

    async def body(self) -> AsyncIterator[bytes]:
        try:
            for piece in self.spool.pieces():
                yield piece
            yield _encode({"summary": self.summary}) + b"\n"
        finally:
            self.spool.close()

    async def collect(self) -> bytes:
        """The whole answer (tests, small audiences)."""
        return b"".join([piece async for piece in self.body()])


class AudienceFilter:
    def __init__(
        self,
        service: DecisionService,
        log: GroupCommitWriter,
        *,
        chunk_size: int = 20_000,
        in_flight: int = 2,
        spool_memory: int = DEFAULT_MEMORY,
    ) -> None:
        self.service = service
        self.log = log
        self.chunk_size = chunk_size
        self.in_flight = in_flight
        self.spool_memory = spool_memory

    async def run(self, caller: Caller, body: AsyncIterator[bytes]) -> AudienceAnswer:
        """Read and decide the whole audience; the answer is spooled (to disk beyond
        `spool_memory` bytes) and streamed afterwards. Raises ProblemError or PolicyError: then
        nothing is answered (decisions already logged stay logged: they were made)."""
        reader = _Reader(body)
        run = await self._start(caller, reader)
        spool = SealedSpool(self.spool_memory)
        pending: deque[asyncio.Task[bytes]] = deque()
        try:
            number = 0
            async for line_nos, lines in reader.chunks(self.chunk_size):
                chunk = await self._prepare(run, number, line_nos, lines)
                number += 1
                pending.append(asyncio.create_task(self._decide_chunk(run, chunk)))
                while len(pending) >= self.in_flight:
                    spool.write(await pending.popleft())
            while pending:
                spool.write(await pending.popleft())
        except BaseException as exc:
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            spool.close()
            if isinstance(exc, ProblemError | PolicyError):
                _log.warning("audience.failed", error=type(exc).__name__, audience_id=str(run.id))
                if run.run_committed:  # decisions were logged: name their run to the caller
                    exc.headers[AUDIENCE_ID_HEADER] = str(run.id)
            raise
        return AudienceAnswer(spool, self._summary(run))

    async def _start(self, caller: Caller, reader: _Reader) -> _Run:
        header_line = await reader.first()
        if header_line is None:
            raise ValidationFailed.field("header", Localized("no-header-line"))
        try:
            # A UTF-8 byte order mark (files saved by some editors) is not part of the JSON.
            header = _decode_header(header_line.removeprefix(_BOM))
        except msgspec.ValidationError as exc:
            path, reason = _header_field(str(exc))
            raise ValidationFailed.field(
                path, _InvalidHeader("invalid-header", reason=reason)
            ) from None
        except (msgspec.DecodeError, UnicodeDecodeError):
            # msgspec reports bytes that are not UTF-8 inside a string as UnicodeDecodeError.
            raise ValidationFailed.field("header", Localized("header-not-json")) from None
        now_ns = self.service.clock()
        run_id = uuid7(now_ns)
        record = AudienceRunRecord(
            id=run_id,
            tenant_id=caller.tenant_id,
            started_at=ns_to_datetime(now_ns),
            now_ns=now_ns,
            requester=header.context.requester,
            api_key_id=caller.api_key_id,
            request_id=caller.request_id,
            action=header.action,
            context=msgspec.to_builtins(header.context),
        )
        return _Run(caller=caller, header=header, id=run_id, now_ns=now_ns, record=record)

    # -- one chunk ------------------------------------------------------------------------------

    async def _prepare(
        self, run: _Run, number: int, line_nos: Sequence[int], raw: list[bytes]
    ) -> _Chunk:
        """Decode, validate and hash a chunk's member lines (invalid ones are counted, skipped).
        An identifier of a type the tenant never defined is invalid, as it is a 400 for the
        single call."""
        members: list[AudienceMember | None] | None = None
        if _one_object_per_line(raw):
            with contextlib.suppress(*_UNDECODABLE):
                members = list(_decode_members(b"[" + b",".join(raw) + b"]"))
        if members is None or len(members) != len(raw):
            members = [_decode_one(line) for line in raw]
        undefined = await self._undefined_types(run, members)
        if undefined:
            members = [None if m is not None and m.type in undefined else m for m in members]
        keyed = self.service.lookup_state(run.caller.tenant_id)
        numbers: dict[tuple[Any, ...], int] = {}
        contexts: list[DecisionContext] = []
        context_keys: list[tuple[Any, ...]] = []
        ctx: list[int] = []
        type_numbers: dict[str, int] = {}
        kinds = array("H")
        digests: list[bytes] = []
        subject_ords: list[int] = []
        subject_ids: list[UUID] = []
        lines: list[bytes] = []
        valid_nos: list[int] = []
        plain = _all_plain_emails(members)
        for line_no, line, member in zip(line_nos, raw, members, strict=True):
            ref = _ref(keyed, member, plain=plain) if member is not None else None
            if ref is None or member is None:
                self._invalid(run, line_no)
                continue
            if isinstance(ref, UUID):
                kinds.append(0)
                digests.append(_NO_DIGEST)
                subject_ords.append(len(lines) + 1)
                subject_ids.append(ref)
            else:
                id_type, digest = ref
                kind = type_numbers.get(id_type)
                if kind is None:
                    kind = type_numbers[id_type] = len(type_numbers) + 1
                kinds.append(kind)
                digests.append(digest)
            overrides = _overrides(member)
            number_ = numbers.get(overrides)
            if number_ is None:
                number_ = numbers[overrides] = len(contexts)
                contexts.append(_context(run, overrides))
                context_keys.append(overrides)
            ctx.append(number_)
            lines.append(line)
            valid_nos.append(line_no)
        if sys.byteorder == "big":
            kinds.byteswap()
        return _Chunk(
            number=number,
            lines=lines,
            line_nos=valid_nos,
            contexts=contexts,
            context_keys=context_keys,
            refs=AudienceRefs(
                kinds=kinds.tobytes(),
                digests=b"".join(digests),
                types=list(type_numbers),
                subject_ords=subject_ords,
                subject_ids=subject_ids,
                contexts=ctx if len(contexts) > 1 else None,
            ),
        )

    async def _undefined_types(
        self, run: _Run, members: Sequence[AudienceMember | None]
    ) -> set[str]:
        """The custom identifier types of `members` that the tenant never defined."""
        custom = {
            m.type
            for m in members
            if m is not None and m.type is not None and m.type not in BUILTIN_TYPES
        }
        if not custom:
            return set()
        known = run.identifier_types
        ask = {t for t in custom if t not in known}
        if ask:
            defined = await self.service.defined_identifier_types(run.caller.tenant_id, ask)
            answers = {t: t in defined for t in ask}
            if len(known) + len(answers) <= _MAX_TYPES_KEPT:
                known.update(answers)
        else:
            answers = {}
        return {t for t in custom if not answers.get(t, known.get(t, False))}

    @staticmethod
    def _invalid(run: _Run, line_no: int) -> None:
        run.invalid += 1
        if len(run.invalid_lines) < _MAX_INVALID_LINES:
            run.invalid_lines.append(line_no)

    async def _decide_chunk(self, run: _Run, chunk: _Chunk) -> bytes:
        if not chunk.lines:
            return b""
        service = self.service
        action = run.header.action
        tenant_id = run.caller.tenant_id
        for _ in range(_ATTEMPTS):
            bundle = service.runtime.engine.bundle
            needed = needed_purposes(bundle, action)
            found = await service.audience_states(tenant_id, run.now_ns, needed, chunk.refs)
            try:
                groups = await self._groups(run, chunk, bundle, needed, found)
            except PolicyChanged:
                continue
            break
        else:
            raise PolicyUnavailable("the policy changed repeatedly during the run; retry")
        batch = self._records(run, chunk, needed, groups)
        await self.log.write(batch)
        run.run_committed = True
        run.committed_shapes.update(s.shape for s in batch.audience_shapes)
        return self._answer(run, chunk, groups)

    async def _groups(
        self,
        run: _Run,
        chunk: _Chunk,
        bundle: PolicyBundle,
        needed: tuple[str, ...],
        found: Sequence[Any],
    ) -> list[_Group]:
        """The chunk's groups with their shapes. A group whose (context, state key) was seen
        before in the run has its shape; for the others the exact input of the group's first
        member is built and normalised, and each distinct normalised input is evaluated once."""
        catalogue = self.service.catalogue_of(found[0]).restrict(needed) if found else Catalogue({})
        keys: list[tuple[object, ...]] = []
        unseen: dict[tuple[object, ...], Any] = {}
        for r in found:
            key: tuple[object, ...] = (bundle.revision, chunk.context_keys[r["ctx"]], r["state"])
            keys.append(key)
            if key not in run.known and key not in unseen:
                unseen[key] = r
        if unseen:
            inputs = [
                build_input(
                    run.header.action,
                    run.now_ns,
                    chunk.contexts[r["ctx"]],
                    catalogue,
                    _first_row(r),
                )
                for r in unseen.values()
            ]
            results, normal_keys = await self.service.evaluator.decide(
                bundle, [(x, needed) for x in inputs]
            )
            for key, normal, result in zip(unseen, normal_keys, results, strict=True):
                run.known[key] = self._shape(run, normal, result)
        return [
            _Group(
                shape=run.known[key],
                ords=r["ords"],
                members=r["members"],
                subject_ids=r["subject_ids"],
                purpose_material=r["purpose_material"],
                recorded_at_ns=r["recorded_at_ns"],
                consent_material=r["consent_material"],
            )
            for key, r in zip(keys, found, strict=True)
        ]

    @staticmethod
    def _shape(run: _Run, key: bytes, result: DecisionResult) -> _Shape:
        """The run's shape of a normalised input (numbered in order of first sight)."""
        registry_key = (result.revision, key)
        shape = run.shapes.get(registry_key)
        if shape is None:
            shape = run.shapes[registry_key] = _Shape(
                number=len(run.shapes),
                result=result,
                input=msgspec.json.decode(key, type=DecisionInput),
                all_suffix=_encode({"allow": result.allow, "reasons": list(result.reasons)})[1:],
            )
            if result.revision not in run.revisions:
                run.revisions.append(result.revision)
        return shape

    def _records(
        self, run: _Run, chunk: _Chunk, needed: tuple[str, ...], groups: list[_Group]
    ) -> LogBatch:
        """The log records of a chunk: the run (until committed), its new shapes, and per shape
        the members with the values of their exact inputs (see `member_input`)."""
        tenant_id = run.caller.tenant_id
        by_shape: dict[int, AudienceMemberRecord] = {}
        keys = list(needed)
        for group in groups:
            shape = group.shape
            record = by_shape.get(shape.number)
            if record is None:
                by_shape[shape.number] = AudienceMemberRecord(
                    run_id=run.id,
                    chunk=chunk.number,
                    shape=shape.number,
                    tenant_id=tenant_id,
                    members=group.members,
                    subject_ids=group.subject_ids,
                    purpose_keys=keys,
                    purpose_material=group.purpose_material,
                    recorded_at_ns=group.recorded_at_ns,
                    consent_material=group.consent_material,
                    event_uuid=uuid7(run.now_ns),
                    decided_at=run.record.started_at,
                    requester=run.record.requester,
                    action=run.record.action,
                    allow=shape.result.allow,
                    reasons=tuple(shape.result.reasons),
                    policy_revision=shape.result.revision,
                    shape_input=shape.input,
                )
                continue
            # Groups of one shape (different contexts or state keys with the same normalised
            # input) share its row: their members one group after the other.
            record.members += group.members
            record.subject_ids.extend(group.subject_ids)
            record.purpose_material.extend(group.purpose_material)
            record.recorded_at_ns.extend(group.recorded_at_ns)
            record.consent_material.extend(group.consent_material)
        shapes_used = {g.shape.number: g.shape for g in groups}
        return LogBatch(
            audience_runs=[] if run.run_committed else [run.record],
            audience_shapes=[
                AudienceShapeRecord(
                    run_id=run.id,
                    shape=s.number,
                    tenant_id=tenant_id,
                    policy_revision=s.result.revision,
                    allow=s.result.allow,
                    reasons=s.result.reasons,
                    purposes=s.result.purposes,
                    input=s.input,
                )
                for s in shapes_used.values()
                if s.number not in run.committed_shapes
            ],
            audience_members=list(by_shape.values()),
        )

    def _answer(self, run: _Run, chunk: _Chunk, groups: list[_Group]) -> bytes:
        everything = run.header.output == "all"
        allowed: list[int] = []
        suffixes: list[bytes] = [b""] * len(chunk.lines) if everything else []
        for group in groups:
            result = group.shape.result
            run.total += group.members
            if result.allow:
                run.allowed += group.members
                allowed.extend(group.ords)
            else:
                run.denied += group.members
                for reason in result.reasons:
                    run.by_reason[reason] += group.members
            if everything:
                suffix = group.shape.all_suffix
                for i in group.ords:
                    suffixes[i - 1] = suffix
        lines = chunk.lines
        if everything:
            out = [
                b'{"line":%d,' % line_no + suffix
                for line_no, suffix in zip(chunk.line_nos, suffixes, strict=True)
            ]
        else:
            allowed.sort()
            out = [lines[i - 1] for i in allowed]
        return b"\n".join(out) + b"\n" if out else b""

    def _summary(self, run: _Run) -> AudienceSummary:
        return AudienceSummary(
            audience_id=run.id,
            action=run.header.action,
            now_ns=run.now_ns,
            policy_revisions=run.revisions,
            total=run.total,
            allowed=run.allowed,
            denied=run.denied,
            denied_by_reason=dict(sorted(run.by_reason.items())),
            invalid=run.invalid,
            invalid_lines=run.invalid_lines,
            distinct_inputs=len(run.shapes),
        )


# -- helpers ---------------------------------------------------------------------------------------


def _one_object_per_line(raw: Sequence[bytes]) -> bool:
    """Whether every line starts with `{` and ends with `}` (checked at C speed), so that the
    lines joined with commas decode to one member per line when they decode to as many members
    as lines: a member's fields are scalars, so no member can span two such lines. Without the
    check, `{"type": "email"` then `"value": ...}` would decode as one member, and a line with
    two members (`{...},{...}`) would shift every later line onto another line's member."""
    joined = b"\n".join(raw)
    return (
        joined[:1] == b"{" and joined[-1:] == b"}" and joined.count(b"\n") == joined.count(b"}\n{")
    )


def _decode_one(line: bytes) -> AudienceMember | None:
    try:
        return _decode_member(line)
    except _UNDECODABLE:
        return None


def _all_plain_emails(members: Sequence[AudienceMember | None]) -> bool:
    """Whether every e-mail value of the chunk is in normal form already (PLAIN_EMAIL), checked
    with one regular-expression scan of them all, one per line (values with a line break in
    them are never taken for plain)."""
    emails = [
        m.value for m in members if m is not None and m.type == "email" and m.value is not None
    ]
    if not emails:
        return True
    joined = "\n".join(emails)
    return joined.count("\n") == len(emails) - 1 and len(_PLAIN_LINES.findall(joined)) == len(
        emails
    )


def _ref(
    keyed: KeyedDigest, member: AudienceMember, *, plain: bool = False
) -> UUID | tuple[str, bytes] | None:
    """A member's subject id, or its identifier's type and keyed HMAC; None if invalid.
    `plain`: e-mail values are known to be in normal form (see `_all_plain_emails`)."""
    id_type = member.type
    value = member.value
    if member.subject_id is not None:
        return member.subject_id if id_type is None and value is None else None
    if id_type is None or value is None:
        return None
    if id_type != "email" or not (plain or PLAIN_EMAIL.fullmatch(value)):
        try:
            value = normalize_identifier(id_type, value)
        except InvalidIdentifier:
            return None
    return id_type, keyed.digest(id_type.encode() + b"\x00" + value.encode())


def _overrides(member: AudienceMember) -> tuple[Any, ...]:
    """The member's overrides of the header's context (all UNSET: none)."""
    unset = msgspec.UNSET
    if (
        member.jurisdiction is unset
        and member.gpc is unset
        and member.age is unset
        and member.parental_consent is unset
        and member.parental_consent_third_parties is unset
        and member.limit_sensitive is unset
    ):
        return _NO_OVERRIDES
    return (
        member.jurisdiction,
        member.gpc,
        member.age,
        member.parental_consent,
        member.parental_consent_third_parties,
        member.limit_sensitive,
    )


def _first_row(r: Any) -> SubjectRow:
    """The choices of a group's first member (as `DecisionService.load` reads them)."""
    subject_ids = r["subject_ids"]
    if r["state"] is None or not subject_ids:
        return UNKNOWN
    if not r["purposes"]:
        return SubjectRow(subject_ids[0])
    return SubjectRow(
        subject_ids[0],
        r["purposes"],
        r["choices"],
        r["recorded_at_us"],
        r["consent_mvs"],
        r["notice_material"],
    )


def _context(run: _Run, overrides: tuple[Any, ...]) -> DecisionContext:
    ctx = run.contexts.get(overrides)
    if ctx is None:
        changes = {
            name: value
            for name, value in zip(_CONTEXT_FIELDS, overrides, strict=True)
            if value is not msgspec.UNSET
        }
        ctx = (
            msgspec.structs.replace(run.header.context, **changes)
            if changes
            else run.header.context
        )
        if len(run.contexts) < 10_000:  # noqa: PLR2004
            run.contexts[overrides] = ctx
    return ctx


class _Reader:
    """The body's non-empty lines (stripped) with their 1-based numbers, a chunk at a time; a
    line longer than MAX_LINE_BYTES fails."""

    def __init__(self, body: AsyncIterator[bytes]) -> None:
        self._body = body
        self._buffer = b""
        self._number = 0  # lines complete so far
        self._numbers: list[int] = []
        self._lines: list[bytes] = []
        self._done = False

    async def _fill(self) -> bool:
        """Read one more part of the body into the pending lines; False at its end."""
        if self._done:
            return False
        part = await anext(self._body, None)
        if part is None:
            self._done = True
            rest = self._buffer.strip()
            self._buffer = b""
            if rest:
                self._number += 1
                self._numbers.append(self._number)
                self._lines.append(rest)
            return True
        buffer = self._buffer + part
        complete = buffer.split(b"\n")
        self._buffer = complete.pop()
        first = self._number + 1
        if max(map(len, complete), default=0) > MAX_LINE_BYTES:
            # A long line fails whether or not it arrived whole in one part.
            n = next(i for i, line in enumerate(complete, first) if len(line) > MAX_LINE_BYTES)
            raise ValidationFailed.field(f"line {n}", _LINE_TOO_LONG)
        self._number += len(complete)
        stripped = [line.strip() for line in complete]
        if b"" in stripped:
            for n, line in enumerate(stripped, first):
                if line:
                    self._numbers.append(n)
                    self._lines.append(line)
        else:
            self._numbers.extend(range(first, self._number + 1))
            self._lines.extend(stripped)
        if len(self._buffer) > MAX_LINE_BYTES:
            raise ValidationFailed.field(f"line {self._number + 1}", _LINE_TOO_LONG)
        return True

    async def first(self) -> bytes | None:
        """The first non-empty line (the header), or None."""
        while not self._lines:
            if not await self._fill():
                return None
        del self._numbers[0]
        return self._lines.pop(0)

    async def chunks(self, size: int) -> AsyncIterator[tuple[list[int], list[bytes]]]:
        """The remaining lines, `size` at a time (line numbers, lines)."""
        while True:
            while len(self._lines) < size and await self._fill():
                pass
            if not self._lines:
                return
            numbers, lines = self._numbers[:size], self._lines[:size]
            del self._numbers[:size], self._lines[:size]
            yield numbers, lines
