-- Queries of `consent import` (consent/consents/importer.py); each runs in the tenant's
-- transaction under row-level security.

-- name: tenant_exists
select exists (select 1 from tenant where id = app_tenant_id());

-- name: known_purposes
-- Checked before the database write so a file full of unknown purposes is rejected cheaply;
-- `ConsentService.record_in` checks them again.
select key from purpose where tenant_id = app_tenant_id();

-- name: prior_import
-- When the file was last committed: remembered by its keyed hash ($1), or by its plain SHA-256
-- ($2) before migration 0024; each row is compared by the kind of hash it holds only.
select imported_at from import_run
where (file_sha256 = $1 and file_hash_kind = 'hmac')
   or (file_sha256 = $2 and file_hash_kind = 'sha256')
order by imported_at desc
limit 1;

-- name: record_import
-- Before the commit; a concurrent import of the same file waits here for the first one and
-- then inserts nothing (unless `--again`, $3, which makes each run count as the latest). $1 is
-- the file's keyed hash (a row of the plain kind is left as it is).
insert into import_run (tenant_id, file_sha256, file_hash_kind, rows_imported)
values (app_tenant_id(), $1, 'hmac', $2)
on conflict (tenant_id, file_sha256) do update
    set imported_at = now(), rows_imported = excluded.rows_imported
    where $3
returning imported_at;

-- name: analyze_import_tables
-- The import's own rows into the planner's statistics (migrations/0016), as its row count
-- doubles.
select analyze_import_tables();
