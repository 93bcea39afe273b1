"""Run the policy tests: every `test_*` rule of the `*_test.rego` files and every table-driven case
of `policies/cases/*.json`, through the real OPA engine, and the checks the service makes before
it serves a bundle (so that what passes here is not refused on reload). `main()` is
`consent policy test`.

A case's input must be one the service could send (`DecisionInput`: a misspelt field would
otherwise be ignored by the policy and the case test another input than its author meant),
unless the case says `"malformed_input": true` (it tests how the policy fails closed).

With a database at hand (`CONSENT_DATABASE_URL`), it also warns of actions that need a purpose
no tenant defines (a misspelt purpose key in the policy's data denies every decision on the
action); a warning does not fail the tests. Exit status: `EXIT_STATUS`.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections import Counter
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any, Final

import msgspec

from consent.decisions.actions import (
    action_problems,
    undefined_purpose_lines,
    undefined_purposes,
)
from consent.decisions.engine import (
    CompiledPolicy,
    DecisionInput,
    DecisionResult,
    PolicyBundle,
    PolicyLoadError,
    PolicyUnavailable,
    default_policy_root,
    json_error,
    source_problems,
)
from consent.decisions.policy import load_bundle, policy_dir_problem

__all__ = [
    "EXIT_STATUS",
    "CaseExpectation",
    "Failure",
    "PolicyCase",
    "PolicyTestReport",
    "check_case",
    "format_report",
    "load_cases",
    "main",
    "read_cases",
    "run_policy_tests",
]


class CaseExpectation(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    allow: bool
    reasons: tuple[str, ...]
    purposes: dict[str, str] | None = None  # checked only when given


class PolicyCase(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    name: str
    input: dict[str, Any]
    expect: CaseExpectation
    # The input is deliberately not one the service sends (missing or mistyped parts).
    malformed_input: bool = False


class Failure(msgspec.Struct, frozen=True):
    name: str
    diff: str


EXIT_STATUS: Final = (
    "Exit status: 0 every test, case and check passed; 1 the policy is wrong (it does not "
    "compile, a data or case file is malformed, a Rego test or case fails, a reload would "
    "refuse it, or there is nothing to test); 2 the tests could not run (bad arguments or "
    "configuration, no policy directory, a file that cannot be read). Warnings (an action "
    "needing a purpose no tenant defines, checked when CONSENT_DATABASE_URL is set) do not "
    "change it."
)


class PolicyTestReport(msgspec.Struct, frozen=True):
    revision: str  # "" when the bundle could not be read
    passed: tuple[str, ...]
    failed: tuple[Failure, ...]
    warnings: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.failed and bool(self.passed)


def read_cases(root: Path) -> tuple[list[tuple[str, PolicyCase]], list[Failure]]:
    """(id, case) for every well-formed entry of `root/cases/*.json` (ids `<file>::<name>`),
    and a failure for each file, entry or input that is not, named by file and case."""
    cases: list[tuple[str, PolicyCase]] = []
    problems: list[Failure] = []
    for path in sorted((root / "cases").glob("*.json")):
        content = path.read_bytes()
        try:
            entries = msgspec.json.decode(content, type=list[Any])
        except msgspec.ValidationError as exc:
            problems.append(Failure(f"case:{path.name}", f"cases/{path.name}: {exc}"))
            continue
        except msgspec.DecodeError as exc:
            problems.append(
                Failure(f"case:{path.name}", f"cases/{path.name}: {json_error(content, exc)}")
            )
            continue
        names = Counter(
            e["name"] for e in entries if isinstance(e, dict) and isinstance(e.get("name"), str)
        )
        for number, entry in enumerate(entries, start=1):
            name = entry.get("name") if isinstance(entry, dict) else None
            label = f"{path.name}::{name}" if isinstance(name, str) else f"{path.name}#{number}"
            try:
                case = msgspec.convert(entry, PolicyCase)
            except msgspec.ValidationError as exc:
                problems.append(
                    Failure(f"case:{label}", f"case {number} of cases/{path.name}: {exc}")
                )
                continue
            if names[case.name] > 1:
                problems.append(
                    Failure(
                        f"case:{label}",
                        f"cases/{path.name}: {names[case.name]} cases have this name",
                    )
                )
                continue
            if not case.malformed_input:
                try:
                    msgspec.convert(case.input, DecisionInput)
                except msgspec.ValidationError as exc:
                    problems.append(
                        Failure(
                            f"case:{label}",
                            f"input: {exc} (not an input the service sends; if the case tests "
                            'one, say "malformed_input": true)',
                        )
                    )
                    continue
            cases.append((label, case))
    for path in sorted((root / "cases").glob("*/**/*.json")):
        relative = path.relative_to(root / "cases").as_posix()
        problems.append(
            Failure(
                f"case:{relative}",
                f"cases/{relative}: not run: case files are cases/*.json, not in a subdirectory",
            )
        )
    return cases, problems


def load_cases(root: Path) -> list[tuple[str, PolicyCase]]:
    """(id, case) for every entry of `root/cases/*.json`; ids are `<file>::<name>`. Raises
    ValueError naming every malformed file, case or input."""
    cases, problems = read_cases(root)
    if problems:
        raise ValueError("; ".join(f"{p.name}: {p.diff}" for p in problems))
    return cases


def check_case(
    policy: CompiledPolicy, case: PolicyCase, bundle: PolicyBundle | None = None
) -> str | None:
    """None if the decision matches the expectation, else a readable diff (with `bundle`, a
    hint when the action needs purposes the case's input lacks)."""
    try:
        got = policy.decide(case.input)
    except PolicyUnavailable as exc:
        return f"no decision: {exc}"
    diff = _diff(case.expect, got)
    if diff is not None and bundle is not None:
        diff += _missing_purposes_hint(bundle, case, got)
    return diff


def _diff(expect: CaseExpectation, got: DecisionResult) -> str | None:
    lines = []
    if got.allow != expect.allow:
        lines.append(f"allow: expected {expect.allow}, got {got.allow}")
    if got.reasons != expect.reasons:
        missing = sorted(set(expect.reasons) - set(got.reasons))
        extra = sorted(set(got.reasons) - set(expect.reasons))
        why = (
            "the same codes in another order: the policy gives them sorted"
            if sorted(expect.reasons) == sorted(got.reasons)
            else f"missing {missing}, unexpected {extra}"
        )
        lines.append(f"reasons: expected {list(expect.reasons)}, got {list(got.reasons)} ({why})")
    if expect.purposes is not None and got.purposes != expect.purposes:
        lines.append(f"purposes: expected {expect.purposes}, got {got.purposes}")
    return "; ".join(lines) or None


def _missing_purposes_hint(bundle: PolicyBundle, case: PolicyCase, got: DecisionResult) -> str:
    from consent.decisions.shape import needed_purposes

    if "denied.unknown_purpose" not in got.reasons:
        return ""
    action = case.input.get("action")
    given = case.input.get("purposes")
    if not isinstance(action, str) or not isinstance(given, dict):
        return ""
    needed = needed_purposes(bundle, action)
    lacking = [key for key in needed if key not in given]
    if not lacking:
        return ""
    return (
        f" (hint: {action} needs the purposes {list(needed)} (data consent.actions);"
        f" input.purposes lacks {lacking})"
    )


def run_policy_tests(
    root: Path | None = None, defined_purposes: Collection[str] | None = None
) -> PolicyTestReport:
    """Every Rego test and case; then, if they all pass, the service's own checks of a bundle
    (reported only when one fails: `bundle:<check>`). A bundle that cannot be read
    (`bundle:files`) or compiled (`bundle:compile`) is a failure too. With
    `defined_purposes` (every tenant's purpose keys), a warning for each action that needs
    another with a likely typo, and one for all the others (`undefined_purpose_lines`)."""
    try:
        bundle = load_bundle(root or default_policy_root())
    except PolicyLoadError as exc:
        return PolicyTestReport("", (), (Failure("bundle:files", str(exc)),))
    warnings = tuple(undefined_purpose_lines(undefined_purposes(bundle, defined_purposes or ())))
    passed: list[str] = []
    failed: list[Failure] = [Failure("bundle:sources", p) for p in source_problems(bundle)]
    failed += [Failure("bundle:actions", p) for p in action_problems(bundle)]
    try:
        policy = CompiledPolicy(bundle, with_tests=True)
    except PolicyLoadError as exc:
        failed.append(Failure("bundle:compile", str(exc)))
        return PolicyTestReport(bundle.revision, (), tuple(failed), warnings)
    try:
        for test_id, why in policy.run_tests(policy.list_tests(bundle)).items():
            _record(f"rego:{test_id}", why, passed, failed)
        cases, problems = read_cases(bundle.root)
        failed += problems
        for case_id, case in cases:
            _record(f"case:{case_id}", check_case(policy, case, bundle), passed, failed)
        if not failed:
            failed += _serving_failures(policy, bundle)
        if not passed and not failed:
            failed.append(
                Failure(
                    "bundle:tests",
                    "nothing to test: no test_* rule in a *_test.rego file, no case in "
                    "cases/*.json",
                )
            )
    finally:
        policy.close()
    return PolicyTestReport(bundle.revision, tuple(passed), tuple(failed), warnings)


def _serving_failures(policy: CompiledPolicy, bundle: PolicyBundle) -> list[Failure]:
    """What `consent policy reload` and the service would refuse the bundle for, beyond its
    tests and cases: an empty input not denied, reason codes without a text, cases the
    decision cache's normalisation would decide otherwise."""
    from consent.decisions.reasons import check_reason_texts
    from consent.decisions.shape import check_normalisation

    failures: list[Failure] = []
    try:
        if policy.decide({}).allow:
            failures.append(Failure("bundle:fails_closed", "an empty input is allowed"))
    except PolicyUnavailable as exc:
        failures.append(Failure("bundle:fails_closed", f"no decision for an empty input: {exc}"))
    for name, check in (
        ("bundle:reason_texts", check_reason_texts),
        ("bundle:normalisation", check_normalisation),
    ):
        try:
            check(bundle)
        except PolicyLoadError as exc:
            failures.append(Failure(name, str(exc)))
    return failures


def _record(name: str, why: str | None, passed: list[str], failed: list[Failure]) -> None:
    if why is None:
        passed.append(name)
    else:
        failed.append(Failure(name, why))


def format_report(report: PolicyTestReport, *, verbose: bool = False) -> str:
    lines = [f"PASS {name}" for name in report.passed] if verbose else []
    lines += [f"FAIL {failure.name}\n     {failure.diff}" for failure in report.failed]
    lines += [f"WARN {warning}" for warning in report.warnings]
    status = "ok" if report.ok else "FAILED"
    counts = f"{len(report.passed)} passed, {len(report.failed)} failed"
    if report.warnings:
        counts += f", {len(report.warnings)} warning" + ("s" if len(report.warnings) > 1 else "")
    revision = f" (policy revision {report.revision})" if report.revision else ""
    lines.append(f"{status}: {counts}{revision}")
    return "\n".join(lines)


def defined_purpose_keys(database_url: str, timeout: float = 3.0) -> frozenset[str]:
    """Every tenant's purpose keys, read on a connection of its own (raises OSError,
    TimeoutError, asyncpg's errors when the database cannot answer)."""
    import asyncpg

    async def fetch() -> frozenset[str]:
        conn = await asyncpg.connect(database_url, timeout=timeout)
        try:
            rows = await conn.fetch("select distinct key from purpose", timeout=timeout)
        finally:
            await conn.close(timeout=timeout)
        return frozenset(row["key"] for row in rows)

    return asyncio.run(fetch())


def _purposes_or_none(database_url: str | None) -> frozenset[str] | None:
    """`defined_purpose_keys`, or None (with a note on stderr) when it cannot be had."""
    if database_url is None:
        return None
    import asyncpg

    try:
        return defined_purpose_keys(database_url)
    except (OSError, ValueError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        sys.stderr.write(
            "consent policy test: note: the purposes actions need were not compared with the "
            f"tenants' (CONSENT_DATABASE_URL: {type(exc).__name__})\n"
        )
        return None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="consent policy test",
        description="Run every test_* rule of the *_test.rego files and every case of "
        "cases/*.json through the real OPA engine, and the checks a reload makes.",
        epilog=EXIT_STATUS,
    )
    parser.add_argument(
        "--root", type=Path, default=None, help="policy directory (default: the bundled one)"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="list passing tests too")
    return parser


def main(argv: Sequence[str] | None = None, *, database_url: str | None = None) -> int:
    """`consent policy test`: 0 all passed, 1 the policy is wrong, 2 the tests could not run
    (`EXIT_STATUS`). With `database_url`, warns of actions needing undefined purposes."""
    args = build_parser().parse_args(argv)
    root: Path = args.root or default_policy_root()
    problem = policy_dir_problem(root)
    if problem is not None:
        sys.stderr.write(f"consent policy test: {problem}\n")
        return 2
    defined = _purposes_or_none(database_url)
    try:
        report = run_policy_tests(root, defined)
    except OSError as exc:
        where = exc.filename if exc.filename is not None else root
        sys.stderr.write(f"consent policy test: cannot read {where}: {exc.strerror or exc}\n")
        return 2
    sys.stdout.write(format_report(report, verbose=args.verbose) + "\n")
    return 0 if report.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
