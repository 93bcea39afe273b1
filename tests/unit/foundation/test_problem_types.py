"""Every problem the service can raise has a documented type: a title in its answers and a page
at its `type` address (an unknown slug would be titled "Internal error" and its page a 404)."""

from __future__ import annotations

import importlib
import pkgutil

import consent
from consent.errors import PROBLEM_TYPES, ProblemError


def _subclasses(cls: type[ProblemError]) -> list[type[ProblemError]]:
    found: list[type[ProblemError]] = []
    for sub in cls.__subclasses__():
        found += [sub, *_subclasses(sub)]
    return found


def test_every_problem_raised_anywhere_has_a_documented_type() -> None:
    for module in pkgutil.walk_packages(consent.__path__, "consent."):
        if module.name != "consent.__main__":
            importlib.import_module(module.name)
    raised = {cls.__qualname__: cls.slug for cls in _subclasses(ProblemError)}
    assert "AuditPending" in raised  # the walk found the problems defined outside errors.py
    assert {name: slug for name, slug in raised.items() if slug not in PROBLEM_TYPES} == {}
