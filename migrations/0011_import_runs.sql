-- `consent import` remembers each file it committed (by content hash), so running the same
-- import again (a retried job, a cron run) adds nothing unless asked to (`--again`).
create table import_run (
    tenant_id uuid not null references tenant (id),
    file_sha256 bytea not null check (length(file_sha256) = 32),
    imported_at timestamptz not null default now(),
    rows_imported integer not null check (rows_imported >= 0),
    primary key (tenant_id, file_sha256)
);
comment on table import_run is 'Files committed by `consent import`, by SHA-256 of their bytes.';

alter table import_run enable row level security;
create policy tenant_isolation on import_run
    using (tenant_id = app_tenant_id()) with check (tenant_id = app_tenant_id());
grant select, insert, update on import_run to consent_app;
