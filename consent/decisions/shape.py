"""Normalised policy inputs: the cache key that makes subjects with the same state share a decision.

A decision is a pure function of (policy revision, input). Raw inputs differ in values that the
policy only ever compares, so `normalise` maps them to canonical values that keep exactly the
outcome of every comparison the policy makes:

- `now_ns` becomes the constant `T0`;
- per consent with a maximum age, `recorded_at_ns` becomes `T0 - max_age_ns` when
  `recorded_at_ns + max_age_ns >= now_ns` (still valid) and `T0 - max_age_ns - 1` otherwise, so
  Rego still decides expiry, on values that say only which side of the limit the consent is on;
  without a maximum age (or without a catalogue entry) it becomes `T0`;
- material versions become 1 for the purpose and 1 (current) or 0 (stale) for the consent;
- only the purposes the action needs (`data.consent.actions[action].purposes` of the bundle being
  served) are kept, in the catalogue, the consents and the objections.

The policy also compares `now_ns` with the day from which a Global Privacy Control signal has
legal effect in the subject's jurisdiction (`data.consent.jurisdictions.gpc_legal_effect`). `T0`
is after every such day, so an input with a GPC signal in a jurisdiction whose day is after
`now_ns` (or cannot be read) is left as it is: normalising it would move it past that day.

That is an assumption about the policy; `check_normalisation` tests it on the policy's own cases
before a bundle is served, and the test suite checks it on random inputs.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, TypeAlias

import msgspec

from consent.decisions.engine import (
    CompiledPolicy,
    ConsentState,
    DecisionInput,
    PolicyBundle,
    PolicyLoadError,
    PolicyUnavailable,
    PurposeDefinition,
)

__all__ = [
    "ACTIONS_DATA_PATH",
    "JURISDICTIONS_DATA_PATH",
    "T0",
    "GpcDays",
    "check_normalisation",
    "gpc_days",
    "needed_purposes",
    "normalise",
]

ACTIONS_DATA_PATH: Final = "consent.actions"
JURISDICTIONS_DATA_PATH: Final = "consent.jurisdictions"
# A fixed "now" for normalised inputs: far enough from 0 that every recorded_at_ns stays >= 0.
T0: Final = 4_000_000_000_000_000_000
_MAX_NORMALISABLE_AGE: Final = T0 - 1


def needed_purposes(bundle: PolicyBundle, action: str) -> tuple[str, ...]:
    """The purposes `action` needs under `bundle` (empty for an unknown action)."""
    actions = bundle.data.get(ACTIONS_DATA_PATH, {})
    entry = actions.get(action)
    if not isinstance(entry, dict):
        return ()
    purposes = entry.get("purposes")
    if not isinstance(purposes, list):
        return ()
    return tuple(dict.fromkeys(p for p in purposes if isinstance(p, str)))


# Jurisdiction -> the first nanosecond (UTC) of the day from which GPC has legal effect there,
# None where the day cannot be read; None as a whole when the data cannot be read.
GpcDays: TypeAlias = Mapping[str, int | None] | None

_ISO_DAY: Final = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_gpc_days_by_revision: dict[str, GpcDays] = {}
_GPC_DAYS_KEPT: Final = 16  # revisions whose days are remembered


def _day_ns(value: object) -> int | None:
    if not isinstance(value, str) or not _ISO_DAY.fullmatch(value):
        return None
    try:
        day = datetime.strptime(value, "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        return None
    return int(day.timestamp()) * 1_000_000_000


def gpc_days(bundle: PolicyBundle) -> GpcDays:
    """`gpc_legal_effect` of `bundle` (see `GpcDays`), read once per revision."""
    if bundle.revision in _gpc_days_by_revision:
        return _gpc_days_by_revision[bundle.revision]
    effect = bundle.data.get(JURISDICTIONS_DATA_PATH, {}).get("gpc_legal_effect")
    found: GpcDays = (
        {j: _day_ns(day) for j, day in effect.items() if isinstance(j, str)}
        if isinstance(effect, dict)
        else None
    )
    if len(_gpc_days_by_revision) >= _GPC_DAYS_KEPT:
        _gpc_days_by_revision.clear()
    _gpc_days_by_revision[bundle.revision] = found
    return found


def _gpc_depends_on_time(value: DecisionInput, days: GpcDays) -> bool:
    """Whether GPC's legal effect for this input could differ between `now_ns` and `T0`."""
    subject = value.subject
    if not subject.gpc or subject.jurisdiction is None:
        return False
    if days is None:
        return True
    if subject.jurisdiction not in days:
        return False
    start = days[subject.jurisdiction]
    return start is None or (value.now_ns < start) != (start > T0)


def _normal_consent(
    consent: ConsentState, purpose: PurposeDefinition | None, now_ns: int
) -> ConsentState:
    if purpose is None:
        return ConsentState(status=consent.status, recorded_at_ns=T0, material_version=0)
    current = consent.material_version >= purpose.material_version
    max_age = purpose.max_age_ns
    if max_age is None:
        recorded = T0
    elif consent.recorded_at_ns + max_age >= now_ns:
        recorded = T0 - max_age
    else:
        recorded = T0 - max_age - 1
    return ConsentState(
        status=consent.status, recorded_at_ns=recorded, material_version=1 if current else 0
    )


def normalise(value: DecisionInput, needed: tuple[str, ...], *, gpc: GpcDays) -> DecisionInput:
    """The canonical input with the same decision as `value` (see the module docstring);
    `gpc` is `gpc_days` of the bundle that decides it.

    Returns `value` itself when a value is out of the range the mapping covers, or when the
    legal effect of its GPC signal depends on `now_ns`.
    """
    if any(
        p.max_age_ns is not None and not 0 <= p.max_age_ns <= _MAX_NORMALISABLE_AGE
        for p in value.purposes.values()
    ) or _gpc_depends_on_time(value, gpc):
        return value
    keep = set(needed)
    purposes = {
        key: msgspec.structs.replace(purpose, material_version=1)
        for key, purpose in value.purposes.items()
        if key in keep
    }
    consents = {
        key: _normal_consent(consent, value.purposes.get(key), value.now_ns)
        for key, consent in value.consents.items()
        if key in keep
    }
    subject = msgspec.structs.replace(
        value.subject,
        objections=tuple(sorted(o for o in set(value.subject.objections) if o in keep)),
    )
    return DecisionInput(
        now_ns=T0, action=value.action, subject=subject, purposes=purposes, consents=consents
    )


# -- the guard: normalisation must not change any decision of the policy's own cases -----------


def _variants(raw: DecisionInput) -> list[DecisionInput]:
    """The case itself, plus versions with an unrelated purpose and consent added and with time
    shifted (both must not change anything)."""
    extra = {
        "zz_unrelated": PurposeDefinition(
            legal_basis="consent", max_age_ns=1, strictly_necessary=False, material_version=7
        )
    }
    extra_consent = {
        "zz_unrelated": ConsentState(status="withdrawn", recorded_at_ns=0, material_version=0)
    }
    shift = 86_400_000_000_000
    shifted = DecisionInput(
        now_ns=raw.now_ns + shift,
        action=raw.action,
        subject=raw.subject,
        purposes=raw.purposes,
        consents={
            k: msgspec.structs.replace(c, recorded_at_ns=c.recorded_at_ns + shift)
            for k, c in raw.consents.items()
        },
    )
    padded = msgspec.structs.replace(
        raw,
        purposes={**raw.purposes, **extra},
        consents={**raw.consents, **extra_consent},
        subject=msgspec.structs.replace(
            raw.subject, objections=(*raw.subject.objections, "zz_unrelated")
        ),
    )
    return [raw, shifted, padded]


def _case_inputs(root: Path) -> list[tuple[str, DecisionInput]]:
    found: list[tuple[str, DecisionInput]] = []
    for path in sorted((root / "cases").glob("*.json")):
        try:
            entries = msgspec.json.decode(path.read_bytes(), type=list[dict[str, Any]])
        except msgspec.DecodeError as exc:
            raise PolicyLoadError(f"cases/{path.name}: {exc}") from exc
        for entry in entries:
            try:
                value = msgspec.convert(entry.get("input"), DecisionInput)
            except msgspec.ValidationError:
                continue  # cases of malformed inputs test the policy, not normalisation
            found.append((f"{path.name}::{entry.get('name')}", value))
    return found


def _outcome(policy: CompiledPolicy, value: DecisionInput) -> tuple[bool, tuple[str, ...], Any]:
    result = policy.decide(msgspec.to_builtins(value))
    return result.allow, result.reasons, result.purposes


def check_normalisation(
    bundle: PolicyBundle, extra: Mapping[str, DecisionInput] | None = None
) -> int:
    """Raise PolicyLoadError unless every case input (`<root>/cases/*.json`, plus `extra`) and
    its variants decide the same raw and normalised. Returns the number of inputs checked."""
    inputs = _case_inputs(bundle.root) + list((extra or {}).items())
    gpc = gpc_days(bundle)
    policy = CompiledPolicy(bundle)
    checked = 0
    try:
        for name, case in inputs:
            for raw in _variants(case):
                needed = needed_purposes(bundle, raw.action)
                try:
                    expected = _outcome(policy, raw)
                    got = _outcome(policy, normalise(raw, needed, gpc=gpc))
                except PolicyUnavailable as exc:
                    raise PolicyLoadError(f"{name}: no decision: {exc}") from exc
                if got != expected:
                    raise PolicyLoadError(
                        f"{name}: the normalised input decides {got[:2]}, the input {expected[:2]};"
                        " the policy compares inputs in a way the decision cache does not cover"
                    )
                checked += 1
    finally:
        policy.close()
    return checked
