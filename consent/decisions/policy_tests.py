"""Run the policy tests: every `test_*` rule of the `*_test.rego` files and every table-driven case
of `policies/cases/*.json`, through the real OPA engine. `main()` is `consent policy test`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import msgspec

from consent.decisions.engine import (
    CompiledPolicy,
    DecisionResult,
    PolicyBundle,
    PolicyError,
    PolicyUnavailable,
)

__all__ = [
    "CaseExpectation",
    "Failure",
    "PolicyCase",
    "PolicyTestReport",
    "check_case",
    "format_report",
    "load_cases",
    "main",
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


class Failure(msgspec.Struct, frozen=True):
    name: str
    diff: str


class PolicyTestReport(msgspec.Struct, frozen=True):
    revision: str
    passed: tuple[str, ...]
    failed: tuple[Failure, ...]

    @property
    def ok(self) -> bool:
        return not self.failed and bool(self.passed)


def load_cases(root: Path) -> list[tuple[str, PolicyCase]]:
    """(id, case) for every entry of `root/cases/*.json`; ids are `<file>::<name>`."""
    cases: list[tuple[str, PolicyCase]] = []
    for path in sorted((root / "cases").glob("*.json")):
        entries = msgspec.json.decode(path.read_bytes(), type=list[PolicyCase])
        cases.extend((f"{path.name}::{case.name}", case) for case in entries)
    ids = [case_id for case_id, _ in cases]
    if len(set(ids)) != len(ids):
        raise ValueError("case names must be unique within a file")
    return cases


def check_case(policy: CompiledPolicy, case: PolicyCase) -> str | None:
    """None if the decision matches the expectation, else a readable diff."""
    try:
        got = policy.decide(case.input)
    except PolicyUnavailable as exc:
        return f"no decision: {exc}"
    return _diff(case.expect, got)


def _diff(expect: CaseExpectation, got: DecisionResult) -> str | None:
    lines = []
    if got.allow != expect.allow:
        lines.append(f"allow: expected {expect.allow}, got {got.allow}")
    if got.reasons != expect.reasons:
        missing = sorted(set(expect.reasons) - set(got.reasons))
        extra = sorted(set(got.reasons) - set(expect.reasons))
        lines.append(
            f"reasons: expected {list(expect.reasons)}, got {list(got.reasons)}"
            f" (missing {missing}, unexpected {extra})"
        )
    if expect.purposes is not None and got.purposes != expect.purposes:
        lines.append(f"purposes: expected {expect.purposes}, got {got.purposes}")
    return "; ".join(lines) or None


def run_policy_tests(root: Path | None = None) -> PolicyTestReport:
    bundle = PolicyBundle.load(root)
    passed: list[str] = []
    failed: list[Failure] = []
    policy = CompiledPolicy(bundle, with_tests=True)
    try:
        for test_id, why in policy.run_tests(policy.list_tests(bundle)).items():
            _record(f"rego:{test_id}", why, passed, failed)
        for case_id, case in load_cases(bundle.root):
            _record(f"case:{case_id}", check_case(policy, case), passed, failed)
    finally:
        policy.close()
    return PolicyTestReport(bundle.revision, tuple(passed), tuple(failed))


def _record(name: str, why: str | None, passed: list[str], failed: list[Failure]) -> None:
    if why is None:
        passed.append(name)
    else:
        failed.append(Failure(name, why))


def format_report(report: PolicyTestReport, *, verbose: bool = False) -> str:
    lines = [f"PASS {name}" for name in report.passed] if verbose else []
    lines += [f"FAIL {failure.name}\n     {failure.diff}" for failure in report.failed]
    status = "ok" if report.ok else "FAILED"
    lines.append(
        f"{status}: {len(report.passed)} passed, {len(report.failed)} failed"
        f" (policy revision {report.revision})"
    )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="consent policy test", description="Run the Rego tests and policy cases."
    )
    parser.add_argument("--root", type=Path, default=None, help="policy directory")
    parser.add_argument("-v", "--verbose", action="store_true", help="list passing tests too")
    args = parser.parse_args(argv)
    try:
        report = run_policy_tests(args.root)
    except (PolicyError, ValueError, OSError) as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    sys.stdout.write(format_report(report, verbose=args.verbose) + "\n")
    return 0 if report.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
