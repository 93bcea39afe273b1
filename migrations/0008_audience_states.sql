-- The consent state behind an audience chunk, grouped in the database: one row per (context,
-- state key) instead of one per member, so that the service evaluates each group once and
-- handles its members in bulk (arrays), never one by one.
--
-- Read under row-level security exactly like decision_subject_states (a transaction-scoped
-- switch to consent_app for the tenant; call it outside a transaction): a subject the tenant
-- cannot see is unknown. Each table is read by ONE index scan for the whole chunk (keys =
-- any(array) held in a variable: a parameter, so the scan keys pass the security barrier, and
-- the B-tree walks the sorted keys instead of descending once per member); the steps are then
-- joined in memory (hash joins: enable_nestloop is off in the function).
--
-- The references come packed (per-element array parameters cost the service more than the
-- lookups cost here): member i (0-based; ord = i + 1) has kind get_byte(p_kinds, 2i) + 256 *
-- get_byte(p_kinds, 2i + 1): 0 for a subject id (p_subject_ids, at ord's place in
-- p_subject_ords), n for an identifier of type p_types[n] whose keyed HMAC is the 32 bytes of
-- p_digests at 32i; its context number is p_ctx[ord] (p_ctx null: all 0).
--
-- Members are grouped by (ctx, state): state is null for an unknown subject and otherwise the
-- comma-separated list, in p_purposes order, of 'k choice' for each choice about the k-th
-- purpose, followed by ':' and two digits (within the maximum age, current) when the purpose
-- has a catalogue entry: what consent.decisions.service.state_key keeps, so members of one
-- group share one normalised input. Per group: its members in chunk order (ords), the subject
-- ids of the known ones, and their values as stored in audience_member (row-major, one row per
-- subject and purpose of p_purposes: the purpose's material version for the subject, the
-- consent's recorded_at_ns and material version, as `consent_values` gives them; null without
-- a consent); then the first member's choices as decision_subject_states returns them (to
-- build its exact input) and the catalogue entries of the purposes (cat_*), as there.
create function audience_subject_states(
    p_tenant uuid, p_now_ns bigint, p_purposes text[], p_kinds bytea, p_digests bytea,
    p_types text[], p_subject_ords int[], p_subject_ids uuid[], p_ctx int[]
) returns table (
    ctx int, state text, members int, ords int[], subject_ids uuid[], purpose_material int[],
    recorded_at_ns bigint[], consent_material int[], purposes text[], choices text[],
    recorded_at_us bigint[], consent_mvs int[], notice_material int[], cat_keys text[],
    cat_bases text[], cat_max_age_days int[], cat_necessary boolean[], cat_material int[]
)
    language plpgsql
    set plan_cache_mode = force_generic_plan
    set jit = off
    set enable_nestloop = off
as $$
#variable_conflict use_column
declare
    v_n int := length(p_kinds) / 2;
    v_digests bytea[];
    v_f_type text[];
    v_f_hmac bytea[];
    v_f_subject uuid[];
    v_given uuid[];
    v_s_id uuid[];
    v_s_survivor uuid[];
    v_survivors uuid[];
    v_c_subject uuid[];
    v_c_key text[];
    v_c_choice text[];
    v_c_recorded_us bigint[];
    v_c_mv int[];
    v_c_notice_version uuid[];
begin
    perform set_config('role', 'consent_app', true), set_config('app.tenant_id', p_tenant::text, true);
    -- Each step is one index scan for the whole chunk (keys = any(array), a parameter), under
    -- row-level security; the steps are then joined in memory.
    v_digests := array(
        select substring(p_digests from g.i * 32 + 1 for 32)
        from generate_series(0, v_n - 1) as g (i)
        where get_byte(p_kinds, 2 * g.i) + 256 * get_byte(p_kinds, 2 * g.i + 1) > 0
    );
    select array_agg(i.id_type), array_agg(i.lookup_hmac), array_agg(i.subject_id)
    into v_f_type, v_f_hmac, v_f_subject
    from subject_identifier as i
    where i.tenant_id = p_tenant and i.id_type = any(p_types) and i.lookup_hmac = any(v_digests);
    v_given := array(
        select distinct x.id
        from (select unnest(v_f_subject) union all select unnest(p_subject_ids)) as x (id)
    );
    select array_agg(s.id), array_agg(coalesce(s.merged_into, s.id))
    into v_s_id, v_s_survivor
    from subject as s
    where s.tenant_id = p_tenant and s.id = any(v_given);
    v_survivors := array(select distinct unnest(v_s_survivor));
    select array_agg(cs.subject_id), array_agg(cs.purpose_key), array_agg(cs.choice),
           array_agg((extract(epoch from cs.occurred_at) * 1000000)::bigint),
           array_agg(cs.material_version), array_agg(cs.notice_version_id)
    into v_c_subject, v_c_key, v_c_choice, v_c_recorded_us, v_c_mv, v_c_notice_version
    from consent_state as cs
    where cs.tenant_id = p_tenant and cs.subject_id = any(v_survivors)
      and cs.purpose_key = any(p_purposes);
    return query
        with member as materialized (
            select g.i + 1 as ord, coalesce(p_ctx[g.i + 1], 0) as ctx,
                   p_types[get_byte(p_kinds, 2 * g.i) + 256 * get_byte(p_kinds, 2 * g.i + 1)]
                       as id_type,
                   substring(p_digests from g.i * 32 + 1 for 32) as digest
            from generate_series(0, v_n - 1) as g (i)
        ),
        ref as materialized (
            select m.ord, m.ctx, s.survivor as subject_id
            from member as m
            left join unnest(p_subject_ords, p_subject_ids) as x (ord, subject_id)
                on x.ord = m.ord
            left join unnest(v_f_type, v_f_hmac, v_f_subject) as f (id_type, hmac, subject_id)
                on f.id_type = m.id_type and f.hmac = m.digest
            left join unnest(v_s_id, v_s_survivor) as s (id, survivor)
                on s.id = coalesce(x.subject_id, f.subject_id)
        ),
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
        cat as materialized (
            select p.key, p.legal_basis, p.max_age_days, p.strictly_necessary,
                   coalesce((
                       select max(v.material_version)
                       from notice as n
                       join notice_version as v on v.notice_id = n.id
                       where n.tenant_id = p_tenant and p.key = any(n.purpose_keys)
                         and v.published_at is not null
                   ), 0) as material
            from purpose as p
            where p.tenant_id = p_tenant and p.key = any(p_purposes)
        ),
        needed as materialized (
            select n.k::int as k, n.key, c.key is not null as in_catalogue, c.max_age_days,
                   c.material
            from unnest(p_purposes) with ordinality as n (key, k)
            left join cat as c on c.key = n.key
        ),
        -- One row per known member and needed purpose, with its choice (if any); one row (k
        -- null) per unknown member, or per known member when the action needs no purpose.
        choice as materialized (
            select c.subject_id, c.key, c.choice, c.recorded_us, c.mv as consent_mv,
                   m.material as notice_mv
            from unnest(v_c_subject, v_c_key, v_c_choice, v_c_recorded_us, v_c_mv,
                        v_c_notice_version) as c (subject_id, key, choice, recorded_us, mv, nv)
            left join current_material as m on m.id = c.nv
        ),
        -- One row per known member and needed purpose, with its choice (if any); one row (k
        -- null) per unknown member, or per known member when the action needs no purpose.
        cell as materialized (
            select ref.ord, ref.ctx, ref.subject_id, n.k, n.key, n.in_catalogue, n.max_age_days,
                   n.material as cat_material, cs.choice, cs.recorded_us, cs.consent_mv,
                   cs.notice_mv
            from ref
            left join needed as n on ref.subject_id is not null
            left join choice as cs on cs.subject_id = ref.subject_id and cs.key = n.key
        ),
        -- Each row with its member's state key.
        keyed as materialized (
            select c.*,
                   case when c.subject_id is not null then coalesce(string_agg(
                       c.k || ' ' || c.choice || case
                           when c.in_catalogue then
                               ':' || (c.max_age_days is null
                                       or c.recorded_us::numeric * 1000
                                          + c.max_age_days::numeric * 86400000000000
                                          >= p_now_ns)::int
                               || (c.notice_mv is null
                                   or coalesce(c.consent_mv, 0) >= c.notice_mv)::int
                           else '' end, ',') filter (where c.choice is not null) over w, '')
                   end as state
            from cell as c
            window w as (partition by c.ord order by c.k
                         rows between unbounded preceding and unbounded following)
        ),
        grouped as materialized (
            select g.ctx, g.state,
                   count(*) filter (where g.k is null or g.k = 1)::int as members,
                   min(g.ord) as first,
                   array_agg(g.ord order by g.ord, g.k)
                       filter (where g.k is null or g.k = 1) as ords,
                   array_agg(g.subject_id order by g.ord, g.k)
                       filter (where (g.k is null or g.k = 1) and g.subject_id is not null)
                       as subject_ids,
                   -- The stored values, in p_purposes order (consent_values).
                   array_agg(case
                           when not g.in_catalogue then null
                           when g.choice is null or g.notice_mv is null then g.cat_material
                           else g.notice_mv end order by g.ord, g.k)
                       filter (where g.k is not null) as pm,
                   array_agg(g.recorded_us * 1000 order by g.ord, g.k)
                       filter (where g.k is not null) as rec,
                   array_agg(case
                           when g.choice is null then null
                           when g.notice_mv is null then
                               case when g.in_catalogue then g.cat_material else 0 end
                           else coalesce(g.consent_mv, 0) end order by g.ord, g.k)
                       filter (where g.k is not null) as cm
            from keyed as g
            group by g.ctx, g.state
        ),
        -- The choices of each group's first member.
        firsts as materialized (
            select c.ord,
                   array_agg(c.key order by c.k) filter (where c.choice is not null) as purposes,
                   array_agg(c.choice order by c.k) filter (where c.choice is not null) as choices,
                   array_agg(c.recorded_us order by c.k)
                       filter (where c.choice is not null) as recorded_at_us,
                   array_agg(c.consent_mv order by c.k)
                       filter (where c.choice is not null) as consent_mvs,
                   array_agg(c.notice_mv order by c.k)
                       filter (where c.choice is not null) as notice_material
            from cell as c
            where c.ord in (select g.first from grouped as g)
            group by c.ord
        ),
        catalogue as materialized (
            select array_agg(cat.key) as keys, array_agg(cat.legal_basis) as bases,
                   array_agg(cat.max_age_days) as max_age_days,
                   array_agg(cat.strictly_necessary) as necessary,
                   array_agg(cat.material) as material
            from cat
        )
        select g.ctx, g.state, g.members, g.ords, coalesce(g.subject_ids, '{}'),
               coalesce(g.pm, '{}'), coalesce(g.rec, '{}'), coalesce(g.cm, '{}'),
               f.purposes, f.choices, f.recorded_at_us, f.consent_mvs, f.notice_material,
               cat.keys, cat.bases, cat.max_age_days, cat.necessary, cat.material
        from grouped as g
        left join firsts as f on f.ord = g.first
        cross join catalogue as cat
        order by g.first;
end
$$;
