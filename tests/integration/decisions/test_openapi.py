"""The OpenAPI document of the decision endpoints says what their answers really are."""

from __future__ import annotations

from typing import Any

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.policy]


@pytest.fixture
def engine_kind() -> str:
    return "in-process"


async def test_each_problem_of_the_audience_filter_is_documented_with_its_own_type(
    dclient: Any,
) -> None:
    """A bad header or a line too long is a `validation-error`; the 503 types belong to 503."""
    doc = (await dclient.get("/schema/openapi.json")).json()
    answers = doc["paths"]["/v1/audiences/filter"]["post"]["responses"]
    assert "/problems/validation-error" in answers["400"]["description"]
    assert "unavailable" not in answers["400"]["description"]
    assert "/problems/policy-unavailable" in answers["503"]["description"]


async def test_the_audience_answer_and_its_summary_are_documented(dclient: Any) -> None:
    doc = (await dclient.get("/schema/openapi.json")).json()
    ok = doc["paths"]["/v1/audiences/filter"]["post"]["responses"]["200"]
    assert "summary" in ok["description"]
    ref = ok["content"]["application/x-ndjson"]["schema"]["$ref"].rsplit("/", 1)[1]
    schemas = doc["components"]["schemas"]
    summary = schemas[ref]["properties"]["summary"]
    assert summary.get("description")
    # A described reference is written as a one-element oneOf/allOf around the $ref.
    target = summary.get("$ref") or next(iter(summary.get("oneOf") or summary["allOf"]))["$ref"]
    summary_ref = target.rsplit("/", 1)[1]
    fields = schemas[summary_ref]["properties"]
    assert set(fields) >= {"total", "allowed", "denied", "denied_by_reason", "invalid_lines"}
    assert all(field.get("description") for field in fields.values()), fields
