-- name: insert_subject
insert into subject (tenant_id) values ($1) returning id, created_at;

-- name: insert_identifier
-- An identifier a link adds to its survivor. Null when a concurrent write has given it a
-- subject of its own meanwhile (the insert waited for that write to commit): the link then
-- starts over and merges that subject.
insert into subject_identifier (tenant_id, id_type, lookup_hmac, subject_id, value_enc)
values ($1, $2, $3, $4, $5)
on conflict (tenant_id, id_type, lookup_hmac) do nothing
returning subject_id;

-- name: find_identifier_unlocked
select coalesce(s.merged_into, s.id) as id
from subject_identifier as i join subject as s on s.id = i.subject_id
where i.tenant_id = $1 and i.id_type = $2 and i.lookup_hmac = $3;

-- name: resolve_subject_unlocked
select coalesce(merged_into, id) as id from subject where id = $1;

-- name: create_subject_for_identifier
-- First sight of an identifier, in one statement: the identifier row decides (a concurrent
-- creator of the same identifier wins the conflict, and then nothing else is inserted).
with ident as (
    insert into subject_identifier (tenant_id, id_type, lookup_hmac, subject_id, value_enc)
    values ($1, $3, $4, $2, $5)
    on conflict (tenant_id, id_type, lookup_hmac) do nothing
    returning subject_id
), subj as (
    insert into subject (id, tenant_id) select subject_id, $1 from ident
), dek as (
    insert into subject_key (tenant_id, subject_id, kek_id, dek_wrapped)
    select $1, subject_id, $6, $7 from ident
), tok as (
    insert into audit_subject_token (tenant_id, subject_id, token)
    select $1, subject_id, $8 from ident
)
select subject_id from ident;

-- name: identifiers_of
select id_type, lookup_hmac, value_enc from subject_identifier where subject_id = $1;

-- name: repoint_identifiers
update subject_identifier as i
set subject_id = $2, value_enc = u.value_enc
from unnest($3::text[], $4::bytea[], $5::bytea[]) as u (id_type, lookup_hmac, value_enc)
where i.tenant_id = $1 and i.id_type = u.id_type and i.lookup_hmac = u.lookup_hmac;

-- name: mark_merged
update subject set merged_into = $2 where id = $1 or merged_into = $1;

-- name: group_members
select id from subject where id = $1 or merged_into = $1;

-- name: group_choice_records
select e.id as event_id, e.seq, e.occurred_at, e.notice_version_id,
       c.purpose, c.choice
from consent_event e,
     jsonb_to_recordset(e.choices) as c (purpose text, choice text)
where e.tenant_id = $1 and e.subject_id = any($2::uuid[]);

-- name: group_preference_records
select e.id as event_id, e.seq, e.occurred_at, i.kind, i.key, i.value
from preference_event e,
     jsonb_to_recordset(e.items) as i (kind text, key text, value text)
where e.tenant_id = $1 and e.subject_id = any($2::uuid[]);

-- name: delete_consent_state
delete from consent_state where tenant_id = $1 and subject_id = any($2::uuid[]);

-- name: delete_preference_state
delete from preference_state where tenant_id = $1 and subject_id = any($2::uuid[]);

-- name: material_of_versions
select id, material_version from notice_version where id = any($1::uuid[]);

-- name: insert_consent_state_rows
insert into consent_state (tenant_id, subject_id, purpose_key, choice, event_id, occurred_at,
                           event_seq, notice_version_id, material_version)
select $1, $2, u.purpose, u.choice, u.event_id, u.occurred_at, u.seq, u.notice_version_id,
       u.material_version
from unnest($3::text[], $4::text[], $5::uuid[], $6::timestamptz[], $7::bigint[], $8::uuid[],
            $9::int[])
     as u (purpose, choice, event_id, occurred_at, seq, notice_version_id, material_version);

-- name: insert_preference_state_rows
insert into preference_state (tenant_id, subject_id, kind, key, value, event_id, occurred_at,
                              event_seq)
select $1, $2, u.kind, u.key, u.value, u.event_id, u.occurred_at, u.seq
from unnest($3::text[], $4::text[], $5::text[], $6::uuid[], $7::timestamptz[], $8::bigint[])
     as u (kind, key, value, event_id, occurred_at, seq);

-- name: lock_tenant_links
select pg_advisory_xact_lock(hashtextextended('consent/link/' || $1::text, 0));

-- name: lock_subjects
select id, created_at from subject where id = any($1::uuid[]) order by id for update;

-- name: write_context_by_identifier
-- The surviving subject of an identifier with its wrapped data key and audit token when they
-- exist (one round trip for the common write). Locks (FOR KEY SHARE, until the commit) the
-- subject found and its survivor, in that order, before the write's foreign keys would: a link
-- or an erasure (FOR UPDATE) waits for the write, and a write that holds a merged member never
-- waits for its survivor while holding state rows (which would deadlock with them).
with found as (
    select coalesce(s.merged_into, s.id) as id
    from subject as s
    where s.id = (
        select subject_id from subject_identifier
        where tenant_id = $1 and id_type = $2 and lookup_hmac = $3
    )
    for key share of s
), w as (
    -- coalesce: a link that merged the survivor while this waited sends the write on to the
    -- new survivor, never to a merged subject.
    select coalesce(s.merged_into, s.id) as id
    from subject as s
    where s.id = (select id from found)
    for key share of s
)
-- Each table is probed by a value (`= (select id from …)`), never joined to a CTE: a join lets
-- the planner scan the whole tenant's index when its statistics are stale (every import is one
-- transaction that autovacuum cannot see into), and a write's cost would grow with the tenant.
select w.id, k.kek_id, k.dek_wrapped, t.token
from w
left join subject_key as k on k.tenant_id = $1 and k.subject_id = (select id from w)
left join audit_subject_token as t on t.tenant_id = $1 and t.subject_id = (select id from w);

-- name: write_context_by_id
-- As write_context_by_identifier (and probed by value for the same reason), for a subject named
-- by id.
with found as (
    select coalesce(s.merged_into, s.id) as id from subject as s where s.id = $2 for key share
), w as (
    -- coalesce: a link that merged the survivor while this waited sends the write on to the
    -- new survivor, never to a merged subject.
    select coalesce(s.merged_into, s.id) as id
    from subject as s
    where s.id = (select id from found)
    for key share of s
)
select w.id, k.kek_id, k.dek_wrapped, t.token
from w
left join subject_key as k on k.tenant_id = $1 and k.subject_id = (select id from w)
left join audit_subject_token as t on t.tenant_id = $1 and t.subject_id = (select id from w);

-- name: lock_for_erasure
-- The group's rows FOR UPDATE (a write holds FOR KEY SHARE on the subject it names until it
-- commits, so in-flight writes finish first and later ones find the subject erased), merged
-- members first and the survivor ($2) last: a write naming a merged member locks it and then,
-- by its foreign keys, the survivor, so this order cannot close a cycle with it.
select id from subject where id = any($1::uuid[]) order by id = $2, id for update;

-- name: erasure_tokens
select subject_id, token from audit_subject_token where subject_id = any($1::uuid[]);

-- name: forget_decision_lookups
-- The keyed HMACs that decisions about then-unknown identifiers logged, of every identifier of
-- the erased subjects (migrations/0022_decision_lookups_and_audience_verify.sql): before
-- erase_subjects deletes the identifier mappings they are found by. It first takes the
-- tenant's erasure lock (until the commit) and advances its erasure epoch, so that decisions
-- read before the erasure and logged after it keep no HMAC
-- (migrations/0028_erasure_fences_decision_lookups.sql).
select forget_decision_lookups($1::uuid[]);

-- name: erase_subjects
-- Crypto-shredding of a group of subjects (row-level security scopes it to the tenant): their
-- data keys (so every ciphertext under them is unreadable for good), identifier mappings, audit
-- tokens, evidence ciphertexts and current state; then the subject rows are marked erased.
with keys as (
    delete from subject_key where subject_id = any($1::uuid[])
), identifiers as (
    delete from subject_identifier where subject_id = any($1::uuid[])
), tokens as (
    delete from audit_subject_token where subject_id = any($1::uuid[])
), evidence as (
    delete from audit_evidence
    where event_uuid in (select event_uuid from audit_event where subject_id = any($1::uuid[]))
), consents as (
    delete from consent_state where subject_id = any($1::uuid[])
), preferences as (
    delete from preference_state where subject_id = any($1::uuid[])
)
select mark_subjects_erased($1::uuid[]);

-- name: forget_idempotent_requests
-- The request hashes idempotency records keep of the erased subjects' writes
-- (migrations/0020_erasure_forgets_request_hashes.sql).
select forget_idempotent_requests($1::uuid[]);

-- name: group_identifiers
-- The identifiers of a subject and of every subject linked into it ($1: the group, as
-- SubjectResolver.group gives it), each encrypted under its owning subject's data key, oldest
-- first. `created_at` is when the identifier was first seen: a link moves it to the survivor
-- (subject_id and value_enc change) and keeps that time.
select id_type, subject_id, value_enc, created_at
from subject_identifier
where subject_id = any($1::uuid[])
order by created_at, id_type, lookup_hmac;

-- name: idle_limit
-- The export's snapshot transaction (consent/subjects/snapshot.py): an end to a session left
-- idle between two pages ($1) by a client that stopped reading.
select set_config('idle_in_transaction_session_timeout', $1, true);

-- name: lock_unchanged_subject
-- The exported subject, locked: a serialization failure under REPEATABLE READ when it was
-- erased or merged since the snapshot began. Run in a savepoint rolled back at once.
select id from subject where id = $1 for share;
