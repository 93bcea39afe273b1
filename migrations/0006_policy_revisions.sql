-- Policy changes are admin changes: the first time any process serves a policy revision (at
-- start-up or on `consent policy reload`), that revision is recorded here and an
-- `admin.changed` leaf (entity "policy") is appended to every tenant's audit log in the same
-- transaction. Policies are shared by all tenants, so the table is not tenant-scoped; only
-- the service (schema owner) writes it.
create table policy_revision (
    revision text primary key,
    first_served_at timestamptz not null default now(),
    engine text not null
);
comment on table policy_revision is 'Every policy revision the service has served, first time.';
create trigger policy_revision_append_only before update or delete on policy_revision
    for each row execute function reject_change();
