"""The actions of the policy being served and what each needs (pure; no I/O): for a tenant
setting up its catalogue, which purposes to create before a decision can allow anything."""

from __future__ import annotations

from collections.abc import Collection

from consent.decisions.engine import PolicyBundle
from consent.decisions.schemas import ActionInfo
from consent.decisions.shape import ACTIONS_DATA_PATH, needed_purposes

__all__ = ["describe_actions"]


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
