-- name: insert_leaves
insert into audit_event (event_uuid, log_id, tenant_id, leaf_bytes, leaf_hash, kind, subject_id)
select u.event_uuid, $1, $2, u.leaf_bytes, u.leaf_hash, $3, u.subject_id
from unnest($4::uuid[], $5::bytea[], $6::bytea[], $7::uuid[])
     as u (event_uuid, leaf_bytes, leaf_hash, subject_id);
