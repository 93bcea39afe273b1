-- Queries of `consent import` (consent/consents/importer.py); each runs in the tenant's
-- transaction under row-level security.

-- name: tenant_exists
select exists (select 1 from tenant where id = app_tenant_id());

-- name: known_purposes
-- Checked before the database write so a file full of unknown purposes is rejected cheaply;
-- `ConsentService.record_in` checks them again.
select key from purpose where tenant_id = app_tenant_id();
