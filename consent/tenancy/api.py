"""HTTP: the tenant's properties and API keys (admin), and who am I."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from litestar import Controller, Request, delete, get, post, put
from litestar.params import JSONBody, Parameter

from consent.http_params import ApiKeyIdemKey, CursorParam, IdemKey, Limit
from consent.openapi import problems
from consent.tenancy.auth import principal, requires
from consent.tenancy.schemas import (
    ApiKey,
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyPage,
    Property,
    PropertyCreate,
    PropertyPage,
    Tenant,
    TenantSettings,
)
from consent.tenancy.service import TenancyService

__all__ = ["TenancyController"]


def _service(request: Request[Any, Any, Any]) -> TenancyService:
    return TenancyService(
        request.app.state.db, request.app.state.keyring, principal(request).tenant_id
    )


class TenancyController(Controller):
    path = "/v1"
    tags = ["tenancy"]
    security = [{"apiKey": []}]

    @get("/tenant", guards=[requires("read")], summary="The caller's tenant")
    async def get_tenant(self, request: Request[Any, Any, Any]) -> Tenant:
        """The tenant the API key belongs to."""
        return await _service(request).tenant()

    @put("/tenant/settings", guards=[requires("admin")], summary="Change the tenant's settings")
    async def put_settings(
        self, request: Request[Any, Any, Any], data: JSONBody[TenantSettings]
    ) -> TenantSettings:
        """Replace the settings (an omitted field returns to its default).
        `store_network_evidence`: keep each consent request's truncated IP (/24 or /48) and
        user agent, encrypted under the subject's key (default off). Recorded in the audit
        log; other server workers apply it within 2 seconds."""
        who = principal(request)
        return await _service(request).update_settings(
            data, actor=f"api-key:{who.key_id}", audit=request.app.state.audit
        )

    @post("/properties", guards=[requires("admin")], summary="Create a property", opt=problems(409))
    async def create_property(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[PropertyCreate],
        idempotency_key: IdemKey,
    ) -> Property:
        """A website, app or channel of the tenant. Names are unique per tenant."""
        return await _service(request).create_property(data, idempotency_key)

    @get("/properties", guards=[requires("read")], summary="List properties")
    async def list_properties(
        self, request: Request[Any, Any, Any], cursor: CursorParam = None, limit: Limit = 50
    ) -> PropertyPage:
        """Newest first; follow `next_cursor` for the next page."""
        return await _service(request).list_properties(cursor, limit)

    @post("/api-keys", guards=[requires("admin")], summary="Create an API key", opt=problems(409))
    async def create_api_key(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[ApiKeyCreate],
        idempotency_key: ApiKeyIdemKey,
    ) -> ApiKeyCreated:
        """The secret is returned once and stored only as a hash. Keys with `allowed_origins`
        are banner keys, usable only from those browser origins. A retry under the same
        `Idempotency-Key` creates no second key and cannot show the secret again: it is
        refused (409, naming the key's `id`); revoke that key and create another if the first
        answer was lost."""
        return await _service(request).create_api_key(data, idempotency_key)

    @get("/api-keys", guards=[requires("admin")], summary="List API keys")
    async def list_api_keys(
        self, request: Request[Any, Any, Any], cursor: CursorParam = None, limit: Limit = 50
    ) -> ApiKeyPage:
        """Newest first, without secrets."""
        return await _service(request).list_api_keys(cursor, limit)

    @delete(
        "/api-keys/{api_key_id:uuid}",
        guards=[requires("admin")],
        summary="Revoke an API key",
        status_code=200,
    )
    async def revoke_api_key(
        self,
        request: Request[Any, Any, Any],
        api_key_id: Annotated[
            UUID, Parameter(description="The key's `id` (a UUID, not its `key_id`).")
        ],
    ) -> ApiKey:
        """Revocation takes effect on the next request; revoking twice is harmless."""
        return await _service(request).revoke_api_key(api_key_id)
