-- name: write_context
-- What a consent write is checked against: the purposes it names, the notice version shown,
-- and whether the tenant keeps network evidence.
select
    (select coalesce(jsonb_agg(key), '[]'::jsonb) from purpose where key = any($1::text[]))
        as known_purposes,
    v.id as version_id,
    v.published_at is not null as published,
    coalesce(v.shown_since, v.published_at) as shown_since,
    encode(v.content_hash, 'hex') as content_hash,
    v.material_version,
    v.texts,
    n.purpose_keys as notice_purposes,
    coalesce((select (settings ->> 'store_network_evidence')::boolean from tenant
              where id = app_tenant_id()), false) as keep_evidence
from (select 1) as one
left join notice_version as v on v.id = $2
left join notice as n on n.id = v.notice_id;

-- name: insert_consent_event
-- The event, the state rows it wins, and its audit leaf with the sealed evidence (what
-- audit's insert_event_with_evidence inserts; $18-$25 are an AuditWriter.row), in one
-- statement: one round trip, and no event without its leaf.
with ev as (
    insert into consent_event (id, tenant_id, subject_id, occurred_at, choices,
                               notice_version_id, notice_hash, language, surface, channel, method,
                               agent_id, property_id, evidence_enc)
    values ($17, $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
    returning id, seq, occurred_at, recorded_at
), state as (
    insert into consent_state as s (tenant_id, subject_id, purpose_key, choice, event_id,
                                    occurred_at, event_seq, notice_version_id, material_version)
    select $1, $2, c.purpose, c.choice, ev.id, ev.occurred_at, ev.seq, $5, $14
    from ev, unnest($15::text[], $16::text[]) as c (purpose, choice)
    on conflict (tenant_id, subject_id, purpose_key) do update
        set choice = excluded.choice,
            event_id = excluded.event_id,
            occurred_at = excluded.occurred_at,
            event_seq = excluded.event_seq,
            notice_version_id = excluded.notice_version_id,
            material_version = excluded.material_version
        where (s.occurred_at, s.event_seq) < (excluded.occurred_at, excluded.event_seq)
), leaf as (
    insert into audit_event (event_uuid, log_id, tenant_id, leaf_bytes, leaf_hash, kind,
                             subject_id)
    values ($18, $19, $20, $21, $22, $23, $24)
), evidence as (
    insert into audit_evidence (event_uuid, tenant_id, ciphertext) values ($18, $20, $25)
)
select id, occurred_at, recorded_at from ev;

-- name: subject_state
-- The current state in one call outside a transaction (migrations/0014): the reference ($2 a
-- subject id, or $3/$4 an identifier type and its keyed HMAC, in tenant $1) resolved to its
-- surviving subject, then that subject's state per purpose. No row: no such subject; one row
-- with a null purpose: a subject with no state yet. `expired` and `stale` only on purposes with
-- legal basis `consent`, as in decisions (migrations/0018).
select subject_id, purpose, choice, occurred_at, event_id, notice_version_id, expired, stale
from subject_consent_state($1, $2, $3, $4);

-- name: subject_history
select e.id as event_id, e.subject_id, e.occurred_at, e.recorded_at, e.choices,
       e.notice_version_id, encode(e.notice_hash, 'hex') as notice_hash, e.language, e.surface,
       e.channel, e.method, e.agent_id, e.property_id, e.evidence_enc, e.seq
from consent_event as e
where e.subject_id = any($1::uuid[])
  and ($2::bigint is null or e.seq < $2)
order by e.seq desc
limit $3;

