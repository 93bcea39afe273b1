"""Policy decisions: load the Rego bundle, evaluate it in-process or on an OPA server, cache.

Every failure to reach a decision raises `PolicyUnavailable`; callers must treat it as a denial.
A bundle that does not compile, fails its own `*_test.rego` tests or does not deny an empty input
raises `PolicyLoadError`, and the engine keeps serving the bundle it had.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import json
import re
import time
from collections import OrderedDict, deque
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Final, Literal, Protocol, Self, cast
from urllib.parse import urlsplit

import msgspec
import structlog

__all__ = [
    "DECISION_DOCUMENT",
    "OPA_URL_ENV",
    "CachedPolicyEngine",
    "CompiledPolicy",
    "ConsentState",
    "DecisionInput",
    "DecisionResult",
    "InProcessOpaEngine",
    "ManagedPolicyEngine",
    "OpaServerEngine",
    "PolicyBundle",
    "PolicyEngine",
    "PolicyError",
    "PolicyLoadError",
    "PolicyUnavailable",
    "PurposeDefinition",
    "RegoTest",
    "SubjectState",
    "canonical_input",
    "check_bundle",
    "check_sources",
    "default_policy_root",
    "json_error",
    "open_engine",
    "source_problems",
]

DECISION_PACKAGE: Final = "consent.decision"
DECISION_RULE: Final = "result"
DECISION_DOCUMENT: Final = f"{DECISION_PACKAGE}.{DECISION_RULE}"
OPA_URL_ENV: Final = "CONSENT_OPA_URL"
_log = structlog.get_logger(__name__)

_DATA_PATH = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")
_PACKAGE = re.compile(r"^package\s+([\w.]+)", re.MULTILINE)
_TEST_RULE = re.compile(r"^(test_\w+)\b", re.MULTILINE)
_BYTE_OFFSET = re.compile(r"\(byte (\d+)\)")
# Builtins whose value is not a function of their arguments (OPA marks them nondeterministic):
# a decision that calls one cannot be replayed, and the decision cache would keep a stale one.
_NONDETERMINISTIC = (
    "time.now_ns",
    "rand.intn",
    "uuid.rfc4122",
    "http.send",
    "net.lookup_ip_addr",
    "opa.runtime",
    "io.jwt.decode_verify",
)
_CALL = re.compile(r"(?<![\w.])(" + "|".join(re.escape(n) for n in _NONDETERMINISTIC) + r")\s*\(")
_INPUT_REF = re.compile(r"(?<![\w.])input\.([A-Za-z_]\w*)(?:\.([A-Za-z_]\w*))?")
# Rego comments and string literals (raw strings may span lines).
_NOT_CODE = re.compile(r'#[^\n]*|"(?:[^"\\\n]|\\.)*"|`[^`]*`')


class PolicyError(Exception):
    """Base class of the policy engine's errors."""

    def __init__(self, *args: object) -> None:
        super().__init__(*args)
        self.headers: dict[str, str] = {}  # extra headers of the problem answer, if any


class PolicyUnavailable(PolicyError):
    """No decision could be made (engine error, timeout, undefined or malformed result): deny."""


class PolicyLoadError(PolicyError):
    """A policy bundle was refused; the previous bundle keeps serving."""


# --- contract ------------------------------------------------------------------------------------


class SubjectState(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The subject in a policy input: whether the ledger knows it, the request's
    context, and the purposes it objected to."""

    known: Annotated[
        bool,
        msgspec.Meta(
            description="The ledger knows the subject (by id, or by identifier); false denies "
            "every action (`denied.unknown_subject`)."
        ),
    ]
    jurisdiction: Annotated[
        str | None,
        msgspec.Meta(
            description="`context.jurisdiction` of the request: ISO 3166-1 alpha-2 country (DE) "
            "or ISO 3166-2 subdivision (US-CA); null when not given."
        ),
    ] = None
    age: Annotated[
        int | None,
        msgspec.Meta(
            description="`context.age` of the request, in years; null when not given (then the "
            "subject is not treated as a child)."
        ),
    ] = None
    parental_consent: Annotated[
        bool,
        msgspec.Meta(
            description="`context.parental_consent`: verified parental consent is on record."
        ),
    ] = False
    parental_consent_third_parties: Annotated[
        bool,
        msgspec.Meta(
            description="`context.parental_consent_third_parties`: a separate verified parental "
            "consent to disclosure to third parties is on record (COPPA 16 CFR 312.5(a)(2)). "
            "False in inputs logged before the field existed."
        ),
    ] = False
    gpc: Annotated[
        bool,
        msgspec.Meta(description="`context.gpc`: a Global Privacy Control signal applies."),
    ] = False
    limit_sensitive: Annotated[
        bool,
        msgspec.Meta(
            description="`context.limit_sensitive`: the subject asked to limit the use of their "
            "sensitive personal information."
        ),
    ] = False
    objections: Annotated[
        tuple[str, ...],
        msgspec.Meta(
            description="Sorted keys of the needed purposes on legitimate interest whose current "
            "choice is `denied` or `withdrawn`: the subject objected (`denied.objected`)."
        ),
    ] = ()


class PurposeDefinition(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A purpose in a policy input: its catalogue entry as the policy reads it
    (legal basis, maximum age, current material version)."""

    legal_basis: Annotated[
        Literal["consent", "legitimate_interest", "contract", "legal_obligation"],
        msgspec.Meta(
            description="The purpose's legal basis in the tenant's catalogue: `consent` needs a "
            "current grant; `legitimate_interest` is allowed unless the subject objected; "
            "`contract` and `legal_obligation` are allowed."
        ),
    ]
    max_age_ns: Annotated[
        int | None,
        msgspec.Meta(
            description="How long a consent to it stays valid, in nanoseconds (the catalogue's "
            "maximum age, set in days); null: no limit. An older consent is `denied.expired`."
        ),
    ]
    strictly_necessary: Annotated[
        bool,
        msgspec.Meta(
            description="Strictly necessary (ePrivacy Art. 5(3) exemption): always allowed "
            "(`allowed.strictly_necessary`), whatever the legal basis or the subject's choice."
        ),
    ]
    material_version: Annotated[
        int,
        msgspec.Meta(
            description="The material version a consent must have to be current: that of the "
            "notice the subject's consent was given under, else the highest published one of the "
            "notices asking about the purpose (0: none). A lower one is `denied.stale`."
        ),
    ]


class ConsentState(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A subject's choice for one purpose in a policy input: the choice, when it was
    made, and under which material notice version."""

    status: Annotated[
        Literal["granted", "denied", "withdrawn"],
        msgspec.Meta(
            description="The subject's current choice for the purpose. On a consent basis only "
            "`granted` allows (`denied` gives `denied.no_consent`, `withdrawn` "
            "`denied.withdrawn`); on legitimate interest, `denied` or `withdrawn` is an objection."
        ),
    ]
    recorded_at_ns: Annotated[
        int,
        msgspec.Meta(
            description="When the choice was made, in nanoseconds since the Unix epoch "
            "(microsecond precision); expired when it plus `max_age_ns` is before `now_ns`."
        ),
    ]
    material_version: Annotated[
        int,
        msgspec.Meta(
            description="Material version of the notice when the choice was made (for a choice "
            "recorded without a notice, e.g. GPC or an import, the purpose's own version); stale "
            "(`denied.stale`) when lower than the purpose's `material_version`."
        ),
    ]


class DecisionInput(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The policy input (policies/schemas/input.json); a mapping of the same shape works too."""

    now_ns: Annotated[
        int,
        msgspec.Meta(
            description="Decision time in nanoseconds since the Unix epoch, read once per request "
            "by the service; passed to the policy, which never reads the clock, so that the "
            "decision can be replayed."
        ),
    ]
    action: Annotated[
        str, msgspec.Meta(description="The action asked about (e.g. `email.marketing`).")
    ]
    subject: Annotated[
        SubjectState,
        msgspec.Meta(
            description="The subject's state: whether the ledger knows it, the request's "
            "context and its objections."
        ),
    ]
    purposes: Annotated[
        dict[str, PurposeDefinition],
        msgspec.Meta(
            description="The tenant's catalogue entries of the purposes the action needs, by "
            "purpose key; a needed purpose missing here is `denied.unknown_purpose`."
        ),
    ]
    consents: Annotated[
        dict[str, ConsentState],
        msgspec.Meta(
            description="The subject's current choice per purpose key, from the ledger, for the "
            "purposes read for the decision; a needed purpose without one has no consent "
            "(`denied.no_consent` when its legal basis is `consent`)."
        ),
    ]


class DecisionResult(msgspec.Struct, frozen=True, kw_only=True):
    allow: bool
    reasons: tuple[str, ...]
    purposes: dict[str, str]
    revision: str


class _RawResult(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    allow: bool
    reasons: tuple[str, ...]
    purposes: dict[str, str]


_ENCODER: Final = msgspec.json.Encoder(order="sorted")
_DECODER: Final = msgspec.json.Decoder()


def canonical_input(value: DecisionInput | Mapping[str, Any]) -> bytes:
    """Canonical JSON of an input (sorted keys): the cache key and what every engine evaluates."""
    try:
        encoded = _ENCODER.encode(value)
    except (TypeError, msgspec.EncodeError) as exc:
        raise TypeError(f"decision input is not JSON: {exc}") from exc
    if not encoded.startswith(b"{"):
        raise TypeError("decision input must be a JSON object")
    return encoded


def _to_result(value: Any, revision: str) -> DecisionResult:
    """Validate an engine's result; anything unexpected is PolicyUnavailable, never an allow."""
    try:
        raw = msgspec.convert(value, _RawResult)
    except msgspec.ValidationError as exc:
        raise PolicyUnavailable(f"malformed decision: {exc}") from exc
    if raw.allow and any(not code.startswith("allowed.") for code in raw.reasons):
        raise PolicyUnavailable("malformed decision: allow with a denial reason")
    return DecisionResult(
        allow=raw.allow, reasons=raw.reasons, purposes=raw.purposes, revision=revision
    )


# --- bundle --------------------------------------------------------------------------------------


class _DataFile(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    path: str
    value: dict[str, Any]
    comment: str = ""


@dataclass(frozen=True, slots=True)
class RegoTest:
    package: str
    name: str

    @property
    def id(self) -> str:
        return f"{self.package}.{self.name}"


def default_policy_root() -> Path:
    """`consent/_bundled/policies` in a wheel, else the source tree's `policies/`."""
    package_dir = Path(__file__).resolve().parents[1]
    bundled = package_dir / "_bundled" / "policies"
    return bundled if bundled.is_dir() else package_dir.parent / "policies"


@dataclass(frozen=True, slots=True)
class PolicyBundle:
    """Policies, their tests and data read from a policy root, with a content revision."""

    root: Path
    modules: dict[str, str]  # serving modules by relative path
    test_modules: dict[str, str]  # *_test.rego by relative path
    data: dict[str, dict[str, Any]]  # dotted data path -> document
    revision: str

    @classmethod
    def load(cls, root: Path | None = None) -> PolicyBundle:
        root = root or default_policy_root()
        files: dict[str, bytes] = {}
        for path in [*root.rglob("*.rego"), *(root / "data").glob("*.json")]:
            files[path.relative_to(root).as_posix()] = path.read_bytes()
        if not files:
            raise PolicyLoadError(f"no policies under {root}")
        modules: dict[str, str] = {}
        tests: dict[str, str] = {}
        data: dict[str, dict[str, Any]] = {}
        for name, content in files.items():
            if name.endswith(".json"):
                doc = _read_data_file(name, content)
                if doc.path in data:
                    raise PolicyLoadError(f"{name}: data path {doc.path} is defined twice")
                data[doc.path] = doc.value
            else:
                target = tests if name.endswith("_test.rego") else modules
                target[name] = content.decode()
        return cls(root, modules, tests, data, bundle_revision(files))

    def rego_tests(self) -> list[RegoTest]:
        """`test_*` rules of the test modules, in file order (no engine needed)."""
        found: dict[str, RegoTest] = {}
        for source in self.test_modules.values():
            package = _PACKAGE.search(source)
            if package is None:
                continue
            for name in _TEST_RULE.findall(source):
                test = RegoTest(package.group(1), name)
                found.setdefault(test.id, test)
        return list(found.values())


def json_error(content: bytes, exc: msgspec.DecodeError) -> str:
    """msgspec's message, with the line and column of the byte it names (for people)."""
    message = str(exc)
    found = _BYTE_OFFSET.search(message)
    if found is None:
        return message
    before = content[: int(found.group(1))]
    line = before.count(b"\n") + 1
    column = len(before) - (before.rfind(b"\n") + 1) + 1
    return f"{message[: found.start()].rstrip()} (line {line}, column {column})"


def _read_data_file(name: str, content: bytes) -> _DataFile:
    try:
        doc = msgspec.json.decode(content, type=_DataFile)
    except msgspec.ValidationError as exc:
        raise PolicyLoadError(f"{name}: {exc}") from exc
    except msgspec.DecodeError as exc:
        raise PolicyLoadError(f"{name}: {json_error(content, exc)}") from exc
    if not _DATA_PATH.fullmatch(doc.path):
        raise PolicyLoadError(f"{name}: invalid data path {doc.path!r}")
    return doc


def bundle_revision(files: Mapping[str, bytes]) -> str:
    """sha256 over the sorted (relative path, content) pairs, length-prefixed, as "sha256:<hex>"."""
    digest = hashlib.sha256()
    for name in sorted(files):
        content = files[name]
        digest.update(f"{len(name)}:{name}:{len(content)}:".encode())
        digest.update(content)
    return f"sha256:{digest.hexdigest()}"


# --- the real OPA, in-process ---------------------------------------------------------------------


class CompiledPolicy:
    """One `opa_bindings.OpaEngine` with a bundle loaded and compiled. Not shared across threads."""

    def __init__(self, bundle: PolicyBundle, *, with_tests: bool = False) -> None:
        from opa_bindings import OpaEngine, OpaError

        self.revision = bundle.revision
        self._engine: Any = OpaEngine()
        modules = {**bundle.modules, **(bundle.test_modules if with_tests else {})}
        try:
            for name, source in sorted(modules.items()):
                self._engine.add_policy(name, source)
            for path, value in sorted(bundle.data.items()):
                self._engine.add_data(value, path)
            self._engine.eval_query("true")  # type-checks and compiles every module
        except OpaError as exc:
            self.close()
            raise PolicyLoadError(str(exc)) from exc

    def close(self) -> None:
        self._engine.close()

    def decide(self, input_doc: Mapping[str, Any]) -> DecisionResult:
        from opa_bindings import OpaError

        try:
            value = self._engine.eval_document(DECISION_DOCUMENT, input_doc)
        except OpaError as exc:  # includes OpaUndefinedError
            raise PolicyUnavailable(str(exc)) from exc
        return _to_result(value, self.revision)

    def query(self, query: str, input_doc: Any = None) -> list[dict[str, Any]]:
        """Bindings of a Rego query; raises the engine's OpaError. Keep `query` a fixed set."""
        return cast("list[dict[str, Any]]", self._engine.eval_query(query, input_doc))

    def run_test(self, test: RegoTest) -> str | None:
        """None if the `test_*` rule is true, else why not."""
        from opa_bindings import OpaError

        try:
            rows = self.query(f"x := data.{test.id}")
        except OpaError as exc:
            return str(exc)
        if not rows:
            return "undefined (a condition failed)"
        value = rows[0].get("x")
        return None if value is True else f"evaluated to {value!r}"

    def run_tests(self, tests: list[RegoTest]) -> dict[str, str | None]:
        """`run_test` for many tests: one evaluation per package, single runs only to explain."""
        from opa_bindings import OpaError

        outcomes: dict[str, str | None] = {}
        for package in sorted({test.package for test in tests}):
            try:
                rows = self.query(f"x := data.{package}")
                values = rows[0].get("x") if rows else None
            except OpaError:
                values = None  # one test errors: run them one by one
            for test in (t for t in tests if t.package == package):
                passed = isinstance(values, dict) and values.get(test.name) is True
                outcomes[test.id] = None if passed else self.run_test(test)
        return outcomes

    def list_tests(self, bundle: PolicyBundle) -> list[RegoTest]:
        """The bundle's `test_*` rules: read from the sources (a failing test is undefined, so the
        engine cannot list it) plus any the engine lists under `data.<package>` (e.g. generated).
        A package whose evaluation errors lists only its tests read from the sources: running
        them reports the error."""
        from opa_bindings import OpaError

        tests = bundle.rego_tests()
        known = {test.id for test in tests}
        for package in sorted({test.package for test in tests}):
            try:
                rows = self.query(f"data.{package}[name]")
            except OpaError:
                continue
            for row in rows:
                name = row.get("name")
                if isinstance(name, str) and name.startswith("test_"):
                    test = RegoTest(package, name)
                    if test.id not in known:
                        known.add(test.id)
                        tests.append(test)
        return tests


def _code_only(source: str) -> str:
    """`source` with comments and string literals blanked out, lines kept in place."""
    return _NOT_CODE.sub(lambda m: re.sub(r"[^\n]", " ", m.group(0)), source)


def source_problems(bundle: PolicyBundle) -> list[str]:
    """What the serving modules' text shows to be wrong, as `file:line: problem`: a call of a
    builtin that is not a function of its arguments (the clock, chance, the network), and an
    `input.<field>` (or `input.subject.<field>`) the decision input does not have, which is
    always undefined, so that the rule reading it never applies."""
    fields = {f.name: f.type for f in msgspec.structs.fields(DecisionInput)}
    subject_fields = sorted(f.name for f in msgspec.structs.fields(SubjectState))
    problems: list[str] = []
    for name, source in sorted(bundle.modules.items()):
        for number, line in enumerate(_code_only(source).splitlines(), start=1):
            problems.extend(
                f"{name}:{number}: {call.group(1)}() is not a function of the input: a "
                "decision must be (replay and the decision cache rely on it); read the "
                "time from input.now_ns"
                for call in _CALL.finditer(line)
            )
            for ref in _INPUT_REF.finditer(line):
                field, sub = ref.group(1), ref.group(2)
                if field not in fields:
                    problems.append(
                        f"{name}:{number}: input.{field} is not a field of the decision input "
                        f"({', '.join(sorted(fields))}; policies/schemas/input.json)"
                    )
                elif field == "subject" and sub is not None and sub not in subject_fields:
                    problems.append(
                        f"{name}:{number}: input.subject.{sub} is not a field of the decision "
                        f"input's subject ({', '.join(subject_fields)})"
                    )
    return problems


def check_sources(bundle: PolicyBundle) -> None:
    """Raise PolicyLoadError naming every `source_problems` of the bundle."""
    problems = source_problems(bundle)
    if problems:
        raise PolicyLoadError("; ".join(problems))


def check_bundle(bundle: PolicyBundle) -> None:
    """Check the sources, compile with tests, run every `test_*` rule, check an empty input is
    denied."""
    check_sources(bundle)
    policy = CompiledPolicy(bundle, with_tests=True)
    try:
        outcomes = policy.run_tests(policy.list_tests(bundle))
        failures = [f"{name}: {why}" for name, why in outcomes.items() if why is not None]
        if failures:
            raise PolicyLoadError("policy tests failed: " + "; ".join(failures))
        try:
            empty = policy.decide({})
        except PolicyUnavailable as exc:
            raise PolicyLoadError(f"no decision for an empty input: {exc}") from exc
        if empty.allow:
            raise PolicyLoadError("an empty input is allowed; the policy must fail closed")
    finally:
        policy.close()


class _PoolClosed(Exception):
    """The pool was closed (reload or shutdown) while waiting for one of its engines."""


class _Pool:
    """N compiled engines for one bundle; an evaluation borrows one, on the event loop.

    Only the event loop's thread touches it; the engines themselves run on worker threads."""

    def __init__(self, bundle: PolicyBundle, size: int) -> None:
        self.bundle = bundle
        self.revision = bundle.revision
        self.closed = False
        self._idle: list[CompiledPolicy] = []
        self._waiters: deque[asyncio.Future[None]] = deque()
        try:
            for _ in range(size):
                self._idle.append(CompiledPolicy(bundle))
        except BaseException:
            self.close()
            raise

    async def acquire(self) -> CompiledPolicy:
        """An idle engine, waiting for one; raises _PoolClosed once the pool is closed."""
        while not self._idle:
            if self.closed:
                raise _PoolClosed
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            except BaseException:
                waiter.cancel()
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)
                if self._idle and not waiter.cancelled():
                    self._wake()  # it was woken for an engine it will not take
                raise
        return self._idle.pop()

    def release(self, policy: CompiledPolicy) -> None:
        """Give back an engine that is not evaluating (closed if the pool is)."""
        if self.closed:
            policy.close()
            return
        self._idle.append(policy)
        self._wake()

    def _wake(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def close(self) -> None:
        """Close the idle engines (borrowed ones as they come back); waiters get _PoolClosed."""
        self.closed = True
        while self._idle:
            self._idle.pop().close()
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)


class PolicyEngine(Protocol):
    @property
    def revision(self) -> str: ...

    async def evaluate(self, input_value: DecisionInput | Mapping[str, Any]) -> DecisionResult: ...


class ManagedPolicyEngine(PolicyEngine, Protocol):
    @property
    def bundle(self) -> PolicyBundle:
        """The bundle being served (its `revision` is the engine's)."""
        ...

    async def reload(self, bundle: PolicyBundle | None = None) -> str: ...

    async def aclose(self) -> None: ...


@dataclass(frozen=True, slots=True)
class _Running:
    """An evaluation on a worker thread, with the engine it borrowed and when it started."""

    pool: _Pool
    policy: CompiledPolicy
    job: Future[DecisionResult]
    started: float


def _release_when_done(
    loop: asyncio.AbstractEventLoop, pool: _Pool, policy: CompiledPolicy, _: object
) -> None:
    """Done-callback of a job whose caller left: its engine goes back to its pool."""
    try:
        loop.call_soon_threadsafe(pool.release, policy)
    except RuntimeError:  # the event loop is closed: nobody will borrow it again
        policy.close()


def _close_compiled(compiling: asyncio.Future[CompiledPolicy]) -> None:
    if not compiling.cancelled() and compiling.exception() is None:
        compiling.result().close()


class InProcessOpaEngine:
    """OPA v1.20.2 in-process: a pool of `pool_size` engines, each evaluation on a worker thread.

    The engine cannot stop an evaluation. One still running at the timeout (PolicyUnavailable
    for its caller) is set aside: it keeps its engine and thread to its end, and that engine is
    closed then; a freshly compiled engine takes its place in the pool at once, so that other
    decisions are still made. At most `pool_size` engines are set aside at a time; beyond that,
    a timed-out evaluation keeps its engine in the pool, which gets it back when it ends.
    """

    def __init__(
        self, bundle: PolicyBundle, *, pool_size: int = 2, timeout: float = 1.0, check: bool = True
    ) -> None:
        if pool_size < 1:
            raise ValueError("pool_size must be at least 1")
        if check:
            check_bundle(bundle)
        self._bundle = bundle
        self._pool = _Pool(bundle, pool_size)
        self._size = pool_size
        self._timeout = timeout
        self._max_set_aside = pool_size
        self._set_aside = 0
        self._closed = False
        self._tasks: set[asyncio.Task[None]] = set()  # replacing an engine set aside
        # A thread per engine: the pool's, and those set aside (still running on theirs).
        self._executor = ThreadPoolExecutor(
            max_workers=pool_size + self._max_set_aside, thread_name_prefix="opa"
        )
        self._reload_lock = asyncio.Lock()

    @property
    def revision(self) -> str:
        return self._pool.revision

    @property
    def bundle(self) -> PolicyBundle:
        return self._bundle

    @property
    def set_aside(self) -> int:
        """Engines set aside, still running an evaluation that timed out."""
        return self._set_aside

    async def evaluate(self, input_value: DecisionInput | Mapping[str, Any]) -> DecisionResult:
        input_doc = _DECODER.decode(canonical_input(input_value))
        running: _Running | None = None
        try:
            async with asyncio.timeout(self._timeout):
                running = await self._start(input_doc)
                result = await asyncio.wrap_future(running.job)
        except TimeoutError as exc:
            if running is not None:
                self._leave(running, timed_out=True)
            raise PolicyUnavailable(f"in-process OPA timed out after {self._timeout}s") from exc
        except BaseException:
            if running is not None:
                self._leave(running, timed_out=False)
            raise
        running.pool.release(running.policy)
        return result

    async def _start(self, input_doc: Any) -> _Running:
        """Borrow an engine (waiting for one) and start the evaluation on a worker thread."""
        while True:
            if self._closed:
                raise PolicyUnavailable("in-process OPA is closed")
            pool = self._pool
            try:
                policy = await pool.acquire()
                break
            except _PoolClosed:
                continue  # reloaded meanwhile: borrow from the new pool
        try:
            job = self._executor.submit(policy.decide, input_doc)
        except RuntimeError as exc:  # the executor is shut down
            pool.release(policy)
            raise PolicyUnavailable("in-process OPA is closed") from exc
        return _Running(pool, policy, job, time.monotonic())

    def _leave(self, running: _Running, *, timed_out: bool) -> None:
        """The caller no longer waits for `running`: free its engine, now or when it ends."""
        job = running.job
        if job.cancel() or job.done():
            running.pool.release(running.policy)
            return
        if timed_out and not self._closed:
            if self._set_aside < self._max_set_aside:
                self._set_aside += 1
                _log.warning(
                    "policy.engine_set_aside",
                    revision=running.pool.revision,
                    timeout_s=self._timeout,
                    set_aside=self._set_aside,
                    limit=self._max_set_aside,
                )
                task = asyncio.get_running_loop().create_task(self._replace(running))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
                return
            _log.warning(
                "policy.engine_busy_past_timeout",
                revision=running.pool.revision,
                timeout_s=self._timeout,
                set_aside=self._set_aside,
                limit=self._max_set_aside,
            )
        loop = asyncio.get_running_loop()
        job.add_done_callback(
            functools.partial(_release_when_done, loop, running.pool, running.policy)
        )

    async def _replace(self, running: _Running) -> None:
        """Put a fresh engine in the place of `running`'s, then close that one when it ends
        (or give it back, if no fresh engine could be made)."""
        pool, policy = running.pool, running.policy
        try:
            replaced = not pool.closed and await self._compile_into(pool)
            with contextlib.suppress(Exception):  # its caller had PolicyUnavailable already
                await asyncio.wrap_future(running.job)
        except asyncio.CancelledError:  # closing: do not wait for it
            running.job.add_done_callback(lambda _: policy.close())
            raise
        self._set_aside -= 1
        if replaced or pool.closed:
            policy.close()
        else:
            pool.release(policy)
        _log.info(
            "policy.engine_set_aside_ended",
            revision=pool.revision,
            ran_s=round(time.monotonic() - running.started, 3),
            set_aside=self._set_aside,
        )

    async def _compile_into(self, pool: _Pool) -> bool:
        """Compile an engine of `pool`'s bundle off the event loop and add it to `pool`."""
        compiling = asyncio.get_running_loop().run_in_executor(None, CompiledPolicy, pool.bundle)
        try:
            fresh = await asyncio.shield(compiling)
        except asyncio.CancelledError:
            compiling.add_done_callback(_close_compiled)
            raise
        except Exception:  # noqa: BLE001 - logged; the engine set aside comes back instead
            _log.exception("policy.engine_replacement_failed", revision=pool.revision)
            return False
        pool.release(fresh)  # closed at once if the pool was closed meanwhile
        return True

    async def reload(self, bundle: PolicyBundle | None = None) -> str:
        """Compile and test a new bundle in fresh engines; swap only if that all succeeds."""
        async with self._reload_lock:
            new = bundle or await self._load_again()
            await asyncio.to_thread(check_bundle, new)
            pool = await asyncio.to_thread(_Pool, new, self._size)
            old, self._bundle, self._pool = self._pool, new, pool
            # Its idle engines are closed now, the others as in-flight evaluations return them;
            # evaluations waiting for one of them borrow from the new pool instead.
            old.close()
            if self._closed:
                pool.close()
            return new.revision

    async def _load_again(self) -> PolicyBundle:
        return await asyncio.to_thread(PolicyBundle.load, self._bundle.root)

    async def aclose(self) -> None:
        """Close the engines; never waits for an evaluation (the busy engines close at its end)."""
        self._closed = True
        self._pool.close()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._executor.shutdown(wait=False, cancel_futures=True)


# --- an OPA server over its REST API --------------------------------------------------------------


@functools.cache
def _client_errors() -> tuple[type[BaseException], ...]:
    import aiohttp
    from opa_client import errors

    return (
        aiohttp.ClientError,
        TimeoutError,
        OSError,
        ValueError,
        TypeError,
        errors.ConnectionsError,
        errors.RegoParseError,
        errors.DeletePolicyError,
        errors.DeleteDataError,
    )


# The module the service adds on an OPA server (never a bundle's: those end in .rego).
_SERVED_ID: Final = "consent_served"
_SERVED_PACKAGE: Final = "consent_served"
_SERVED_RULE: Final = "decision"


def _served_module(revision: str) -> str:
    """Rego naming `revision` and wrapping the decision: `decision` is defined exactly when
    this module is loaded (its `result` null when the policy's is undefined)."""
    return (
        f"package {_SERVED_PACKAGE}\n\n"
        f"revision := {json.dumps(revision)}\n\n"
        f"default result := null\n\n"
        f"result := data.{DECISION_DOCUMENT}\n\n"
        f'{_SERVED_RULE} := {{"revision": revision, "result": result}}\n'
    )


class OpaServerEngine:
    """An OPA server (`CONSENT_OPA_URL`) through `opa_client.AsyncOpaClient`.

    `start()` pushes the bundle (PUT /v1/data/..., PUT /v1/policies/{path}) after checking it
    in-process, then a module of its own (`_SERVED_ID`) that names the bundle's revision and
    wraps the decision; evaluation is POST /v1/data/consent_served/decision, so each decision
    carries the revision the server decided with (another process may have pushed another
    bundle since). An undefined answer there means the server lost what was pushed (it
    restarted): the bundle is pushed again and the decision retried once; meanwhile, no
    decision (PolicyUnavailable).
    """

    def __init__(
        self, url: str, bundle: PolicyBundle, *, timeout: float = 1.0, token: str | None = None
    ) -> None:
        from opa_client import AsyncOpaClient

        parts = urlsplit(url)
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise ValueError(f"{OPA_URL_ENV} must be http(s)://host[:port], got {url!r}")
        if parts.path not in {"", "/"}:
            raise ValueError(f"{OPA_URL_ENV} must not have a path, got {url!r}")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        self._client: Any = AsyncOpaClient(
            host=parts.hostname,
            port=port,
            version="v1",
            ssl=parts.scheme == "https",
            token=token,
            retries=0,
            timeout=timeout,
        )
        self._bundle = bundle
        self._pushed: PolicyBundle | None = None
        self._timeout = timeout
        self._reload_lock = asyncio.Lock()
        self._restores = 0  # pushes of the served bundle again after the server lost it

    @property
    def revision(self) -> str:
        return self._bundle.revision

    @property
    def bundle(self) -> PolicyBundle:
        return self._bundle

    async def start(self) -> None:
        """Open the HTTP session and push the bundle; raises PolicyLoadError (session closed)."""
        await self._client.__aenter__()
        try:
            await self._install(self._bundle)
        except BaseException:
            await self.aclose()
            raise

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._client.close_connection()

    async def evaluate(self, input_value: DecisionInput | Mapping[str, Any]) -> DecisionResult:
        input_doc = _DECODER.decode(canonical_input(input_value))
        restores = self._restores
        served = await self._query(input_doc)
        if served is None:  # nothing pushed there: the server restarted empty
            await self._restore(restores)
            served = await self._query(input_doc)
            if served is None:
                raise PolicyUnavailable("OPA server: the policy is not loaded there")
        revision, result = served.get("revision"), served.get("result")
        if not isinstance(revision, str) or not revision:
            raise PolicyUnavailable("OPA server: malformed answer (no policy revision)")
        if result is None:
            raise PolicyUnavailable("OPA server: the decision is undefined")
        return _to_result(result, revision)

    async def _query(self, input_doc: Any) -> dict[str, Any] | None:
        """The served document (revision and result) for `input_doc`; None if it is undefined."""
        try:
            async with asyncio.timeout(self._timeout):
                body = await self._client.query_rule(input_doc, _SERVED_PACKAGE, _SERVED_RULE)
        except _client_errors() as exc:
            raise PolicyUnavailable(f"OPA server: {exc!r}") from exc
        if not isinstance(body, dict):
            raise PolicyUnavailable("OPA server: malformed answer")
        served = body.get("result")
        if served is None:
            return None
        if not isinstance(served, dict):
            raise PolicyUnavailable("OPA server: malformed answer")
        return cast("dict[str, Any]", served)

    async def _restore(self, seen: int) -> None:
        """Push the served bundle again (it was checked when it was installed), unless another
        evaluation did since `seen` restores; raises PolicyUnavailable if the push fails."""
        async with self._reload_lock:
            if self._restores != seen:
                return
            self._restores += 1
            bundle = self._bundle
            _log.warning("policy.opa_server_lost_policy", revision=bundle.revision)
            try:
                async with asyncio.timeout(self._push_timeout(bundle)):
                    await self._push(bundle, None)
            except _client_errors() as exc:
                raise PolicyUnavailable(f"OPA server: pushing the policy again: {exc!r}") from exc
            self._pushed = bundle
            _log.info("policy.opa_server_restored", revision=bundle.revision)

    async def reload(self, bundle: PolicyBundle | None = None) -> str:
        async with self._reload_lock:
            new = bundle or await self._load_again()
            await self._install(new)
            return new.revision

    async def _load_again(self) -> PolicyBundle:
        return await asyncio.to_thread(PolicyBundle.load, self._bundle.root)

    async def _install(self, bundle: PolicyBundle) -> None:
        # The server cannot swap atomically across files; checking first keeps a broken bundle
        # from ever reaching it. A network failure halfway can leave a mix: reload again.
        await asyncio.to_thread(check_bundle, bundle)
        old = self._pushed
        try:
            async with asyncio.timeout(self._push_timeout(bundle)):
                await self._push(bundle, old)
        except _client_errors() as exc:
            raise PolicyLoadError(f"OPA server refused the bundle: {exc}") from exc
        self._bundle = self._pushed = bundle

    def _push_timeout(self, bundle: PolicyBundle) -> float:
        return self._timeout * (3 + len(bundle.modules) + len(bundle.data))

    async def _push(self, bundle: PolicyBundle, old: PolicyBundle | None) -> None:
        for path, value in sorted(bundle.data.items()):
            await self._client.update_or_create_data(value, path.replace(".", "/"))
        for name, source in sorted(bundle.modules.items()):
            await self._client.update_policy_from_string(source, name, rego_compat=False)
        # Last: from now on the server's decisions name this revision.
        await self._client.update_policy_from_string(
            _served_module(bundle.revision), _SERVED_ID, rego_compat=False
        )
        if old is not None:
            for name in sorted(old.modules.keys() - bundle.modules.keys()):
                await self._client.delete_policy(name)
            for path in sorted(old.data.keys() - bundle.data.keys()):
                await self._client.delete_data(path.replace(".", "/"))


# --- result cache ---------------------------------------------------------------------------------


class CachedPolicyEngine:
    """Bounded LRU in front of an engine, keyed by (revision, canonical input JSON).

    Decisions are a pure function of those two (time is `input.now_ns`), so a hit is exact.
    Only decisions are cached, never failures.
    """

    def __init__(self, inner: ManagedPolicyEngine, *, maxsize: int = 4096) -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be at least 1")
        self.inner = inner
        self.maxsize = maxsize
        self.hits = 0
        self.misses = 0
        self._entries: OrderedDict[tuple[str, bytes], DecisionResult] = OrderedDict()

    @property
    def revision(self) -> str:
        return self.inner.revision

    @property
    def bundle(self) -> PolicyBundle:
        return self.inner.bundle

    def __len__(self) -> int:
        return len(self._entries)

    def cached(self, canonical: bytes) -> DecisionResult | None:
        """The cached decision of the input whose `canonical_input` is `canonical`, or None
        (counted as a hit; a None is not counted: `evaluate` follows and counts the miss)."""
        key = (self.inner.revision, canonical)
        found = self._entries.get(key)
        if found is not None:
            self.hits += 1
            self._entries.move_to_end(key)
        return found

    async def evaluate(self, input_value: DecisionInput | Mapping[str, Any]) -> DecisionResult:
        key = (self.inner.revision, canonical_input(input_value))
        cached = self._entries.get(key)
        if cached is not None:
            self.hits += 1
            self._entries.move_to_end(key)
            return cached
        self.misses += 1
        result = await self.inner.evaluate(input_value)
        self._entries[(result.revision, key[1])] = result
        while len(self._entries) > self.maxsize:
            self._entries.popitem(last=False)
        return result

    def clear(self) -> None:
        self._entries.clear()

    async def reload(self, bundle: PolicyBundle | None = None) -> str:
        revision = await self.inner.reload(bundle)
        self.clear()  # old-revision entries can never hit again
        return revision

    async def aclose(self) -> None:
        self.clear()
        await self.inner.aclose()


async def open_engine(
    root: Path | None = None,
    *,
    opa_url: str | None = None,
    pool_size: int = 2,
    timeout: float = 1.0,
    cache_size: int = 4096,
    bundle: PolicyBundle | None = None,
) -> ManagedPolicyEngine:
    """The service's engine: in-process OPA, or the OPA server at `opa_url` (`CONSENT_OPA_URL`),
    behind a result cache unless `cache_size` is 0. `bundle` (already loaded) wins over `root`."""
    if bundle is None:
        bundle = await asyncio.to_thread(PolicyBundle.load, root)
    engine: ManagedPolicyEngine
    if opa_url:
        server = OpaServerEngine(opa_url, bundle, timeout=timeout)
        await server.start()
        engine = server
    else:
        engine = await asyncio.to_thread(
            lambda: InProcessOpaEngine(bundle, pool_size=pool_size, timeout=timeout)
        )
    return CachedPolicyEngine(engine, maxsize=cache_size) if cache_size > 0 else engine
