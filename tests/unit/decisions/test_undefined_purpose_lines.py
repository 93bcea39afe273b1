"""What an operator or a policy author is told of actions whose purposes no tenant defines:
a line per likely typo, one line for the rest."""

from __future__ import annotations

import pytest

from consent.decisions.actions import (
    UndefinedPurposes,
    summarise_undefined,
    undefined_purpose_lines,
)

pytestmark = pytest.mark.unit


def _missing(action: str, *purposes: str, **did_you_mean: str) -> UndefinedPurposes:
    return UndefinedPurposes(action=action, purposes=purposes, did_you_mean=did_you_mean)


def test_nothing_missing_says_nothing() -> None:
    assert undefined_purpose_lines([]) == []


def test_a_typo_has_its_line_and_the_rest_share_one() -> None:
    typo = _missing("newsletter.digest", "newsleter", newsleter="newsletter")
    rest = [_missing(f"action.{n:02}", f"purpose_{n:02}") for n in range(12)]
    lines = undefined_purpose_lines([rest[0], typo, *rest[1:]])
    assert lines == [typo.describe(), summarise_undefined(rest)]
    assert "(did you mean 'newsletter'?)" in lines[0]
    assert lines[1].startswith(
        "12 actions need purposes no tenant defines yet: "
        "action.00, action.01, action.02, action.03, action.04 and 7 more ("
    )
    assert lines[1].endswith("GET /v1/policy/actions lists what each action needs)")


def test_only_typos_have_no_summary() -> None:
    typo = _missing("newsletter.digest", "newsleter", newsleter="newsletter")
    assert undefined_purpose_lines([typo]) == [typo.describe()]


def test_five_actions_are_all_named() -> None:
    rest = [_missing(f"action.{n}", "p") for n in range(5)]
    line = summarise_undefined(rest)
    assert "action.0, action.1, action.2, action.3, action.4 (" in line
    assert "more" not in line


@pytest.mark.parametrize(
    ("purposes", "needs", "creates"),
    [
        (("analytics",), "a purpose", "creates it;"),
        (("ads", "sharing"), "purposes", "creates them;"),
    ],
)
def test_one_action_in_the_singular(purposes: tuple[str, ...], needs: str, creates: str) -> None:
    line = summarise_undefined([_missing("web.analytics", *purposes)])
    assert line.startswith(f"1 action needs {needs} no tenant defines yet: web.analytics (")
    assert f"every decision on it is denied.unknown_purpose until a tenant {creates}" in line
