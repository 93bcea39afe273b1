"""The actions of the policy being served and what each needs (pure; no I/O): for a tenant
setting up its catalogue, which purposes to create before a decision can allow anything; for a
policy author, which actions need a purpose no tenant has (a misspelt key in the data)."""

from __future__ import annotations

import difflib
import re
from collections.abc import Collection, Sequence
from typing import Final

import msgspec

from consent.decisions.engine import PolicyBundle
from consent.decisions.schemas import ActionInfo
from consent.decisions.shape import ACTIONS_DATA_PATH, needed_purposes

__all__ = [
    "ACTION_FLAGS",
    "SUMMARY_SHOWN",
    "UndefinedPurposes",
    "action_problems",
    "describe_actions",
    "summarise_undefined",
    "undefined_purpose_lines",
    "undefined_purposes",
]

# The flags of an action the shipped policy reads (each true or false; absent reads as false).
ACTION_FLAGS: Final = (
    "sale_or_share",
    "targeted_advertising",
    "sensitive",
    "direct_marketing",
    "personalization",
)
_PURPOSE_KEY: Final = re.compile(r"[a-z][a-z0-9_.-]{0,63}")  # as the catalogue's purpose keys
# How many actions the one line about actions without a likely typo names (then "and N more").
SUMMARY_SHOWN: Final = 5


def describe_actions(bundle: PolicyBundle, catalogue: Collection[str]) -> list[ActionInfo]:
    """Every action of `bundle`, by name, with the purposes it needs and those of them missing
    from `catalogue` (a tenant's purpose keys). A flag the data does not set is false."""
    actions = bundle.data.get(ACTIONS_DATA_PATH, {})
    described: list[ActionInfo] = []
    for name in sorted(actions):
        entry = actions[name]
        if not isinstance(entry, dict):
            continue
        needed = list(needed_purposes(bundle, name))
        described.append(
            ActionInfo(
                action=name,
                purposes=needed,
                missing_purposes=[key for key in needed if key not in catalogue],
                sale_or_share=entry.get("sale_or_share") is True,
                targeted_advertising=entry.get("targeted_advertising") is True,
                sensitive=entry.get("sensitive") is True,
                personalization=entry.get("personalization") is True,
                direct_marketing=entry.get("direct_marketing") is True,
            )
        )
    return described


class UndefinedPurposes(msgspec.Struct, frozen=True, kw_only=True):
    """An action of the policy that needs purposes no tenant defines: every decision on it is
    `denied.unknown_purpose` until a tenant creates them (or the data names them right)."""

    action: str
    purposes: tuple[str, ...]
    # A defined key close to each undefined one (a likely misspelling), where there is one.
    did_you_mean: dict[str, str] = msgspec.field(default_factory=dict)

    def describe(self) -> str:
        """One line for an operator or a policy author."""
        keys = ", ".join(
            f"{key!r} (did you mean {self.did_you_mean[key]!r}?)"
            if key in self.did_you_mean
            else repr(key)
            for key in self.purposes
        )
        noun = "purpose" if len(self.purposes) == 1 else "purposes"
        return (
            f"action {self.action!r} needs the {noun} {keys}, which no tenant defines: every "
            f"decision on it is denied.unknown_purpose until a tenant creates "
            f"{'it' if len(self.purposes) == 1 else 'them'} (data {ACTIONS_DATA_PATH})"
        )


def undefined_purposes(bundle: PolicyBundle, defined: Collection[str]) -> list[UndefinedPurposes]:
    """The actions of `bundle` (by name) that need a purpose key not in `defined` (the keys
    any tenant has). None when `defined` is empty: no tenant has a purpose yet (a new
    installation), so every action would be named and none of them would be news."""
    if not defined:
        return []
    keys = set(defined)
    known = sorted(keys)
    found: list[UndefinedPurposes] = []
    for info in describe_actions(bundle, keys):
        if not info.missing_purposes:
            continue
        guesses = {}
        for key in info.missing_purposes:
            close = difflib.get_close_matches(key, known, n=1, cutoff=0.8)
            if close:
                guesses[key] = close[0]
        found.append(
            UndefinedPurposes(
                action=info.action, purposes=tuple(info.missing_purposes), did_you_mean=guesses
            )
        )
    return found


def summarise_undefined(found: Sequence[UndefinedPurposes], shown: int = SUMMARY_SHOWN) -> str:
    """One line for actions of `found` whose purposes no tenant defines and that are no likely
    typo: usually purposes nobody has created yet (a tenant that uses a few actions), so they
    are counted and the first `shown` named, not described one by one; GET /v1/policy/actions
    lists every action with what it needs."""
    names = sorted(item.action for item in found)
    listed = ", ".join(names[:shown])
    if len(names) > shown:
        listed += f" and {len(names) - shown} more"
    pointer = "GET /v1/policy/actions lists what each action needs"
    if len(names) == 1:
        one = len(found[0].purposes) == 1
        return (
            f"1 action needs {'a purpose' if one else 'purposes'} no tenant defines yet: "
            f"{listed} (every decision on it is denied.unknown_purpose until a tenant creates "
            f"{'it' if one else 'them'}; {pointer})"
        )
    return (
        f"{len(names)} actions need purposes no tenant defines yet: {listed} (every decision "
        f"on them is denied.unknown_purpose until a tenant creates their purposes; {pointer})"
    )


def undefined_purpose_lines(found: Sequence[UndefinedPurposes]) -> list[str]:
    """What to tell an operator or a policy author of `found` (`undefined_purposes`): a line
    for each action with a likely typo (a purpose key close to a defined one, the "did you
    mean" case), then one line for all the others (`summarise_undefined`), if any."""
    lines = [item.describe() for item in found if item.did_you_mean]
    rest = [item for item in found if not item.did_you_mean]
    if rest:
        lines.append(summarise_undefined(rest))
    return lines


def action_problems(bundle: PolicyBundle) -> list[str]:
    """What is wrong with the action entries of the policy's data, each naming the action:
    `purposes` that is not a non-empty list of purpose keys (the policy would need no purpose
    at all, and allow the action for everyone), a flag that is not true or false (it would read
    as false), a field no rule of the policy reads (a misspelt flag: `direct_marketting`)."""
    actions = bundle.data.get(ACTIONS_DATA_PATH, {})
    sources = "\n".join(bundle.modules.values())
    problems: list[str] = []
    for name in sorted(actions):
        entry = actions[name]
        where = f"data {ACTIONS_DATA_PATH}, action {name!r}"
        if not isinstance(entry, dict):
            problems.append(f"{where}: not an object")
            continue
        purposes = entry.get("purposes")
        if not isinstance(purposes, list) or not purposes:
            problems.append(
                f"{where}: purposes must be a non-empty list of purpose keys, got "
                f"{purposes!r} (an action that needs no purpose would be allowed for everyone)"
            )
        else:
            bad = [p for p in purposes if not isinstance(p, str) or not _PURPOSE_KEY.fullmatch(p)]
            if bad:
                problems.append(f"{where}: not purpose keys: {bad!r}")
        for key, value in sorted(entry.items()):
            if key == "purposes":
                continue
            if key in ACTION_FLAGS:
                if not isinstance(value, bool):
                    problems.append(f"{where}: {key} must be true or false, got {value!r}")
            elif not re.search(rf"\b{re.escape(key)}\b", sources):
                problems.append(
                    f"{where}: no rule of the policy reads {key!r} (misspelt? the flags are "
                    f"{', '.join(ACTION_FLAGS)})"
                )
    return problems
