"""The table-driven cases of policies/cases/*.json, one pytest case per entry, and their CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import msgspec
import pytest

from consent.decisions.engine import (
    CompiledPolicy,
    ConsentState,
    DecisionInput,
    PolicyBundle,
    PurposeDefinition,
    SubjectState,
    default_policy_root,
)
from consent.decisions.policy_tests import PolicyCase, load_cases, main, run_policy_tests
from consent.decisions.reasons import reason_codes

CASES = load_cases(default_policy_root())
# Every reason code the shipped policy can give (string literals of its serving modules).
POLICY_CODES = reason_codes(PolicyBundle.load(default_policy_root()))


@pytest.mark.policy
@pytest.mark.parametrize("case", [c for _, c in CASES], ids=[i for i, _ in CASES])
def test_case(compiled: CompiledPolicy, case: PolicyCase) -> None:
    got = compiled.decide(case.input)
    assert got.allow is case.expect.allow
    assert got.reasons == case.expect.reasons
    if case.expect.purposes is not None:
        assert got.purposes == case.expect.purposes


@pytest.mark.unit
def test_case_inputs_follow_the_contract() -> None:
    for case_id, case in CASES:
        try:
            msgspec.convert(case.input, DecisionInput)
        except msgspec.ValidationError as exc:
            pytest.fail(f"{case_id}: {exc}")


@pytest.mark.unit
def test_every_code_has_a_case_and_every_file_allows_and_denies() -> None:
    expected = {code for _, case in CASES for code in case.expect.reasons}
    assert expected >= POLICY_CODES
    by_file: dict[str, set[bool]] = {}
    for case_id, case in CASES:
        by_file.setdefault(case_id.split("::")[0], set()).add(case.expect.allow)
    assert all(outcomes == {True, False} for outcomes in by_file.values()), by_file


@pytest.mark.unit
def test_schema_and_structs_agree(policy_root: Path) -> None:
    schema = json.loads((policy_root / "schemas" / "input.json").read_text())
    props = schema["properties"]

    def fields(struct: type[msgspec.Struct]) -> set[str]:
        return {f.name for f in msgspec.structs.fields(struct)}

    assert set(schema["required"]) == fields(DecisionInput)
    assert set(props["subject"]["required"]) == fields(SubjectState)
    assert set(props["purposes"]["additionalProperties"]["required"]) == fields(PurposeDefinition)
    assert set(props["consents"]["additionalProperties"]["required"]) == fields(ConsentState)


@pytest.mark.policy
def test_runner_reports_everything(capsys: pytest.CaptureFixture[str]) -> None:
    report = run_policy_tests()
    assert report.ok
    assert len(report.passed) == len(CASES) + sum(
        1 for name in report.passed if name.startswith("rego:")
    )
    assert main([]) == 0
    assert "0 failed" in capsys.readouterr().out


@pytest.mark.policy
def test_runner_fails_on_a_wrong_expectation(
    tmp_path: Path, policy_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "policies"
    shutil.copytree(policy_root, root)
    cases = json.loads((root / "cases" / "gpc.json").read_text())
    cases[0]["expect"]["allow"] = True
    (root / "cases" / "gpc.json").write_text(json.dumps(cases))
    assert main(["--root", str(root)]) == 1
    out = capsys.readouterr().out
    assert "FAIL case:gpc.json::GPC in California denies a sale" in out
    assert "allow: expected True, got False" in out
