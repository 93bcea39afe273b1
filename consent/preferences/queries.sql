-- name: insert_preference_event
-- The event, the state rows it wins, and its audit leaf with the sealed evidence (what
-- audit's insert_event_with_evidence inserts; $14-$21 are an AuditWriter.row), in one
-- statement: one round trip, and no event without its leaf. $22: the sealed network evidence.
with ev as (
    insert into preference_event (id, tenant_id, subject_id, occurred_at, items, surface,
                                  channel, method, agent_id, property_id, evidence_enc)
    values ($13, $1, $2, $3, $4, $5, $6, $7, $8, $9, $22)
    returning id, seq, occurred_at, recorded_at
), state as (
    insert into preference_state as s (tenant_id, subject_id, kind, key, value, event_id,
                                       occurred_at, event_seq)
    select $1, $2, i.kind, i.key, i.value, ev.id, ev.occurred_at, ev.seq
    from ev, unnest($10::text[], $11::text[], $12::text[]) as i (kind, key, value)
    on conflict (tenant_id, subject_id, kind, key) do update
        set value = excluded.value,
            event_id = excluded.event_id,
            occurred_at = excluded.occurred_at,
            event_seq = excluded.event_seq
        where (s.occurred_at, s.event_seq) < (excluded.occurred_at, excluded.event_seq)
), leaf as (
    insert into audit_event (event_uuid, log_id, tenant_id, leaf_bytes, leaf_hash, kind,
                             subject_id)
    values ($14, $15, $16, $17, $18, $19, $20)
), evidence as (
    insert into audit_evidence (event_uuid, tenant_id, ciphertext) values ($14, $16, $21)
)
select id, occurred_at, recorded_at from ev;

-- name: subject_preferences
-- One page of a subject's current preferences by (kind, key), after the position ($2, $3) of
-- the previous page's last one; $4: the page size plus one.
select kind, key, value, occurred_at, event_id
from preference_state
where subject_id = $1
  and ($2::text is null or (kind, key) > ($2::text, $3::text))
order by kind, key
limit $4;

-- name: preference_history
select id as event_id, subject_id, occurred_at, recorded_at, items, surface, channel, method,
       agent_id, property_id, evidence_enc, seq
from preference_event
where subject_id = any($1::uuid[])
  and ($2::bigint is null or seq < $2)
order by seq desc
limit $3;

-- name: keep_evidence
-- Whether the tenant keeps network evidence (as consents' write_context reads it).
select coalesce((select (settings ->> 'store_network_evidence')::boolean from tenant
                 where id = app_tenant_id()), false);
