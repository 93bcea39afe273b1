"""A policy author's mistakes, as `consent policy test` (policy_tests.main) and a reload
(check_policy) report them: each names the file, the case or the line, and what is wrong; what
the service would refuse, the test command fails too."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from consent.decisions.engine import PolicyBundle, PolicyLoadError
from consent.decisions.policy import check_policy
from consent.decisions.policy_tests import load_cases, main
from tests.support.cli import cli_env, free_port, run_consent

pytestmark = pytest.mark.policy

ACTION = "loyalty.birthday_offer"
PURPOSE = {
    "legal_basis": "consent",
    "max_age_ns": None,
    "strictly_necessary": False,
    "material_version": 2,
}
GRANTED = {"status": "granted", "recorded_at_ns": 1_747_408_000_000_000_000, "material_version": 2}
SUBJECT = {
    "known": True,
    "jurisdiction": "DE",
    "age": 34,
    "parental_consent": False,
    "parental_consent_third_parties": False,
    "gpc": False,
    "limit_sensitive": False,
    "objections": [],
}


def _case(name: str, consents: dict[str, Any], allow: bool, reasons: list[str]) -> dict[str, Any]:
    return {
        "name": name,
        "input": {
            "now_ns": 1_750_000_000_000_000_000,
            "action": ACTION,
            "subject": dict(SUBJECT),
            "purposes": {"email_marketing": PURPOSE, "personalization": PURPOSE},
            "consents": consents,
        },
        "expect": {"allow": allow, "reasons": reasons},
    }


CASES = [
    _case(
        "both consents allow",
        {"email_marketing": GRANTED, "personalization": GRANTED},
        allow=True,
        reasons=["allowed.consent"],
    ),
    _case(
        "no personalisation consent denies",
        {"email_marketing": GRANTED},
        allow=False,
        reasons=["denied.no_consent"],
    ),
]


@pytest.fixture
def root(tmp_path: Path, policy_root: Path) -> Path:
    """The shipped policies plus a new action, `loyalty.birthday_offer`, and its cases."""
    copy = tmp_path / "policies"
    shutil.copytree(policy_root, copy)
    actions = copy / "data" / "actions.json"
    doc = json.loads(actions.read_text())
    doc["value"][ACTION] = {
        "purposes": ["email_marketing", "personalization"],
        "sale_or_share": False,
        "targeted_advertising": False,
        "sensitive": False,
        "direct_marketing": True,
        "personalization": True,
    }
    actions.write_text(json.dumps(doc, indent=1))
    (copy / "cases" / "loyalty.json").write_text(json.dumps(CASES, indent=1))
    return copy


def _edit(root: Path, relative: str, change: Callable[[str], str]) -> None:
    path = root / relative
    path.write_text(change(path.read_text()))


def _add_rule(root: Path, rule: str) -> None:
    _edit(root, "consent/decision.rego", lambda src: src + "\n" + rule)


def _run(root: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(["--root", str(root)])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_a_new_action_and_its_cases_pass(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = _run(root, capsys)
    assert code == 0, out
    assert "0 failed" in out
    check_policy(root)


def test_a_reason_code_without_a_text_fails_the_tests_as_a_reload_refuses_it(
    root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _add_rule(
        root,
        'denials contains "denied.age_unknown" if {\n'
        '\taction_name == "loyalty.birthday_offer"\n'
        "\tnot is_number(subject.age)\n}\n",
    )
    with pytest.raises(PolicyLoadError, match=r"denied\.age_unknown"):
        check_policy(root)
    code, out = _run(root, capsys)
    assert code == 1, out
    assert "denied.age_unknown" in out
    assert "reasons.json" in out or "consent.reasons" in out


def test_a_typo_in_a_case_names_the_file_and_the_case(
    root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _edit(root, "cases/loyalty.json", lambda s: s.replace('"expect"', '"expcet"', 1))
    code, out = _run(root, capsys)
    assert code == 1
    assert "loyalty.json" in out
    assert "both consents allow" in out
    assert "expcet" in out
    # the other files' cases still ran
    assert "case:consent.json::granted consent allows" not in out  # not failed


def test_a_typo_in_a_case_input_field_is_not_silently_ignored(
    root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`limit_sensitve` would otherwise be ignored by the policy: the case would test another
    input than the author meant, one the service never sends."""
    _edit(
        root,
        "cases/loyalty.json",
        lambda s: s.replace('"limit_sensitive"', '"limit_sensitve"', 1),
    )
    code, out = _run(root, capsys)
    assert code == 1, out
    assert "FAIL case:loyalty.json::both consents allow" in out
    assert "limit_sensitve" in out


def test_a_case_may_test_a_malformed_input_when_it_says_so(
    root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cases = json.loads((root / "cases" / "loyalty.json").read_text())
    del cases[0]["input"]["subject"]["known"]
    cases[0]["malformed_input"] = True
    cases[0]["expect"] = {"allow": False, "reasons": ["denied.unknown_subject"]}
    (root / "cases" / "loyalty.json").write_text(json.dumps(cases))
    code, out = _run(root, capsys)
    assert code == 0, out


def test_a_case_file_that_is_not_json_names_the_file_and_line(
    root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _edit(root, "cases/loyalty.json", lambda s: s.replace('"name"', "name", 1))
    code, out = _run(root, capsys)
    assert code == 1
    assert "loyalty.json" in out
    assert "line 3" in out, out
    with pytest.raises(ValueError, match=r"loyalty\.json"):
        load_cases(root)


def test_a_data_file_that_is_not_json_names_the_file_and_line(
    root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _edit(
        root,
        "data/actions.json",
        lambda s: s.replace('"service.essential":', ',"service.essential":', 1),
    )
    code, out = _run(root, capsys)
    assert code == 1, out
    assert "FAIL bundle:files" in out
    assert "data/actions.json" in out
    assert "line " in out, out
    with pytest.raises(PolicyLoadError, match=r"data/actions\.json.*line \d+, column \d+"):
        PolicyBundle.load(root)


def test_a_wrong_expectation_shows_expected_and_got(
    root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _edit(
        root,
        "cases/loyalty.json",
        lambda s: s.replace('"denied.no_consent"', '"denied.withdrawn"', 1),
    )
    code, out = _run(root, capsys)
    assert code == 1
    assert "FAIL case:loyalty.json::no personalisation consent denies" in out
    assert "expected ['denied.withdrawn'], got ['denied.no_consent']" in out


def test_reasons_in_another_order_say_so(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cases = json.loads((root / "cases" / "loyalty.json").read_text())
    cases[1]["input"]["subject"]["known"] = False
    cases[1]["expect"]["reasons"] = ["denied.unknown_subject", "denied.no_consent"]
    (root / "cases" / "loyalty.json").write_text(json.dumps(cases))
    code, out = _run(root, capsys)
    assert code == 1
    assert "sorted" in out, out


def test_an_action_needing_a_purpose_the_input_lacks_says_which(
    root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    actions = root / "data" / "actions.json"
    doc = json.loads(actions.read_text())
    doc["value"][ACTION]["purposes"] = ["email_marketing", "personalisation"]
    actions.write_text(json.dumps(doc))
    code, out = _run(root, capsys)
    assert code == 1
    assert "denied.unknown_purpose" in out
    assert "personalisation" in out
    assert "input.purposes" in out, out


def test_a_conflict_at_runtime_names_the_rule(
    root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _add_rule(
        root,
        'offer_kind := "email" if action_name == "loyalty.birthday_offer"\n\n'
        'offer_kind := "web" if subject.known == true\n\n'
        'denials contains "denied.unknown_action" if offer_kind == "none"\n',
    )
    code, out = _run(root, capsys)
    assert code == 1
    assert "FAIL case:loyalty.json::both consents allow" in out
    assert "eval_conflict_error" in out
    with pytest.raises(PolicyLoadError, match="eval_conflict_error"):
        check_policy(root)


def test_a_syntax_error_names_file_and_line(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _add_rule(root, "broken if {\n\tinput.now_ns > (1\n}\n")
    code, out = _run(root, capsys)
    assert code == 1, out  # the policy is wrong: not a usage error
    assert "FAIL bundle:compile" in out
    assert "consent/decision.rego:" in out
    assert "rego_parse_error" in out


@pytest.mark.parametrize("call", ["time.now_ns()", 'rand.intn("offer", 10)', 'uuid.rfc4122("x")'])
def test_a_policy_that_reads_the_clock_or_chance_is_refused(
    root: Path, capsys: pytest.CaptureFixture[str], call: str
) -> None:
    """A decision must be a function of its input: replay and the decision cache rely on it."""
    name = call.split("(", maxsplit=1)[0]
    _add_rule(
        root,
        f'# never {call} in a comment is fine\nodd := "{name}() in a string"\n\n'
        f'denials contains "denied.unknown_action" if {{\n\taction_name == "x"\n\t{call}\n}}\n',
    )
    with pytest.raises(PolicyLoadError, match=rf"consent/decision\.rego:\d+: {name}") as refused:
        check_policy(root)
    assert str(refused.value).count(name) == 1  # not the comment, not the string
    code, out = _run(root, capsys)
    assert code == 1, out
    assert "FAIL bundle:sources\n     consent/decision.rego:" in out


def test_a_misspelt_input_field_is_refused(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`input.now` is always undefined (the field is `now_ns`): the rule would never apply."""
    _add_rule(
        root,
        'denials contains "denied.unknown_action" if {\n'
        '\taction_name == "loyalty.birthday_offer"\n'
        "\tinput.now < 1735689600000000000\n"
        "\tinput.subject.birthday == null\n}\n",
    )
    with pytest.raises(PolicyLoadError, match=r"input\.now\b"):
        check_policy(root)
    code, out = _run(root, capsys)
    assert code == 1, out
    assert "input.now " in out or "input.now:" in out or "`input.now`" in out
    assert "input.subject.birthday" in out


def test_a_case_name_that_is_not_text_names_the_case(
    root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cases = json.loads((root / "cases" / "loyalty.json").read_text())
    cases[0]["name"] = ["both", "consents"]
    (root / "cases" / "loyalty.json").write_text(json.dumps(cases))
    code, out = _run(root, capsys)
    assert code == 1, out
    assert "FAIL case:loyalty.json#1" in out
    assert "$.name" in out


def test_a_rego_file_that_is_not_utf8_names_the_file(
    root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with (root / "consent" / "decision.rego").open("ab") as rego:
        rego.write("# Gr\xfc\xdfe\n".encode("latin-1"))
    with pytest.raises(PolicyLoadError, match=r"consent/decision\.rego: not UTF-8"):
        check_policy(root)
    code, out = _run(root, capsys)
    assert code == 1, out
    assert "FAIL bundle:files\n     consent/decision.rego: not UTF-8" in out


def test_a_policy_without_tests_or_cases_says_so(
    root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (root / "consent" / "decision_test.rego").unlink()
    shutil.rmtree(root / "cases")
    code, out = _run(root, capsys)
    assert code == 1, out
    assert "FAIL bundle:tests\n     nothing to test" in out


def test_a_case_file_in_a_subdirectory_is_not_silently_skipped(
    root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Cases are read from cases/*.json: one filed under cases/loyalty/ would never run, and
    the tests would pass without it."""
    (root / "cases" / "loyalty").mkdir()
    (root / "cases" / "loyalty.json").rename(root / "cases" / "loyalty" / "birthday.json")
    code, out = _run(root, capsys)
    assert code == 1, out
    assert "FAIL case:loyalty/birthday.json\n     cases/loyalty/birthday.json: not run" in out


@pytest.mark.parametrize(
    ("field", "value", "said"),
    [
        ("purposes", "email_marketing", "purposes must be a non-empty list of purpose keys"),
        ("purposes", [], "purposes must be a non-empty list of purpose keys"),
        ("purposes", ["Email Marketing"], "not purpose keys: ['Email Marketing']"),
        ("sensitive", "no", "sensitive must be true or false, got 'no'"),
        ("direct_marketting", True, "no rule of the policy reads 'direct_marketting'"),
    ],
    ids=["purposes-a-string", "no-purposes", "not-a-key", "flag-not-boolean", "misspelt-flag"],
)
def test_a_malformed_action_is_refused(
    root: Path, capsys: pytest.CaptureFixture[str], field: str, value: object, said: str
) -> None:
    """Rego reads such an entry as needing no purpose (allowed for everyone) or as a flag left
    false. The shipped Rego test test_actions_data_is_well_formed fails on it, but says only
    "undefined": the refusal names the action and what is wrong with it (also for a policy
    without that test)."""
    actions = root / "data" / "actions.json"
    doc = json.loads(actions.read_text())
    doc["value"][ACTION][field] = value
    actions.write_text(json.dumps(doc))
    with pytest.raises(PolicyLoadError, match=re.escape(f"action '{ACTION}': {said}")):
        check_policy(root)
    code, out = _run(root, capsys)
    assert code == 1, out
    assert f"FAIL bundle:actions\n     data consent.actions, action '{ACTION}': {said}" in out


# -- through the real command: exit status and help ----------------------------------------


def _break_compile(root: Path) -> None:
    _add_rule(root, "broken if {\n\tinput.now_ns > (1\n}\n")


def _fail_a_case(root: Path) -> None:
    _edit(root, "cases/loyalty.json", lambda s: s.replace('"denied.no_consent"', '"x.y"', 1))


def _as_it_is(_root: Path) -> None:
    pass


# situation -> (what is done to the policy directory, `--root`'s argument under it, exit status)
_EXIT_STATUS: dict[str, tuple[Callable[[Path], None], list[str], int]] = {
    "passes": (_as_it_is, ["--root", "."], 0),
    "does-not-compile": (_break_compile, ["--root", "."], 1),
    "fails-a-case": (_fail_a_case, ["--root", "."], 1),
    "no-such-directory": (_as_it_is, ["--root", "polcies"], 2),
    "a-file-not-a-directory": (_as_it_is, ["--root", "data/actions.json"], 2),
    "bad-argument": (_as_it_is, ["--roots", "."], 2),
}


@pytest.mark.parametrize("situation", list(_EXIT_STATUS))
def test_policy_test_exit_status(root: Path, tmp_path: Path, situation: str) -> None:
    """0: everything passed; 1: the policy is wrong, however; 2: the tests could not run."""
    prepare, (option, where), expected = _EXIT_STATUS[situation]
    prepare(root)
    path = str(root / where)
    done = run_consent("policy", "test", option, path, env=cli_env(data_dir=tmp_path / "d"))
    assert done.returncode == expected, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    if expected == 2 and option == "--root":
        assert done.stderr.startswith(f"consent policy test: {path} "), done.stderr


def test_policy_help_states_the_exit_status(tmp_path: Path) -> None:
    env = cli_env(data_dir=tmp_path / "d")
    tested = run_consent("policy", "test", "--help", env=env)
    assert tested.returncode == 0
    text = " ".join(tested.stdout.split())
    assert "Exit status: 0 every test, case and check passed; 1 the policy is wrong" in text
    assert "2 the tests could not run" in text
    reloaded = run_consent("policy", "reload", "--help", env=env)
    text = " ".join(reloaded.stdout.split())
    assert "Exit status: 0 every answering process serves the new revision" in text
    assert "3 no process answered" in text


def _unreachable_database(tmp_path: Path) -> dict[str, str]:
    return cli_env(f"postgresql://postgres@127.0.0.1:{free_port()}/consent", data_dir=tmp_path)


def test_policy_reload_of_no_directory_is_a_usage_error(root: Path, tmp_path: Path) -> None:
    """Said at once, without a database: the directory is wrong, not the policy."""
    missing = root / "polcies"
    done = run_consent(
        "policy", "reload", "--root", str(missing), env=_unreachable_database(tmp_path)
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.strip() == f"consent policy reload: {missing} does not exist"


@pytest.mark.parametrize("broken", ["syntax", "not-utf8"])
def test_policy_reload_refuses_a_broken_bundle_before_it_needs_a_database(
    root: Path, tmp_path: Path, broken: str
) -> None:
    if broken == "syntax":
        _break_compile(root)
    else:
        with (root / "consent" / "decision.rego").open("ab") as rego:
            rego.write(b"# \xff\n")
    done = run_consent("policy", "reload", "--root", str(root), env=_unreachable_database(tmp_path))
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stderr.startswith("consent policy reload: refused, nothing changed: "), done.stderr
    assert "consent/decision.rego" in done.stderr
    assert "Traceback" not in done.stderr


def test_policy_reload_without_a_database_says_the_policy_passed(
    root: Path, tmp_path: Path
) -> None:
    """The author learns the bundle is fine and that no process was asked, from this command
    (not `consent policy: ...`)."""
    done = run_consent("policy", "reload", "--root", str(root), env=_unreachable_database(tmp_path))
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stderr.startswith(
        "consent policy reload: the policy passed its checks, but the database cannot be reached"
    ), done.stderr
    assert "no running process was asked" in done.stderr
