-- name: ensure_tokens
-- Audit tokens for many subjects at once (created for those that have none).
insert into audit_subject_token (tenant_id, subject_id, token)
select $1, u.subject_id, u.token
from unnest($2::uuid[], $3::bytea[]) as u (subject_id, token)
on conflict (tenant_id, subject_id) do nothing;

-- name: tokens_of
select subject_id, token from audit_subject_token
where tenant_id = $1 and subject_id = any($2::uuid[]);

-- name: insert_leaves
insert into audit_event (event_uuid, log_id, tenant_id, leaf_bytes, leaf_hash, kind, subject_id)
select u.event_uuid, $1, $2, u.leaf_bytes, u.leaf_hash, $3, u.subject_id
from unnest($4::uuid[], $5::bytea[], $6::bytea[], $7::uuid[])
     as u (event_uuid, leaf_bytes, leaf_hash, subject_id);
