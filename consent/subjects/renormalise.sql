-- Statements of `consent identifiers renormalise` (consent/subjects/renormalise.py).

-- name: tenants
-- Every tenant, or the one asked for ($1; none: no such tenant). Owner connection.
select id from tenant where $1::uuid is null or id = $1 order by id;

-- name: count_identifiers
-- The identifiers of the types the command re-spells, of the tenants asked for (the progress
-- total). Owner connection.
select count(*) from subject_identifier
where ($1::uuid is null or tenant_id = $1) and id_type = any($2::text[]);

-- name: next_subjects
-- The next batch of subjects holding identifiers of those types, in id order after $3 (the
-- cursor: subject ids never change, lookup HMACs do).
select distinct subject_id from subject_identifier
where tenant_id = $1 and id_type = any($2::text[]) and subject_id > $3
order by subject_id
limit $4;

-- name: identifiers_of_batch
-- Their identifiers of those types (keys only: each one is read again, locked, before use).
select id_type, lookup_hmac from subject_identifier
where tenant_id = $1 and id_type = any($2::text[]) and subject_id = any($3::uuid[])
order by subject_id, id_type, lookup_hmac;

-- name: identifier_locked
-- One identifier with its owner and encrypted value, locked until the batch commits (gone:
-- no row; a link in this batch may have moved it to another subject).
select subject_id, value_enc from subject_identifier
where tenant_id = $1 and id_type = $2 and lookup_hmac = $3
for update;

-- name: identifier_unlocked
select subject_id, value_enc from subject_identifier
where tenant_id = $1 and id_type = $2 and lookup_hmac = $3;

-- name: survivor_of
-- The subject a subject stands for (itself, or the one it was linked into).
select coalesce(merged_into, id) from subject where id = $1;

-- name: respell_identifier
-- The identifier under its current spelling: its lookup HMAC and encrypted value, same subject.
update subject_identifier set lookup_hmac = $4, value_enc = $5
where tenant_id = $1 and id_type = $2 and lookup_hmac = $3;

-- name: delete_identifier
-- An old spelling whose current one the same person already holds.
delete from subject_identifier where tenant_id = $1 and id_type = $2 and lookup_hmac = $3;

-- name: lock_tenant_links
-- The lock every link and erasure of the tenant takes first (consent/subjects/queries.sql):
-- held for the batch, so none of them changes its subjects meanwhile.
select pg_advisory_xact_lock(hashtextextended('consent/link/' || $1::text, 0));

-- name: fence_decision_lookups
-- The erasure fence, as an erasure takes it (migrations/0029_one_erasure_fence.sql): the tenant's
-- erasure lock, exclusive until the forgetting below commits (a decision group commit holding it
-- shared commits first, and the forgetting, in a later statement's snapshot, finds the HMACs it
-- logged), and its erasure epoch advanced (a decision read before, the old spelling then
-- unknown, and logged after this commits keeps no HMAC: the old spelling's row is gone, no
-- erasure would find it). Taken after the link lock (lock_tenant_links), in the order an
-- erasure takes the two. Owner connection.
select fence_decision_lookups($1);

-- name: forget_decision_lookups_of
-- The keyed HMACs that decisions about then-unknown identifiers logged, of the spellings this
-- batch removes: erasure finds them by the subject's identifier rows
-- (migrations/0022_decision_lookups_and_audience_verify.sql), and these rows are going.
-- After fence_decision_lookups, in the same owner transaction (its
-- own snapshot, taken after the lock was granted). Owner connection (the application role may
-- not change decision_log); the append-only trigger lets exactly this change through.
update decision_log as d
set lookup_hmac = null
from unnest($2::text[], $3::bytea[]) as u (id_type, lookup_hmac)
where d.tenant_id = $1 and d.id_type = u.id_type and d.lookup_hmac = u.lookup_hmac;
