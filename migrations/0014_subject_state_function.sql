-- A subject's current consent state read in one call outside a transaction: one round trip
-- instead of three (BEGIN with the tenant settings, the read, COMMIT) for
-- `GET /v1/subjects/{id}/consents` and the lookup by identifier. Row-level security applies as
-- in decision_subject_states (a transaction-scoped switch to consent_app for the tenant).
--
-- p_subject is a subject id, or null and (p_id_type, p_digest) an identifier type and its
-- keyed HMAC. No row: no such subject (or erased: row-level security hides it); one row with
-- a null purpose: a subject with no state yet. Materialised steps keep every index probe's
-- key a plain column; one generic plan serves every call, without JIT.
create function subject_consent_state(
    p_tenant uuid, p_subject uuid, p_id_type text, p_digest bytea
) returns table (
    subject_id uuid, purpose text, choice text, occurred_at timestamptz, event_id uuid,
    notice_version_id uuid, expired boolean, stale boolean
)
    language plpgsql
    set plan_cache_mode = force_generic_plan
    set jit = off
as $$
#variable_conflict use_column
begin
    perform set_config('role', 'consent_app', true), set_config('app.tenant_id', p_tenant::text, true);
    return query
        with ref as materialized (
            select coalesce(p_subject, (
                select i.subject_id from subject_identifier as i
                where i.tenant_id = p_tenant and i.id_type = p_id_type and i.lookup_hmac = p_digest
            )) as id
        ), survivor as materialized (
            select coalesce(s.merged_into, s.id) as id from ref join subject as s on s.id = ref.id
        )
        select v.id, s.purpose_key, s.choice, s.occurred_at, s.event_id, s.notice_version_id,
               coalesce(p.max_age_days is not null
                        and s.occurred_at + make_interval(days => p.max_age_days) < now(), false),
               coalesce(s.material_version < (
                   select max(v2.material_version)
                   from notice_version as v1
                   join notice_version as v2 on v2.notice_id = v1.notice_id
                   where v1.id = s.notice_version_id and v2.published_at is not null
               ), false)
        from survivor as v
        left join consent_state as s on s.subject_id = v.id
        left join purpose as p on p.tenant_id = s.tenant_id and p.key = s.purpose_key
        order by s.purpose_key;
end
$$;
