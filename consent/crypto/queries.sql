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
-- Each row names the KEK that wrapped it: a rotation during a re-wrap changes it mid-batch.
update subject_key as k
set kek_id = u.kek_id, dek_wrapped = u.dek_wrapped, rotated_at = now()
from unnest($1::uuid[], $2::uuid[], $3::text[], $4::bytea[])
    as u (tenant_id, subject_id, kek_id, dek_wrapped)
where k.tenant_id = u.tenant_id and k.subject_id = u.subject_id;

-- name: hold_off_key_writes
-- Until the transaction ends: wait for every transaction that has written a data key (a long
-- `consent import` may hold keys wrapped before a rotation, not committed yet) and hold off new
-- ones, so the counts that follow see every data key there is. Reads go on.
lock table subject_key in share mode;

-- name: count_wrapped_by_keks
-- Across every tenant (the schema owner is not under row-level security); uses subject_key_kek.
select kek_id, count(*) as wrapped from subject_key where kek_id = any($1::text[])
group by kek_id;

-- name: forget_keks
-- Retired KEKs wrap nothing here any more: a process without them is not refused at start.
update key_binding
set kek_ids = array(select k from unnest(kek_ids) with ordinality as u (k, n)
                    where k <> all($1::text[]) order by n),
    updated_at = now()
where id;

-- name: bind_keys
-- The first process binds the database to its key ring (see consent/crypto/binding.py).
insert into key_binding (lookup_fingerprint, kek_ids) values ($1, $2)
on conflict (id) do nothing;

-- name: key_binding_for_update
select lookup_fingerprint, kek_ids from key_binding where id for update;

-- name: record_kek
update key_binding set kek_ids = kek_ids || $1::text, updated_at = now() where id;

-- name: set_lock_timeout
select set_config('lock_timeout', $1, true);
