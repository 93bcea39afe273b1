-- name: ensure_log
insert into audit_log (tenant_id, origin) values ($1, $2)
on conflict (tenant_id) do nothing;

-- name: log_of_tenant
select log_id, origin from audit_log where tenant_id = $1;

-- name: subject_tokens
-- Audit tokens of many subjects, created for those that have none, in one statement (the
-- select cannot see the CTE's inserts, hence the union). Under READ COMMITTED a token that a
-- concurrent transaction inserted and committed while this insert waited on it is in neither
-- half (a conflict, and not in this statement's snapshot): the caller reads those again with
-- `subject_tokens_existing`, whose new snapshot sees them.
-- A subject already erased gets no token row (nothing would ever delete it again, and it would
-- tie the leaves that name it to the subject): it comes back with `erased` set and its fresh
-- token, stored nowhere. Each live subject is locked FOR KEY SHARE (until the caller's
-- transaction ends), which an erasure's FOR UPDATE (lock_for_erasure) conflicts with: a token
-- created before an erasure is found and deleted by it, and one asked for while an erasure runs
-- waits for its commit and then finds the subject erased (a decision read before the erasure and
-- logged after it: consent/audit/decision_leaves.py). Merged members are locked before survivors,
-- each in id order, as lock_for_erasure does, so the two cannot wait on each other in a cycle.
with given as (
    select u.subject_id, u.token
    from unnest($2::uuid[], $3::bytea[]) as u (subject_id, token)
), live as (
    select g.subject_id, g.token
    from given as g
    join subject as s on s.tenant_id = $1 and s.id = g.subject_id and s.erased_at is null
    order by s.merged_into is null, g.subject_id
    for key share of s
), created as (
    insert into audit_subject_token (tenant_id, subject_id, token)
    select $1, l.subject_id, l.token from live as l
    on conflict (tenant_id, subject_id) do nothing
    returning subject_id, token
)
select subject_id, token, false as erased from created
union all
select t.subject_id, t.token, false from audit_subject_token as t
where t.tenant_id = $1 and t.subject_id in (select subject_id from live)
  and t.subject_id not in (select subject_id from created)
union all
select g.subject_id, g.token, true from given as g
where g.subject_id not in (select subject_id from live);

-- name: subject_tokens_existing
select subject_id, token from audit_subject_token
where tenant_id = $1 and subject_id = any($2::uuid[]);

-- name: insert_event
insert into audit_event (event_uuid, log_id, tenant_id, leaf_bytes, leaf_hash, kind, subject_id)
values ($1, $2, $3, $4, $5, $6, $7);

-- name: insert_evidence
insert into audit_evidence (event_uuid, tenant_id, ciphertext) values ($1, $2, $3);

-- name: pending_logs
-- One probe of the outbox per log (a DISTINCT over the pending rows would read them all).
select l.log_id from audit_log as l
where exists (select 1 from audit_pending as p where p.log_id = l.log_id)
order by l.log_id;

-- name: unsigned_logs
-- Logs integrated past their last signed checkpoint (a stop or a crash came in between).
select l.log_id from audit_log as l
where l.tree_size > coalesce(
    (select max(c.tree_size) from audit_checkpoint as c where c.log_id = l.log_id), 0
)
order by l.log_id;

-- name: try_lock_log
select pg_try_advisory_xact_lock(1094996036, $1::int);

-- name: lock_log
-- "no key update": writers' foreign keys (for key share) on this row do not wait for us.
select tree_size, frontier, origin, tenant_id from audit_log where log_id = $1 for no key update;

-- name: take_pending
-- The oldest pending leaves of the log, out of the outbox (the batch's transaction puts them
-- into audit_leaf, or rolls both back).
with taken as (
    delete from audit_pending
    where log_id = $1
      and event_id in (select event_id from audit_pending where log_id = $1
                       order by event_id limit $2)
    returning event_id, leaf_hash
)
select event_id, leaf_hash from taken order by event_id;

-- name: insert_leaves
-- Leaf indexes $2, $2 + 1, ... in the order of the event ids given.
insert into audit_leaf (log_id, leaf_index, event_id, leaf_hash)
select $1, $2 + u.ord - 1, u.event_id, u.leaf_hash
from unnest($3::bigint[], $4::bytea[]) with ordinality as u (event_id, leaf_hash, ord);

-- name: insert_nodes
insert into audit_node (log_id, level, idx, hash)
select $1, u.level, u.idx, u.hash
from unnest($2::smallint[], $3::bigint[], $4::bytea[]) as u (level, idx, hash);

-- name: update_log
update audit_log set tree_size = $2, root_hash = $3, frontier = $4, updated_at = now()
where log_id = $1;

-- name: last_checkpoint
select tree_size, root_hash, note from audit_checkpoint
where log_id = $1 order by tree_size desc limit 1;

-- name: checkpoint_at
select tree_size, root_hash, note from audit_checkpoint where log_id = $1 and tree_size = $2;

-- name: insert_checkpoint
insert into audit_checkpoint (log_id, tree_size, root_hash, note) values ($1, $2, $3, $4);

-- name: leaf_hashes_at
select leaf_index, leaf_hash from audit_leaf
where log_id = $1 and leaf_index = any($2::bigint[]);

-- name: nodes_at
select level, idx, hash from audit_node
where log_id = $1 and (level, idx) in (select * from unnest($2::smallint[], $3::bigint[]));

-- name: latest_checkpoint_of_tenant
select c.tree_size, c.note, l.log_id, l.origin
from audit_log as l
join audit_checkpoint as c on c.log_id = l.log_id
where l.tenant_id = $1
order by c.tree_size desc
limit 1;

-- name: tenant_log
select log_id, origin, tree_size from audit_log where tenant_id = $1;

-- name: event_by_uuid
select f.leaf_index, e.leaf_bytes, e.kind, e.log_id, l.origin
from audit_event as e
join audit_log as l on l.log_id = e.log_id
left join audit_leaf as f on f.event_id = e.event_id
where e.event_uuid = $1;

-- name: entries
select f.leaf_index, e.leaf_bytes from audit_leaf as f
join audit_event as e on e.event_id = f.event_id
where f.log_id = $1 and f.leaf_index >= $2 and f.leaf_index < $3
order by f.leaf_index;

-- name: subject_activity
-- The subject's own leaves, and the audience runs that listed it (GIN on subject_ids).
with own as (
    select e.event_id from audit_event as e
    where e.tenant_id = $1 and e.subject_id = any($2::uuid[])
      and ($3::bigint is null or e.event_id < $3)
    order by e.event_id desc
    limit $4
), audiences as (
    select e.event_id from audience_member as m
    join audit_event as e on e.event_uuid = m.event_uuid
    where m.tenant_id = $1 and m.subject_ids && $2::uuid[]
      and ($3::bigint is null or e.event_id < $3)
    order by e.event_id desc
    limit $4
), page as (
    select event_id from own union select event_id from audiences
    order by event_id desc
    limit $4
)
select e.event_id, e.event_uuid, e.kind, f.leaf_index, e.leaf_bytes, e.recorded_at,
       c.surface as consent_surface, c.channel as consent_channel, c.method as consent_method,
       p.surface as preference_surface, p.channel as preference_channel,
       p.method as preference_method
from page
join audit_event as e on e.event_id = page.event_id
left join audit_leaf as f on f.event_id = e.event_id
left join consent_event as c on c.id = e.event_uuid
left join preference_event as p on p.id = e.event_uuid
order by e.event_id desc;

-- name: export_subject
-- The subject's own leaves and those of the audience runs that listed it, from index $5 on.
select f.leaf_index, e.leaf_bytes from audit_event as e
join audit_leaf as f on f.event_id = e.event_id
where e.log_id = $1 and f.leaf_index < $3 and f.leaf_index >= $5
  and (e.subject_id = any($2::uuid[])
       or e.event_uuid in (select m.event_uuid from audience_member as m
                           where m.subject_ids && $2::uuid[] and m.event_uuid is not null))
order by f.leaf_index
limit $4;

-- name: export_period
-- The leaves whose event id was made from $3 to before $4 (both UUIDs of the first instant of
-- a millisecond: AuditReader.export), from index $6 on. An event id is a UUID v7, whose first
-- 48 bits are the Unix millisecond it was made in, and every leaf commits to its id (verify
-- checks that the row holds the leaf's): no stored column that a hash leaves uncovered (as
-- recorded_at is) decides what a period export holds, and the range is read from the event_uuid
-- index. Only version-7 ids carry a time; other ids (none since the audit log's first day of
-- development) are in no period.
select f.leaf_index, e.leaf_bytes from audit_event as e
join audit_leaf as f on f.event_id = e.event_id
where e.log_id = $1 and f.leaf_index < $2 and f.leaf_index >= $6
  and e.event_uuid >= $3 and e.event_uuid < $4
  and get_byte(uuid_send(e.event_uuid), 6) >> 4 = 7
order by f.leaf_index
limit $5;

-- name: all_logs
select log_id, tenant_id, origin, tree_size, root_hash, frontier from audit_log order by log_id;

-- name: stream_leaves
-- Every integrated leaf with its event (null columns: the event row is gone), the token of the
-- subject the event is filed under, the SHA-256 of its evidence (both null once erased) and its
-- recorded_at in Unix milliseconds (compared with the millisecond in the event id).
select f.leaf_index, f.leaf_hash, e.event_uuid, e.leaf_bytes, e.leaf_hash as event_leaf_hash,
       e.kind, e.subject_id, t.token as subject_token, sha256(v.ciphertext) as evidence_sha256,
       floor(date_part('epoch', e.recorded_at) * 1000)::bigint as recorded_ms
from audit_leaf as f
left join audit_event as e on e.event_id = f.event_id and e.log_id = f.log_id
left join audit_subject_token as t on t.tenant_id = e.tenant_id and t.subject_id = e.subject_id
left join audit_evidence as v on v.event_uuid = e.event_uuid
where f.log_id = $1
order by f.leaf_index;

-- name: audience_groups
-- The tenant's audience_member rows that have a leaf, in leaf-link order (one range of
-- audience_member_leaf), each with its leaf's event (null: gone), the leaf index (null: still
-- pending), its shape's decision and its run: every join is one probe by key, so the cost is
-- one pass over the rows, whatever the size of the log.
select m.event_uuid, m.run_id, m.chunk, m.shape, m.subject_ids, m.purpose_keys,
       m.purpose_material, m.recorded_at_ns, m.consent_material,
       e.log_id, e.leaf_bytes, f.leaf_index,
       s.allow, s.reasons, s.policy_revision, s.input as shape_input,
       r.requester, r.action, r.started_at
from audience_member as m
left join audit_event as e on e.event_uuid = m.event_uuid
left join audit_leaf as f on f.event_id = e.event_id
left join audience_shape as s on s.run_id = m.run_id and s.shape = m.shape
left join audience_run as r on r.id = m.run_id
where m.tenant_id = $1 and m.event_uuid is not null
order by m.event_uuid;

-- name: audience_leaves_without_rows
-- Integrated audience.used leaves of the log that no audience_member row of the tenant links
-- (run only when verify counted fewer linked rows than such leaves).
select f.leaf_index, e.leaf_bytes from audit_leaf as f
join audit_event as e on e.event_id = f.event_id
where f.log_id = $1 and e.kind = 'audience.used'
  and not exists (select 1 from audience_member as m
                  where m.event_uuid = e.event_uuid and m.tenant_id = $2)
order by f.leaf_index
limit 3;

-- name: lost_events
-- Events of the log that are neither integrated nor waiting: dropped from the outbox.
select e.event_uuid from audit_event as e
where e.log_id = $1
  and not exists (select 1 from audit_leaf as f where f.event_id = e.event_id)
  and not exists (select 1 from audit_pending as p
                  where p.log_id = e.log_id and p.event_id = e.event_id)
order by e.event_id
limit 3;

-- name: stream_nodes
-- The stored nodes (level >= $2) in the order a frontier completes them: by the leaf that
-- ends them, lower level first.
select level, idx, hash from audit_node where log_id = $1 and level >= $2
order by (idx + 1) << level::int, level;

-- name: bad_pending
-- Outbox rows that would integrate something else than their event: no such event, another
-- hash than the event's, event bytes that do not hash to it, or an event already integrated.
select p.event_id, e.event_uuid from audit_pending as p
left join audit_event as e on e.event_id = p.event_id and e.log_id = p.log_id
where p.log_id = $1
  and (e.event_id is null or e.leaf_hash <> p.leaf_hash
       or e.leaf_hash <> sha256('\x00'::bytea || e.leaf_bytes)
       or exists (select 1 from audit_leaf as f where f.event_id = p.event_id))
order by p.event_id
limit 3;

-- name: all_checkpoints
select tree_size, root_hash, note from audit_checkpoint where log_id = $1 order by tree_size;

-- name: node_count
select count(*) from audit_node where log_id = $1;

-- name: insert_event_with_evidence
-- insert_consent_event and insert_preference_event end with the same two inserts (their
-- change, its leaf and the evidence in one statement): keep them in step with this one.
with leaf as (
    insert into audit_event (event_uuid, log_id, tenant_id, leaf_bytes, leaf_hash, kind,
                             subject_id)
    values ($1, $2, $3, $4, $5, $6, $7)
)
insert into audit_evidence (event_uuid, tenant_id, ciphertext) values ($1, $3, $8);
