-- name: insert_subject_key
insert into subject_key (tenant_id, subject_id, kek_id, dek_wrapped)
values ($1, $2, $3, $4)
on conflict (tenant_id, subject_id) do nothing;

-- name: get_subject_key
select kek_id, dek_wrapped from subject_key where tenant_id = $1 and subject_id = $2;

-- name: delete_subject_key
delete from subject_key where tenant_id = $1 and subject_id = $2;

-- name: count_wrapped_by_other_keks
select count(*) from subject_key where kek_id <> $1;

-- name: lock_batch_to_rewrap
select tenant_id, subject_id, kek_id, dek_wrapped
from subject_key
where kek_id <> $1
order by tenant_id, subject_id
limit $2
for update skip locked;

-- name: update_rewrapped
update subject_key as k
set kek_id = $1, dek_wrapped = u.dek_wrapped, rotated_at = now()
from unnest($2::uuid[], $3::uuid[], $4::bytea[]) as u (tenant_id, subject_id, dek_wrapped)
where k.tenant_id = u.tenant_id and k.subject_id = u.subject_id;

-- name: bind_keys
-- The first process binds the database to its key ring (see consent/crypto/binding.py).
insert into key_binding (lookup_fingerprint, kek_ids) values ($1, $2)
on conflict (id) do nothing;

-- name: key_binding_for_update
select lookup_fingerprint, kek_ids from key_binding where id for update;

-- name: record_kek
update key_binding set kek_ids = kek_ids || $1::text, updated_at = now() where id;
