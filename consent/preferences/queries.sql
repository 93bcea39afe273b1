-- name: insert_preference_event
with ev as (
    insert into preference_event (id, tenant_id, subject_id, occurred_at, items, surface,
                                  channel, method, agent_id, property_id)
    values ($13, $1, $2, $3, $4, $5, $6, $7, $8, $9)
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
)
select id, occurred_at, recorded_at from ev;

-- name: subject_preferences
select kind, key, value, occurred_at, event_id
from preference_state
where subject_id = $1
order by kind, key;

-- name: preference_history
select id as event_id, subject_id, occurred_at, recorded_at, items, surface, channel, method,
       agent_id, property_id, seq
from preference_event
where subject_id = any($1::uuid[])
  and ($2::bigint is null or seq < $2)
order by seq desc
limit $3;
