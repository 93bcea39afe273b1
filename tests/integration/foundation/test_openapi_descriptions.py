"""Every model of the OpenAPI document says what it is: a client generator turns a component's
description into its class's doc comment, and a client developer reads it before the fields."""

from __future__ import annotations

from typing import Any

import msgspec

from consent.consents import schemas as consents
from consent.decisions import engine
from consent.preferences import schemas as preferences


async def _schemas(client: Any) -> dict[str, Any]:
    answer = await client.get("/schema/openapi.json")
    assert answer.status_code == 200
    return dict(answer.json()["components"]["schemas"])


def _doc(struct: type[msgspec.Struct]) -> str:
    own = struct.__doc__  # its own: msgspec.Struct's is not a description of it
    assert own, struct
    return " ".join(own.split())


async def test_every_component_is_described(client: Any) -> None:
    """A new struct without a docstring fails here: its component would have no description."""
    schemas = await _schemas(client)
    assert len(schemas) > 50
    assert sorted(name for name, schema in schemas.items() if not schema.get("description")) == []


async def test_structs_sharing_a_name_are_each_described_by_their_own_docstring(
    client: Any,
) -> None:
    """`ConsentState` is a subject's state in the API and a purpose's state in a policy input;
    `ConsentRecorded`/`PreferenceRecorded` are API answers and also (never in the document)
    audit leaves: each component is described by the struct it documents."""
    schemas = await _schemas(client)
    expected: dict[str, type[msgspec.Struct]] = {
        "ConsentState": consents.ConsentState,
        "PolicyConsentState": engine.ConsentState,
        "ConsentRecorded": consents.ConsentRecorded,
        "PreferenceRecorded": preferences.PreferenceRecorded,
    }
    assert {name: schemas[name].get("description") for name in expected} == {
        name: _doc(struct) for name, struct in expected.items()
    }
    assert schemas["ConsentState"]["description"] != schemas["PolicyConsentState"]["description"]
