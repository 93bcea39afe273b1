-- One definition of the erasure fence (migrations/0028_erasure_fences_decision_lookups.sql) for
-- everything that takes it: an erasure (forget_decision_lookups), `consent identifiers
-- renormalise` (which removes identifier rows an erasure would have found HMACs by) and the
-- decision log's group commit (decision_lookup_epochs). Before, each spelled the tenant's lock
-- key, and the first two the epoch's advance, on their own.

-- The tenant's erasure lock, as an advisory lock key.
create function erasure_lock_key(p_tenant uuid) returns bigint
    language sql immutable parallel safe set search_path = pg_catalog, public
    return hashtextextended('consent/erasure/' || p_tenant::text, 0);

-- Taken by whatever removes what an erasure finds decisions' HMACs by: the tenant's erasure lock
-- (exclusive, until the caller's transaction commits) and its epoch advanced, so that a decision
-- read before and logged after the commit keeps no HMAC. The update runs after the lock is
-- granted, in a snapshot of its own, so it sees every decision that logged its HMAC under the
-- shared lock before. Owner only: callers are forget_decision_lookups (security definer) and the
-- owner's renormalise transactions.
create function fence_decision_lookups(p_tenant uuid) returns void
    language plpgsql set search_path = pg_catalog, public as $$
begin
    perform pg_advisory_xact_lock(erasure_lock_key(p_tenant));
    insert into tenant_erasure_epoch as e (tenant_id, epoch) values (p_tenant, 1)
    on conflict (tenant_id) do update set epoch = e.epoch + 1;
end
$$;
revoke all on function fence_decision_lookups(uuid) from public;

create or replace function forget_decision_lookups(p_ids uuid[]) returns integer
    language plpgsql security definer set search_path = pg_catalog, public as $$
declare
    forgotten integer;
begin
    perform fence_decision_lookups(app_tenant_id());
    update decision_log as d
    set lookup_hmac = null
    from subject_identifier as i
    where i.tenant_id = app_tenant_id() and i.subject_id = any(p_ids)
      and d.tenant_id = i.tenant_id and d.id_type = i.id_type and d.lookup_hmac = i.lookup_hmac;
    get diagnostics forgotten = row_count;
    return forgotten;
end
$$;

create or replace function decision_lookup_epochs(p_tenants uuid[])
    returns table (tenant_id uuid, epoch bigint)
    language plpgsql set search_path = pg_catalog, public as $$
#variable_conflict use_column
declare
    t uuid;
begin
    for t in select distinct u from unnest(p_tenants) as u order by u loop
        perform pg_advisory_xact_lock_shared(erasure_lock_key(t));
    end loop;
    return query
        select u, coalesce((select e.epoch from tenant_erasure_epoch as e where e.tenant_id = u), 0)
        from unnest(p_tenants) as u;
end
$$;
