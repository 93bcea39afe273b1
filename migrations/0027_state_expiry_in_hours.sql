-- The state read counts a purpose's maximum age in days of 24 hours, as decisions do.
--
-- subject_consent_state (migrations/0014, 0018) marked a choice expired when
-- `occurred_at + make_interval(days => max_age_days) < now()`. Adding days to a timestamptz
-- counts calendar days in the session's TimeZone: in a database set to a zone with summer time
-- (Europe/Berlin, America/New_York) a maximum age that spans a clock change was an hour longer
-- or shorter than the decision policy's (`recorded_at_ns + max_age_ns >= now_ns`, with
-- max_age_ns = days * 86,400 s). For that hour the state (and the portal) said `expired` while
-- decisions still allowed, or the reverse. Hours are absolute, whatever the TimeZone.
--
-- Same function otherwise (as 0018): same arguments, result columns, settings and security, so
-- it is replaced in place and keeps its owner and privileges.
create or replace function subject_consent_state(
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
               coalesce(p.legal_basis = 'consent'
                        and p.max_age_days is not null
                        and s.occurred_at + make_interval(hours => p.max_age_days * 24) < now(),
                        false),
               coalesce(p.legal_basis = 'consent' and s.material_version < (
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
