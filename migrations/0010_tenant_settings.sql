-- Tenant settings (`PUT /v1/tenant/settings`): a tenant admin may change its own tenant's
-- settings and nothing else of the row (row-level security limits it to the caller's tenant).
grant update (settings) on tenant to consent_app;
