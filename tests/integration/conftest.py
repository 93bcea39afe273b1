"""A tenant with a small catalogue: purposes, a published notice (v1), a property."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import Tenant


class Catalog:
    def __init__(self, client: Any, tenant: Tenant) -> None:
        self.client = client
        self.tenant = tenant
        self.h = tenant.headers
        self.versions: dict[int, str] = {}

    async def post(self, path: str, body: Any, status: int = 201) -> Any:
        response = await self.client.post(path, json=body, headers=self.h)
        assert response.status_code == status, response.text
        return response.json()

    async def publish_version(self, change_kind: str = "material", title: str = "Cookies") -> str:
        draft = await self.post(
            "/v1/notices/main/versions",
            {
                "texts": {
                    "en": {"title": title, "body": "We use cookies for analytics and ads."},
                    "de": {"title": title, "body": "Wir verwenden Cookies."},
                },
                "change_kind": change_kind,
            },
        )
        published = await self.post(
            f"/v1/notices/main/versions/{draft['version']}/publish", None, status=200
        )
        self.versions[published["version"]] = published["id"]
        return str(published["id"])

    async def consent(self, status: int = 201, **body: Any) -> Any:
        payload = {"surface": "banner", "channel": "web", **body}
        if "notice_version_id" not in payload and payload.get("method") not in {"gpc", "import"}:
            payload["notice_version_id"] = self.versions[max(self.versions)]
        response = await self.client.post("/v1/consents", json=payload, headers=self.h)
        assert response.status_code == status, response.text
        return response.json()


@pytest.fixture
async def catalog(client: Any, tenant: Tenant) -> Catalog:
    c = Catalog(client, tenant)
    await c.post(
        "/v1/purposes",
        {"key": "analytics", "name": "Analytics", "legal_basis": "consent", "max_age_days": 395},
    )
    await c.post("/v1/purposes", {"key": "ads", "name": "Advertising", "legal_basis": "consent"})
    await c.post(
        "/v1/purposes",
        {"key": "newsletter", "name": "Newsletter", "legal_basis": "consent", "max_age_days": 30},
    )
    await c.post(
        "/v1/purposes",
        {
            "key": "essential",
            "name": "Essential",
            "legal_basis": "legitimate_interest",
            "strictly_necessary": True,
        },
    )
    await c.post("/v1/notices", {"key": "main", "purposes": ["analytics", "ads", "newsletter"]})
    await c.publish_version()
    return c
