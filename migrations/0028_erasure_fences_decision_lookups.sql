-- An erasure fences the decisions in flight: none brings back an HMAC the erasure forgot.
--
-- A decision about an identifier the ledger does not know is logged with the identifier's keyed
-- HMAC (decision_log.lookup_hmac), and erasure forgets the HMACs of the erased subjects'
-- identifiers (forget_decision_lookups, migrations/0022). But a decision is read first and
-- logged a moment later, by group commit: read (identifier unknown) -> the identifier becomes
-- a subject's -> the subject is erased -> the decision is inserted, with the HMAC, after the
-- erasure looked for it. Nothing would forget it then, and the person coming back with the same
-- e-mail address would be tied to it again.
--
-- So each tenant has an erasure epoch, which every erasure advances under an exclusive lock
-- (taken in forget_decision_lookups, held until the erasure commits). A decision's state read
-- returns the epoch it saw (consent/decisions/queries.sql, subject_states); the group commit
-- takes the same lock in shared mode and reads the epoch again (decision_lookup_epochs), in
-- the statement that inserts the decisions. Either the insert commits first, and the erasure,
-- which waits for it, then finds its HMACs; or it waits for the erasure to commit, sees the
-- epoch advanced, and logs the decisions read before it without their HMAC. A decision read
-- after an erasure committed keeps its HMAC; one read before loses it when any erasure of its
-- tenant commits in between (the decision stays logged; it cannot be attributed later).

create table tenant_erasure_epoch (
    tenant_id uuid primary key references tenant (id),
    -- Erasures of the tenant so far (no row: none). Advanced by forget_decision_lookups only.
    epoch bigint not null check (epoch > 0)
);
comment on table tenant_erasure_epoch is
    'Erasures per tenant: a decision read before the last one logs no identifier HMAC.';
alter table tenant_erasure_epoch enable row level security;
create policy tenant_isolation on tenant_erasure_epoch
    using (tenant_id = app_tenant_id()) with check (tenant_id = app_tenant_id());
grant select on tenant_erasure_epoch to consent_app;

-- As in migrations/0022, and first: the tenant's erasure lock (exclusive, until the erasure
-- commits) and its epoch advanced. The update runs after the lock is granted, in a snapshot of
-- its own (a volatile function's statements each take one), so it sees every decision that
-- logged its HMAC under the shared lock before.
create or replace function forget_decision_lookups(p_ids uuid[]) returns integer
    language plpgsql security definer set search_path = pg_catalog, public as $$
declare
    forgotten integer;
begin
    perform pg_advisory_xact_lock(hashtextextended('consent/erasure/' || app_tenant_id()::text, 0));
    insert into tenant_erasure_epoch as e (tenant_id, epoch) values (app_tenant_id(), 1)
    on conflict (tenant_id) do update set epoch = e.epoch + 1;
    update decision_log as d
    set lookup_hmac = null
    from subject_identifier as i
    where i.tenant_id = app_tenant_id() and i.subject_id = any(p_ids)
      and d.tenant_id = i.tenant_id and d.id_type = i.id_type and d.lookup_hmac = i.lookup_hmac;
    get diagnostics forgotten = row_count;
    return forgotten;
end
$$;

-- The group commit's side (consent/decisions/queries.sql, insert_decisions), as the owner:
-- the erasure lock of each tenant given, in shared mode (in one order: never a cycle), held
-- until the insert commits; then, in a snapshot taken after the locks were granted, each
-- tenant's epoch (0: no erasure yet). Decisions compare it with the epoch their read saw.
create function decision_lookup_epochs(p_tenants uuid[]) returns table (tenant_id uuid, epoch bigint)
    language plpgsql set search_path = pg_catalog, public as $$
#variable_conflict use_column
declare
    t uuid;
begin
    for t in select distinct u from unnest(p_tenants) as u order by u loop
        perform pg_advisory_xact_lock_shared(hashtextextended('consent/erasure/' || t::text, 0));
    end loop;
    return query
        select u, coalesce((select e.epoch from tenant_erasure_epoch as e where e.tenant_id = u), 0)
        from unnest(p_tenants) as u;
end
$$;
revoke all on function decision_lookup_epochs(uuid[]) from public;
