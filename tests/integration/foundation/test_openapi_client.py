"""A typed client generated from the served OpenAPI document (openapi-python-client, a dev
dependency) works: it generates without dropping an operation or a model, and the README's quick
start runs through it against the app, each answer parsed into its documented model."""

from __future__ import annotations

import enum
import importlib
import re
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import transport as litestar_transport
from openapi_python_client.strings import snake_case

from tests.conftest import Tenant

PACKAGE = "consent_generated_client"
# The one operation a generated client cannot call: its body and its answer are NDJSON streams.
STREAMED = ("post", "/v1/audiences/filter")


class Generated:
    """The generated package, importable while the test runs."""

    def __init__(self, document: dict[str, Any], log: str) -> None:
        self.document = document
        self.log = log

    def module(self, name: str) -> Any:
        return importlib.import_module(f"{PACKAGE}.{name}")

    def models(self) -> Any:
        return self.module("models")


@pytest.fixture
async def generated(client: Any, tmp_path: Path) -> AsyncIterator[Generated]:
    """Generates the client from the served document into a temporary directory (~1 s)."""
    answer = await client.get("/schema/openapi.json")
    assert answer.status_code == 200
    document = tmp_path / "openapi.json"
    document.write_bytes(answer.content)
    config = tmp_path / "config.yaml"
    config.write_text(
        f"project_name_override: {PACKAGE}\npackage_name_override: {PACKAGE}\npost_hooks: []\n"
    )
    generator = Path(sys.executable).with_name("openapi-python-client")
    run = subprocess.run(
        [
            str(generator),
            "generate",
            "--path",
            str(document),
            "--config",
            str(config),
            "--meta",
            "none",
            "--output-path",
            str(tmp_path / PACKAGE),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    sys.path.insert(0, str(tmp_path))
    try:
        yield Generated(answer.json(), run.stdout + run.stderr)
    finally:
        sys.path.remove(str(tmp_path))
        for name in [m for m in sys.modules if m == PACKAGE or m.startswith(f"{PACKAGE}.")]:
            del sys.modules[name]


async def test_the_client_generates_every_operation_and_model(generated: Generated) -> None:
    """The generator drops what it cannot type (a model named twice took the logged decision's
    answer with it); only the NDJSON stream is beyond it, and its documentation says so."""
    dropped = re.findall(r"WARNING parsing (\w+) (\S+) within", generated.log)
    assert [(m.lower(), p) for m, p in dropped] == [STREAMED], generated.log
    assert "Unable to" not in generated.log, generated.log
    assert "Could not find reference" not in generated.log, generated.log
    method, path = STREAMED
    streamed = generated.document["paths"][path][method]
    assert "generated client" in streamed["description"]
    # The request body a generated client cannot send is still documented, line by line.
    lines = streamed["requestBody"]["content"]["application/x-ndjson"]["schema"]
    refs = {part["$ref"].rsplit("/", 1)[1] for part in lines["oneOf"]}
    assert refs == {"AudienceHeader", "AudienceMember"}


async def test_enum_members_have_readable_names(generated: Generated) -> None:
    """A problem's `type` enum came out as `ProblemType.VALUE_3` (a generator names a member
    after its value only when the value starts with a letter); `x-enum-varnames` names them."""
    m = generated.models()
    assert m.ProblemType.NOT_FOUND == "/problems/not-found"
    assert m.ProblemType.VALIDATION_ERROR == "/problems/validation-error"
    enums = [
        value
        for value in vars(m).values()
        if isinstance(value, type) and issubclass(value, enum.Enum)
    ]
    assert m.ProblemType in enums
    unnamed = [f"{e.__name__}.{member.name}" for e in enums for member in e]
    assert [name for name in unnamed if ".VALUE_" in name] == []


def _op(generated: Generated, tag: str, operation_id: str) -> Any:
    return generated.module(f"api.{tag}.{snake_case(operation_id)}")


async def test_the_quick_start_runs_through_the_generated_client(
    client: Any, tenant: Tenant, generated: Generated
) -> None:
    m = generated.models()
    api = generated.module("client").AuthenticatedClient(
        base_url=str(client.base_url),
        token=tenant.key,
        httpx_args={"transport": litestar_transport.TestClientTransport(client)},
        raise_on_unexpected_status=True,
    )
    ids = {
        (path, method): op["operationId"]
        for path, item in generated.document["paths"].items()
        for method, op in item.items()
    }
    tags = {
        (path, method): op["tags"][0]
        for path, item in generated.document["paths"].items()
        for method, op in item.items()
    }

    async def call(method: str, path: str, status: int, **kwargs: Any) -> Any:
        key = (path, method)
        answer = await _op(generated, tags[key], ids[key]).asyncio_detailed(client=api, **kwargs)
        assert answer.status_code == status, answer.content
        assert answer.parsed is not None, (method, path)
        return answer.parsed

    web = await call(
        "post",
        "/v1/properties",
        201,
        body=m.PropertyCreate(name="web", kind=m.PropertyCreateKind.WEBSITE),
    )
    assert isinstance(web, m.Property)
    purpose = await call(
        "post",
        "/v1/purposes",
        201,
        body=m.PurposeCreate(
            key="email_marketing",
            name="Offers by e-mail",
            legal_basis=m.PurposeCreateLegalBasis.CONSENT,
            max_age_days=395,
        ),
    )
    assert isinstance(purpose, m.Purpose)
    await call(
        "post",
        "/v1/notices",
        201,
        body=m.NoticeCreate(key="newsletter", purposes=["email_marketing"]),
    )
    texts = m.NoticeVersionCreateTexts.from_dict(
        {"en": {"title": "Offers", "body": "May we send you offers by e-mail?"}}
    )
    draft = await call(
        "post",
        "/v1/notices/{key}/versions",
        201,
        key="newsletter",
        body=m.NoticeVersionCreate(texts=texts),
    )
    published = await call(
        "post",
        "/v1/notices/{key}/versions/{version}/publish",
        200,
        key="newsletter",
        version=draft.version,
    )
    assert isinstance(published, m.NoticeVersion)
    assert published.published_at is not None
    ann = m.IdentifierIn(type_="email", value="Ann@Example.com")
    consent = {
        "body": m.ConsentCreate(
            identifier=ann,
            choices=[m.ChoiceIn(purpose="email_marketing", choice=m.ChoiceInChoice.GRANTED)],
            notice_version_id=published.id,
            language="en",
            surface=m.ConsentCreateSurface.BANNER,
            channel=m.ConsentCreateChannel.WEB,
        ),
        "idempotency_key": str(uuid.uuid4()),
    }
    recorded = await call("post", "/v1/consents", 201, **consent)
    assert isinstance(recorded, m.ConsentRecorded)
    # a retry with the same key gets the first answer
    again = await call("post", "/v1/consents", 201, **consent)
    assert again.event_id == recorded.event_id
    # and a write without a key is fine: the key is optional
    await call(
        "post",
        "/v1/preferences",
        201,
        body=m.PreferenceCreate.from_dict(
            {
                "identifier": {"type": "email", "value": "ann@example.com"},
                "items": [{"kind": "channel", "key": "email", "value": "opt_in"}],
                "surface": "portal",
                "channel": "web",
            }
        ),
    )

    found = await call(
        "post",
        "/v1/subjects/lookup",
        200,
        body=m.LookupRequest(identifier=m.IdentifierIn(type_="email", value="ann@example.com")),
    )
    assert isinstance(found, m.SubjectConsents)
    assert found.subject_id == recorded.subject_id
    state = await call(
        "get", "/v1/subjects/{subject_id}/consents", 200, subject_id=recorded.subject_id
    )
    [choice] = state.consents
    assert (choice.purpose, choice.choice, choice.effective) == ("email_marketing", "granted", True)

    decision = await call(
        "post",
        "/v1/decisions",
        200,
        body=m.DecisionRequest(
            subject=m.SubjectRef(identifier=m.IdentifierIn(type_="email", value="ann@example.com")),
            action="email.marketing",
            context=m.DecisionContext(requester="esp", jurisdiction="DE"),
        ),
    )
    assert isinstance(decision, m.DecisionOut)
    assert (decision.allow, decision.reasons) == (True, ["allowed.consent"])
    logged = await call("get", "/v1/decisions/{decision_id}", 200, decision_id=decision.decision_id)
    assert isinstance(logged, m.StoredDecision)
    assert logged.allow is True

    # a failure is parsed into the documented problem
    missing = await call("get", "/v1/purposes/{key}", 404, key="nope")
    assert isinstance(missing, m.Problem)
    assert missing.type_ == m.ProblemType("/problems/not-found")
