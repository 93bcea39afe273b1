-- Decisions read their subjects' audit tokens with their consent state.
--
-- A decision about a known subject is logged with a `decision.made` audit leaf that names the
-- subject by its random audit token. The group commit of the decision log used to read (or
-- create) the tokens of its subjects in a statement of its own before the insert: a round trip
-- and an INSERT ... ON CONFLICT probe per subject, ~6 % of a worker's time at saturation. The
-- state read now returns each subject's token (null until its first leaf), and the log asks
-- only for the tokens it still lacks. Same function otherwise (migrations/0003); a function's
-- result columns cannot change in place, hence drop and create.
--
-- Every step is a probe by key, so sequential scans are off in the function: its one generic
-- plan is made once per connection, and a plan made while audit_subject_token was small (a
-- new service, whose first decisions create the tokens) scanned the whole table for every
-- token (1.3 ms per read of four subjects at 5,000 tokens, against 0.2 ms) until autovacuum's
-- next ANALYZE.
drop function decision_subject_states(uuid, int[], uuid[], text[], bytea[], text[]);

create function decision_subject_states(
    p_tenant uuid, p_ords int[], p_subject_ids uuid[], p_id_types text[], p_digests bytea[],
    p_purposes text[]
) returns table (
    ord int, subject_id uuid, purposes text[], choices text[], recorded_at_us bigint[],
    consent_material int[], notice_material int[], cat_keys text[], cat_bases text[],
    cat_max_age_days int[], cat_necessary boolean[], cat_material int[], audit_token bytea
)
    language plpgsql
    set plan_cache_mode = force_generic_plan
    set jit = off
    set enable_seqscan = off
as $$
#variable_conflict use_column
begin
    perform set_config('role', 'consent_app', true), set_config('app.tenant_id', p_tenant::text, true);
    return query
        with given as materialized (
            select r.ord, coalesce(r.subject_id, (
                select i.subject_id
                from subject_identifier as i
                where i.tenant_id = p_tenant and i.id_type = r.id_type and i.lookup_hmac = r.digest
            )) as subject_id
            from unnest(p_ords, p_subject_ids, p_id_types, p_digests)
                as r (ord, subject_id, id_type, digest)
        ),
        ref as materialized (
            select g.ord, (
                select coalesce(s.merged_into, s.id)
                from subject as s
                where s.tenant_id = p_tenant and s.id = g.subject_id
            ) as subject_id
            from given as g
        ),
        -- The current material version of the notice of each of the tenant's notice versions.
        current_material as materialized (
            select v.id, (
                select max(w.material_version)
                from notice_version as w
                where w.notice_id = v.notice_id and w.published_at is not null
            ) as material
            from notice as n
            join notice_version as v on v.notice_id = n.id
            where n.tenant_id = p_tenant
        ),
        catalogue as materialized (
            select array_agg(p.key) as keys,
                   array_agg(p.legal_basis) as bases,
                   array_agg(p.max_age_days) as max_age_days,
                   array_agg(p.strictly_necessary) as necessary,
                   array_agg(coalesce((
                       select max(v.material_version)
                       from notice as n
                       join notice_version as v on v.notice_id = n.id
                       where n.tenant_id = p_tenant and p.key = any(n.purpose_keys)
                         and v.published_at is not null
                   ), 0)) as material
            from purpose as p
            where p.tenant_id = p_tenant and p.key = any(p_purposes)
        )
        select ref.ord, ref.subject_id, c.purposes, c.choices, c.recorded_at_us, c.consent_material,
               c.notice_material,
               case when ref.ord = 0 then cat.keys end as cat_keys,
               case when ref.ord = 0 then cat.bases end as cat_bases,
               case when ref.ord = 0 then cat.max_age_days end as cat_max_age_days,
               case when ref.ord = 0 then cat.necessary end as cat_necessary,
               case when ref.ord = 0 then cat.material end as cat_material,
               (select t.token from audit_subject_token as t
                where t.tenant_id = p_tenant and t.subject_id = ref.subject_id) as audit_token
        from ref
        cross join catalogue as cat
        left join lateral (
            select array_agg(cs.purpose_key) as purposes,
                   array_agg(cs.choice) as choices,
                   array_agg((extract(epoch from cs.occurred_at) * 1000000)::bigint) as recorded_at_us,
                   array_agg(cs.material_version) as consent_material,
                   array_agg(m.material) as notice_material
            from consent_state as cs
            left join current_material as m on m.id = cs.notice_version_id
            where cs.tenant_id = p_tenant and cs.subject_id = ref.subject_id
              and cs.purpose_key = any(p_purposes)
        ) as c on ref.subject_id is not null;
end
$$;
