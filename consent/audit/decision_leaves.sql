-- name: tokens_for
-- Audit tokens of many subjects, created for those that have none, in one statement (the
-- select cannot see the CTE's inserts, hence the union).
with given as (
    select u.subject_id, u.token
    from unnest($2::uuid[], $3::bytea[]) as u (subject_id, token)
), created as (
    insert into audit_subject_token (tenant_id, subject_id, token)
    select $1, g.subject_id, g.token from given as g
    on conflict (tenant_id, subject_id) do nothing
    returning subject_id, token
)
select subject_id, token from created
union all
select t.subject_id, t.token from audit_subject_token as t
where t.tenant_id = $1 and t.subject_id = any($2::uuid[])
  and t.subject_id not in (select subject_id from created);

-- name: insert_leaves
insert into audit_event (event_uuid, log_id, tenant_id, leaf_bytes, leaf_hash, kind, subject_id)
select u.event_uuid, $1, $2, u.leaf_bytes, u.leaf_hash, $3, u.subject_id
from unnest($4::uuid[], $5::bytea[], $6::bytea[], $7::uuid[])
     as u (event_uuid, leaf_bytes, leaf_hash, subject_id);
